"""Held-out recovery of pre-trained checkpoints corpus by corpus, beside copying each window's most common value.

It rebuilds a pre-training run's validation songs (the same preset, manifest and split seed, so the same songs
`eval_random_recovery_accuracy_<attribute>` was measured on), groups their windows by corpus (the first folder
under the manifest's common root) and runs `masked_recovery` (fixed random 15 %, masking seed 0) on each group
and on all of them, for every model named:

    python scripts/recovery_by_corpus.py --manifest runs/pretraining_manifest.csv \
        --models adversarial-midibert-small adversarial-midibert-small-random --output docs/probes/by_corpus.json

prints one Markdown table per attribute (model / copy, per corpus) and writes every number to `--output`. Why:
one figure over a mixture hides where a target is out of reach, and how much of it copying gets without a model.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

ATTRIBUTES = ("pitch", "duration", "position", "velocity")


def validation_windows(preset: str, manifest: str):
    """The validation windows of `pretrain.py --preset PRESET --manifest MANIFEST`, and each one's corpus."""
    from adversarial_midibert.pretraining.arguments import parse_pretraining_args
    from adversarial_midibert.pretraining.run import split_windows, tokenized_song_split
    from tokenization_octuple import OctupleTokenizer

    with tempfile.TemporaryDirectory() as output_dir:
        _, data_args, training_args = parse_pretraining_args(
            ["--preset", preset, "--manifest", manifest, "--output_dir", output_dir])
    tokenizer = OctupleTokenizer(max_length=data_args.max_length, stride=data_args.stride,
                                 max_bars=data_args.max_bars)
    sources, train_songs, valid_songs, windows, _ = tokenized_song_split(data_args, training_args, tokenizer)
    _, valid = split_windows(windows, train_songs, valid_songs)
    root = os.path.commonpath([s.path for s in sources])
    corpora = [Path(os.path.relpath(sources[i].path, root)).parts[0] for i in valid["song_index"]]
    return valid, corpora


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--manifest", required=True, help="the pre-training manifest (scripts/pretraining_manifest.py)")
    parser.add_argument("--preset", default="small", help="the pre-training preset whose split to rebuild")
    parser.add_argument("--models", nargs="+", required=True, help="checkpoint folders or shipped short names")
    parser.add_argument("--output", type=Path, help="a JSON file for every number")
    args = parser.parse_args(argv)
    from adversarial_midibert.evaluation.recovery import masked_recovery
    from adversarial_midibert.presets import resolve_model_name
    from modeling_adversarial_midibert import AdversarialMidiBertForPreTraining

    valid, corpora = validation_windows(args.preset, args.manifest)
    groups = {name: [i for i, c in enumerate(corpora) if c == name] for name in sorted(set(corpora))}
    groups["all"] = list(range(len(corpora)))
    results = {}
    for name in args.models:
        model = AdversarialMidiBertForPreTraining.from_pretrained(resolve_model_name(name)).eval()
        results[name] = {group: masked_recovery(model, valid.select(rows)) for group, rows in groups.items()}
    for attribute in ATTRIBUTES:
        print(f"\n{attribute}: recovery / copying the window's most common value\n")
        print("| corpus | windows | notes | " + " | ".join(args.models) + " |")
        print("|---|---|---|" + "---|" * len(args.models))
        for group, rows in groups.items():
            first = results[args.models[0]][group]
            cells = [f"{results[m][group][attribute]:.3f} / {results[m][group][attribute + '_copy']:.3f}"
                     for m in args.models]
            print(f"| {group} | {len(rows)} | {first['notes']} | " + " | ".join(cells) + " |")
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps({"manifest": args.manifest, "preset": args.preset, "results": results},
                                          indent=1) + "\n")
    return results


if __name__ == "__main__":
    main()
