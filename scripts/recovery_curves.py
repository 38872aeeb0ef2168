"""Compare pre-training runs by what their recoverer learned: held-out recovery of pitch, duration and position
under the fixed random 15 % masking (`eval_random_recovery_accuracy_<attribute>`), against optimizer steps and
notes seen, read from each run's `training_curves.json`.

    python scripts/recovery_curves.py --run tiny=runs/a --run tiny+pcs=runs/b --training_notes 8650000 \
        --output docs/probes/curves

writes `curves.png` (one panel per attribute, against notes seen) and `curves.md` (a table at every evaluated step)
under `--output`. Notes seen = epoch x `--training_notes` (the notes of the training windows, printed by
`pretrain.py` as the data summary's notes minus the validation songs'; the same for every run of one corpus).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ATTRIBUTES = ("pitch", "duration", "position", "bar", "velocity")


def read_run(path: str | Path) -> dict[str, dict[int, float]]:
    """`{attribute or "epoch": {step: value}}` from a run folder's `training_curves.json`, or from such a file
    itself (a committed copy, e.g. `docs/probes/adversarial_16000/training_curves_16000.json`)."""
    path = Path(path)
    with open(path if path.is_file() else path / "training_curves.json") as f:
        curves = json.load(f)
    run = {name: {int(step): value for step, value in curves.get(f"eval_random_recovery_accuracy_{name}", [])}
           for name in ATTRIBUTES}
    run["epoch"] = {int(step): value for step, value in curves.get("epoch", [])}
    return run


def notes_seen(run: dict[str, dict[int, float]], step: int, training_notes: int) -> float:
    """Epoch at `step` (the nearest logged one at or before it) times the corpus's training notes."""
    logged = [s for s in run["epoch"] if s <= step]
    return run["epoch"][max(logged)] * training_notes if logged else float("nan")


def table(runs: dict[str, dict], training_notes: int) -> str:
    lines = ["| run | step | notes seen | " + " | ".join(ATTRIBUTES) + " |",
             "|---|---|---|" + "---|" * len(ATTRIBUTES)]
    for label, run in runs.items():
        for step in sorted(run["pitch"]):
            values = " | ".join(f"{run[name].get(step, float('nan')):.3f}" for name in ATTRIBUTES)
            lines.append(f"| {label} | {step} | {notes_seen(run, step, training_notes) / 1e6:.2f} M | {values} |")
    return "\n".join(lines) + "\n"


def plot(runs: dict[str, dict], training_notes: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), constrained_layout=True)
    for ax, name in zip(axes, ATTRIBUTES[:3]):
        for label, run in runs.items():
            steps = sorted(run[name])
            ax.plot([notes_seen(run, s, training_notes) / 1e6 for s in steps], [run[name][s] for s in steps],
                    marker=".", label=label)
        ax.set_title(f"held-out {name} recovery")
        ax.set_xlabel("notes seen (M)")
        ax.legend(fontsize=7)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", action="append", required=True, metavar="LABEL=PATH",
                        help="a run folder holding training_curves.json, or such a JSON file, with its label "
                             "(repeat for each run)")
    parser.add_argument("--training_notes", type=int, required=True,
                        help="notes in the training windows of the corpus (for notes seen = epoch x this)")
    parser.add_argument("--output", required=True, help="folder for curves.png and curves.md")
    args = parser.parse_args(argv)
    runs = {}
    for item in args.run:
        label, _, folder = item.partition("=")
        if not folder:
            parser.error(f"--run wants LABEL=PATH, got {item!r}")
        runs[label] = read_run(folder)
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    (output / "curves.md").write_text(table(runs, args.training_notes))
    try:
        plot(runs, args.training_notes, output / "curves.png")
    except ImportError:
        print("matplotlib is not installed: curves.md only")
    print((output / "curves.md").read_text())


if __name__ == "__main__":
    main()
