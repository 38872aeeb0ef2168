"""Non-neural baselines for the paper's fine-tuning recipes, without training a network.

The majority class and a logistic regression on note statistics (`adversarial_midibert.evaluation.baselines`, the same code
every `train/finetune.py` run reports under `baselines`), fitted on the recipe's training split and scored on
its dev split, on the windows fine-tuning cuts (same max_length, training stride 0; subsets as in finetune.py).
Piece labels are scored per window and per song (mean of the song's window decision values), like the model.

    python scripts/baseline_note_stats.py --recipe emotion --max_length 256
    python scripts/baseline_note_stats.py --recipe melody --max_train_songs 200 --output runs/baseline_melody.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from adversarial_midibert.evaluation.baselines import fit_baselines
from adversarial_midibert.finetuning.arguments import parse_args
from adversarial_midibert.finetuning.inputs import build_split
from adversarial_midibert.data.tasks import load_recipe, subsample_groups
from tokenization_octuple import OctupleTokenizer


def run(args) -> dict:
    task = load_recipe(args.recipe, args.data_root, seed=args.seed)
    task.train = subsample_groups(task.train, args.max_train_songs, args.seed)
    task.eval = subsample_groups(task.eval, args.max_eval_songs, args.seed)
    tokenizer = OctupleTokenizer(max_length=args.max_length)
    ft_args, _ = parse_args(["--recipe", args.recipe, "--num_proc", str(args.num_proc)])
    start = time.time()
    train, train_report, _ = build_split(task.train, tokenizer, task, ft_args, stride=0)
    dev, dev_report, dev_song_ids = build_split(task.eval, tokenizer, task, ft_args, stride=0)
    baselines = fit_baselines(train, dev, dev_song_ids, task.level, len(task.labels),
                              hidden_attributes=task.hidden_attributes, max_train_items=args.max_train_notes,
                              seed=args.seed, C=args.C)
    return {
        "recipe": args.recipe,
        "level": task.level,
        "labels": task.labels,
        "train_songs": train_report.num_songs,
        "dev_songs": dev_report.num_songs,
        "train_items": baselines["train_items"],
        "dev_items": baselines["dev_items"],
        "skipped_files": [f"{s}: {r}" for s, r in train_report.skipped + dev_report.skipped],
        "max_length": args.max_length,
        "seed": args.seed,
        "majority_class": task.labels[baselines["majority_class"]],
        "majority": baselines["majority"],
        "note_statistics": baselines["note_statistics"],
        "seconds": round(time.time() - start, 1),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", required=True, help="composer, composer_music21, composer_pianist8, emotion, melody, velocity")
    parser.add_argument("--data_root", default=None, help="the shared corpora (default ../shared/data)")
    parser.add_argument("--max_length", type=int, default=256, help="tokens per window, BOS/EOS included")
    parser.add_argument("--max_train_songs", type=int, default=None)
    parser.add_argument("--max_eval_songs", type=int, default=None)
    parser.add_argument("--max_train_notes", type=int, default=200_000, help="fit on at most this many training rows")
    parser.add_argument("--C", type=float, default=1.0, help="inverse L2 strength of the logistic regression")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--num_proc", type=int, default=1)
    parser.add_argument("--output", default=None, help="also write the result as JSON here")
    args = parser.parse_args(argv)
    result = run(args)
    text = json.dumps(result, indent=2)
    print(text)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
