"""Why a freeze book grows: record the masker's scores at every freeze update of a run, then replay them offline
through `FreezeBook` under other rules.

The run is `train/pretrain.py` with the given flags, unchanged except that each freeze update also saves the
scores it ranked: those of the live masker head and of copies of the head whose weights are an exponential
moving average over the optimizer steps (`--ema_decays`). The replay then prints, for each score source:

- the mean within-song rank correlation between consecutive updates (how much the masker changed its mind), and
- the frozen fraction after each update under `freeze_rank_momentum` m for each `--momentum` value.

The rank-momentum numbers of docs/pretraining.md come from:

    python scripts/freeze_book_replay.py --out runs/replay -- --freeze_every_epochs 1 --freeze_rank_momentum 0

The replay is open loop: the recorded run froze by its own rule, so the other rules see scores they did not shape.
"""
from __future__ import annotations

import argparse
import copy
import pickle
import sys
from pathlib import Path

import numpy as np
import torch
from transformers import TrainerCallback

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def record(pretrain_flags: list[str], out: Path, decays: list[float]) -> list[dict]:
    """Run pre-training with `pretrain_flags`; the scores of every freeze update, `[{source: {row: scores}}]`."""
    from adversarial_midibert.pretraining import run as pretrain
    from adversarial_midibert.pretraining.trainer import AdversarialTrainer

    records: list[dict] = []
    averaged: dict[float, torch.nn.Module] = {}

    class AverageHead(TrainerCallback):
        def __init__(self, trainer):
            self.trainer = trainer

        def on_step_end(self, args, state, control, **kwargs):
            head = self.trainer.accelerator.unwrap_model(self.trainer.model).masker
            with torch.no_grad():
                for decay in decays:
                    copy_ = averaged.setdefault(decay, copy.deepcopy(head))
                    for mine, theirs in zip(copy_.parameters(), head.parameters()):
                        mine.mul_(decay).add_(theirs, alpha=1 - decay)

    class RecordingTrainer(AdversarialTrainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.add_callback(AverageHead(self))

        def update_freeze_book(self):
            model = self.accelerator.unwrap_model(self.model)
            scores = {"live": self.score_training_set()}
            live = model.masker
            try:
                for decay, head in averaged.items():
                    model.masker = head
                    scores[f"ema {decay}"] = self.score_training_set()
            finally:
                model.masker = live
            records.append(scores)
            super().update_freeze_book()

    pretrain.AdversarialTrainer = RecordingTrainer  # main() builds its trainer from this module's name
    pretrain.main([*pretrain_flags, "--output_dir", str(out / "run")])
    with (out / "scores.pkl").open("wb") as f:
        pickle.dump(records, f)
    return records


def within_song_ranks(scores: np.ndarray) -> np.ndarray:
    return np.argsort(np.argsort(scores, kind="stable"), kind="stable").astype(np.float64)


def replay(records: list[dict], momenta: list[float], freeze_percent: float, unfreeze_percent: float,
           seed: int) -> None:
    from adversarial_midibert.pretraining.freeze_book import FreezeBook

    first = next(iter(records[0].values()))  # every source scores the same songs
    rows = sorted(first)
    counts = [len(first[row]) for row in rows]
    for source in records[0]:
        correlations = [
            np.mean([np.corrcoef(within_song_ranks(a[source][r]), within_song_ranks(b[source][r]))[0, 1]
                     for r in rows if len(a[source][r]) > 1])
            for a, b in zip(records, records[1:])
        ]
        print(f"{source}: rank correlation between consecutive updates", " ".join(f"{c:.2f}" for c in correlations))
        for momentum in momenta:
            book = FreezeBook([str(r) for r in rows], counts)
            fractions = []
            for scores in records:
                book.update({i: scores[source][r] for i, r in enumerate(rows)}, freeze_percent, unfreeze_percent,
                            seed=seed, momentum=momentum)
                fractions.append(book.frozen_fraction())
            print(f"  momentum {momentum}: max {max(fractions):.3f}, frozen after each update",
                  " ".join(f"{f:.3f}" for f in fractions))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "replay")
    parser.add_argument("--ema_decays", nargs="*", type=float, default=[0.8, 0.9, 0.95])
    parser.add_argument("--momentum", nargs="+", type=float, default=[0.0, 0.5, 0.7])
    parser.add_argument("--freeze_percent", type=float, default=30)
    parser.add_argument("--unfreeze_percent", type=float, default=10)
    parser.add_argument("--seed", type=int, default=42, help="seed of the replayed unfreezing")
    parser.add_argument("pretrain_flags", nargs=argparse.REMAINDER, help="after --: flags for train/pretrain.py")
    args = parser.parse_args()
    flags = args.pretrain_flags[1:] if args.pretrain_flags[:1] == ["--"] else args.pretrain_flags
    args.out.mkdir(parents=True, exist_ok=True)
    saved = args.out / "scores.pkl"
    # Only this script writes the file, from a run it started: loading it back is not loading foreign pickles.
    records = pickle.loads(saved.read_bytes()) if saved.is_file() else record(flags, args.out, args.ema_decays)
    if not records:
        sys.exit("the run made no freeze update: pass --freeze_every_epochs 1 or train longer")
    replay(records, args.momentum, args.freeze_percent, args.unfreeze_percent, args.seed)


if __name__ == "__main__":
    main()
