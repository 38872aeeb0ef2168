"""Put a pre-training run's final model into the package as the shipped checkpoint
(`adversarial_midibert/pretrained/<name>/`): its weights, config and tokenizer, today's Hub code files, and a model
card made of the run's own card plus the corpora and their licences, the recipe, the compute, and the held-out
recovery measured here on the shipped MIDI sample (`masked_recovery`, the numbers tests/test_shipped_model.py
checks).

    python scripts/ship_checkpoint.py --run runs/small --card_notes notes.md
    python scripts/ship_checkpoint.py --run runs/small_random --name small-random --card_notes notes-random.md
    python scripts/ship_checkpoint.py --refresh_code     # after a change to a root Hub file: copy them again, every folder
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

HUB_FILES = ("configuration_adversarial_midibert.py", "modeling_adversarial_midibert.py", "tokenization_octuple.py",
             "pipeline_adversarial_midibert.py")
RUN_FILES = ("config.json", "model.safetensors", "octuple_tokenizer.json", "tokenizer_config.json")
LICENCE_METADATA = "license: other\nlicense_name: research-non-commercial\n"


def refresh_code(folder: Path) -> None:
    for name in HUB_FILES:
        shutil.copyfile(REPO / name, folder / name)


def recovery_table(folder: Path) -> str:
    import torch

    from adversarial_midibert.data.dataset import build_window_dataset, find_midi_files
    from adversarial_midibert.evaluation.recovery import RECOVERY_MASK_PERCENT, masked_recovery
    from adversarial_midibert.presets import SAMPLE_MIDI
    from adversarial_midibert.pretraining.masker_report import RECOVERED_ATTRIBUTES
    from modeling_adversarial_midibert import AdversarialMidiBertForPreTraining
    from tokenization_octuple import OctupleTokenizer

    windows, _ = build_window_dataset(find_midi_files(SAMPLE_MIDI), OctupleTokenizer.from_pretrained(folder))
    shipped = AdversarialMidiBertForPreTraining.from_pretrained(folder).eval()
    torch.manual_seed(0)
    untrained = AdversarialMidiBertForPreTraining(shipped.config).eval()
    trained, control = masked_recovery(shipped, windows), masked_recovery(untrained, windows)
    lines = [f"Recovery of a fixed random {RECOVERY_MASK_PERCENT} % of the notes ({trained['notes']} notes, masking "
             f"seed 0) of the "
             f"{len(windows)} windows of the MIDI sample shipped in `adversarial_midibert/sample_midi` (18 files, "
             "none of whose songs was pre-trained on), against the same network with random weights and against "
             "copying, for each masked note, the most common value among its window's other notes (what needs no "
             "model):", "",
             "| attribute | shipped weights | random weights | copying the window's most common value |",
             "|---|---|---|---|"]
    lines += [f"| {name} | {trained[name]:.3f} | {control[name]:.3f} | {trained[name + '_copy']:.3f} |"
              for name in RECOVERED_ATTRIBUTES]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, help="the pre-training run's output folder (its final save)")
    parser.add_argument("--name", default="small", help="folder name under adversarial_midibert/pretrained/")
    parser.add_argument("--card_notes", type=Path, help="a Markdown file of sections added to the card (corpora, "
                        "licences, recipe, compute, comparisons)")
    parser.add_argument("--refresh_code", action="store_true",
                        help="only copy today's Hub files into every shipped folder")
    args = parser.parse_args(argv)
    pretrained = REPO / "adversarial_midibert" / "pretrained"
    if args.refresh_code:
        for folder in sorted(p for p in pretrained.iterdir() if p.is_dir()):
            refresh_code(folder)
        return
    from adversarial_midibert.presets import SHIPPED_MODELS

    folder = pretrained / args.name
    if args.run is None:
        parser.error("--run is required (or --refresh_code)")
    folder.mkdir(parents=True, exist_ok=True)
    for name in RUN_FILES:
        shutil.copyfile(args.run / name, folder / name)
    refresh_code(folder)
    card = (args.run / "README.md").read_text()
    card = re.sub(r"^license: .*\n", LICENCE_METADATA, card, count=1, flags=re.M)
    # The card names the run's own paths: the reproduce command keeps a relative run folder, the loading
    # examples name the shipped folder, and the manifest is the one scripts/pretraining_manifest.py writes.
    card = card.replace(f"--output_dir {args.run}", f"--output_dir runs/{args.run.name}")
    card = card.replace(str(args.run), f"adversarial_midibert/pretrained/{args.name}")
    card = re.sub(r"\S*/pretraining_manifest\.csv", "runs/pretraining_manifest.csv", card)
    short_names = {folder_name: name for name, folder_name in SHIPPED_MODELS.items()}
    card = re.sub(r"^# .*$", f"# {short_names.get(args.name, args.name)}", card, count=1, flags=re.M)
    notes = args.card_notes.read_text() if args.card_notes else ""
    card = card.rstrip() + "\n\n## Held-out recovery on the shipped sample\n\n" + recovery_table(folder)
    if notes:
        card += "\n" + notes.strip() + "\n"
    (folder / "README.md").write_text(card)
    print(f"shipped {args.run} as {folder}")
    print(recovery_table(folder))


if __name__ == "__main__":
    main()
