"""What the masker did, for people who would rather look than read: the training curves as JSON (always) and, with
matplotlib installed (`pip install adversarial-midibert[plots]`), two PNGs beside the checkpoint:

- `training_curves.png`: frozen fraction, masker AUC (training batches and held-out probe), masker spread and
  held-out recovery under the fixed random masking, against the optimizer step;
- `masker_piano_roll.png`: one held-out window and one training window, each note a dot at (time, pitch)
  coloured by the masker's probability on the clean input, the notes the masker would choose (its top p % of the
  selectable notes) ringed, and the training window's frozen notes crossed.
"""

from __future__ import annotations

import json
import os

import torch

RECOVERED_ATTRIBUTES = ("bar", "position", "pitch", "duration", "velocity")
CURVES = ("frozen_fraction", "capped_fraction", "masker_spread", "masker_auc", "masker_loss", "recoverer_loss",
          "eval_masker_auc", "eval_random_recovery_accuracy", "epoch",
          *(f"eval_random_recovery_accuracy_{name}" for name in RECOVERED_ATTRIBUTES))
CURVES_FILE = "training_curves.json"


def training_curves(log_history: list[dict]) -> dict[str, list[list[float]]]:
    """`{metric: [[step, value], ...]}` for the masker's metrics found in a `Trainer`'s `state.log_history`.

    Example:

    >>> from adversarial_midibert.pretraining.masker_report import training_curves
    >>> training_curves([{"step": 5, "masker_auc": 0.6}, {"step": 10, "masker_auc": 0.7, "loss": 3.0}])
    {'masker_auc': [[5, 0.6], [10, 0.7]]}
    """
    curves: dict[str, list[list[float]]] = {}
    for entry in log_history:
        for name in CURVES:
            value = entry.get(name)
            if isinstance(value, (int, float)) and value == value:  # NaN: no pair to rank in that period
                points = curves.setdefault(name, [])
                if not points or points[-1][0] != entry["step"]:  # epoch-end logs repeat the step's value
                    points.append([entry["step"], float(value)])
    return curves


def write_masker_report(trainer, output_dir: str | os.PathLike) -> list[str]:
    """Write `training_curves.json` and, with matplotlib, the two PNGs to `output_dir`; returns the files
    written. Call on the main process after training."""
    os.makedirs(output_dir, exist_ok=True)
    curves = training_curves(trainer.state.log_history)
    written = [os.path.join(output_dir, CURVES_FILE)]
    with open(written[0], "w") as f:
        json.dump(curves, f, indent=1)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return written
    written.append(_plot_curves(plt, curves, os.path.join(output_dir, "training_curves.png")))
    if trainer.masking == "adversarial":
        windows = _example_windows(trainer)
        if windows:
            written.append(_plot_piano_roll(plt, trainer, windows, os.path.join(output_dir, "masker_piano_roll.png")))
    return written


def _plot_curves(plt, curves, path: str) -> str:
    panels = [("frozen_fraction", "capped_fraction"), ("masker_auc", "eval_masker_auc"), ("masker_spread",),
              ("eval_random_recovery_accuracy",),
              tuple(f"eval_random_recovery_accuracy_{name}" for name in RECOVERED_ATTRIBUTES)]
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3), constrained_layout=True)
    for ax, names in zip(axes, panels):
        for name in names:
            if name in curves:
                steps, values = zip(*curves[name])
                ax.plot(steps, values, marker=".", label=name)
        if names[0].endswith("auc"):
            ax.axhline(0.5, color="grey", linewidth=0.8, linestyle=":")
        ax.set_xlabel("optimizer step")
        ax.legend(fontsize=7)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def _example_windows(trainer) -> list[tuple[str, dict]]:
    # The first held-out window and the first training window, whichever exist.
    found = []
    for title, dataset in (("held-out window", trainer.eval_dataset), ("training window", trainer.train_dataset)):
        if dataset is not None and not getattr(dataset, "sharded_by_rank", False) and len(dataset):
            found.append((title, dataset[0]))
    return found


@torch.no_grad()
def _plot_piano_roll(plt, trainer, windows, path: str) -> str:
    from modeling_adversarial_midibert import choose_notes

    model = trainer.accelerator.unwrap_model(trainer.model)
    was_training = model.training
    model.eval()
    fig, axes = plt.subplots(len(windows), 1, figsize=(10, 3.2 * len(windows)), constrained_layout=True, squeeze=False)
    for ax, (title, window) in zip(axes[:, 0], windows):
        batch = trainer.data_collator([window])
        ids = batch["input_ids"].to(trainer.args.device)
        mask = batch["attention_mask"].to(trainer.args.device)
        logits = model.masking_logits(ids, mask).float()
        real = trainer._real_notes({"input_ids": ids, "attention_mask": mask})
        selectable = real
        if title.startswith("training"):
            selectable = trainer._selectable({**batch, "input_ids": ids, "attention_mask": mask}, real.cpu()).to(real)
        chosen = choose_notes(logits, selectable, real.sum(-1), model.config.mask_percent)[0].cpu()
        notes = real[0].cpu()
        frozen = (real & ~selectable)[0].cpu()
        cells = ids[0].cpu()
        time = (cells[:, 0] * 64 + cells[:, 1]).float() / 64  # bars on a 4/4 grid of 1/16-beat positions
        pitch = cells[:, 3].float()
        probability = torch.sigmoid(logits[0].cpu())
        dots = ax.scatter(time[notes], pitch[notes], c=probability[notes], cmap="viridis", vmin=0, vmax=1, s=12)
        ax.scatter(time[chosen], pitch[chosen], facecolors="none", edgecolors="red", s=40, linewidths=0.8,
                   label=f"chosen (top {model.config.mask_percent:g} %)")
        if frozen.any():
            ax.scatter(time[frozen], pitch[frozen], marker="x", color="black", s=16, linewidths=0.6, label="frozen")
        ax.set_title(f"{title}: {window.get('song_id', '')}", fontsize=9)
        ax.set_xlabel("bar (4/4 grid)")
        ax.set_ylabel("pitch id")
        ax.legend(fontsize=7, loc="upper right")
        fig.colorbar(dots, ax=ax, label="masker probability")
    if was_training:
        model.train()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
