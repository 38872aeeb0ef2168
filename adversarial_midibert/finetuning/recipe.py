"""The fine-tuning recipe: learning rate, warm-up, epochs, best-checkpoint selection and class weights, fitted to
the model (width, pre-trained or not) and the data instead of fixed numbers; every choice yields to its flag.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from adversarial_midibert.data.tasks import SEQUENCE

# The recipe rule (`fit_recipe`), documented in docs/finetuning.md:
# - learning rate: 1e-3 for a freshly initialised network, 5e-4 for a pre-trained one (features worth keeping,
#   so smaller steps), times 128 / hidden_size (a wider network takes proportionally smaller steps: the tiny
#   preset gets the base rate, the 768-wide paper preset 1/6 of it, 8.3e-5 pre-trained, near BERT's usual range);
# - warm-up: the first 10 % of the run (linear), then linear decay to 0 at its end, where the run's progress is
#   the larger of steps done and time budget spent (`training_progress`): a run ended by `--max_train_minutes`
#   still warms up and decays, instead of stopping in warm-up or at peak rate;
# - epochs: with a dev set, until the dev macro-F1 has not improved for PATIENCE epochs after the warm-up (the
#   best epoch's weights kept), at most MAX_EPOCHS and at most `--max_train_minutes` of training. Why not a fixed
#   count: a fixed 3-epoch floor stopped a from-scratch composer run while its dev macro-F1 still climbed (0.127,
#   0.188, 0.205; issue 19), so a comparison of two starting points measured how fast each learns, not how well.
#   Without a dev set there is nothing to stop on: enough epochs for about TARGET_STEPS steps, between MIN_EPOCHS
#   and MAX_EPOCHS.
BASE_LEARNING_RATE = {"scratch": 1e-3, "pretrained": 5e-4}
WARMUP_SHARE = 0.1
TARGET_STEPS = 250
MIN_EPOCHS, MAX_EPOCHS, PATIENCE = 3, 40, 4
MAX_TRAIN_MINUTES = 60


def _given(argv: list[str], *names: str) -> bool:
    """Whether one of these `TrainingArguments` flags was typed (then the recipe rule leaves it alone)."""
    return any(arg == f"--{name}" or arg.startswith(f"--{name}=") for arg in argv for name in names)


def fit_recipe(training_args, argv: list[str], model, pretrained: bool, num_train_windows: int, has_eval: bool,
               early_stopping_patience: int) -> dict:
    """Set the learning rate, warm-up, epoch count and best-checkpoint selection from the model and the data
    (the rule beside `BASE_LEARNING_RATE`), unless the flag was given; returns what was chosen, for the report.

    Example:

    ```python
    >>> recipe = fit_recipe(training_args, [], model, pretrained=False, num_train_windows=4000, has_eval=True,
    ...                     early_stopping_patience=5)                               # doctest: +SKIP
    >>> recipe["learning_rate"], recipe["num_train_epochs"]                          # doctest: +SKIP
    (0.001, 5)
    ```
    """
    from transformers.trainer_utils import IntervalStrategy

    per_step = (training_args.per_device_train_batch_size * training_args.gradient_accumulation_steps
                * max(training_args.world_size, 1))
    steps_per_epoch = max(math.ceil(num_train_windows / per_step), 1)
    if not _given(argv, "learning_rate"):
        base = BASE_LEARNING_RATE["pretrained" if pretrained else "scratch"]
        training_args.learning_rate = float(f"{base * 128 / model.config.hidden_size:.3g}")
    if not _given(argv, "warmup_steps", "warmup_ratio"):
        training_args.warmup_steps = WARMUP_SHARE
    if not has_eval:
        training_args.eval_strategy = IntervalStrategy.NO
    selecting = (has_eval and training_args.eval_strategy != IntervalStrategy.NO
                 and training_args.save_strategy == training_args.eval_strategy)
    if not _given(argv, "num_train_epochs") and training_args.max_steps <= 0:
        if selecting and early_stopping_patience > 0:  # the dev score decides when to stop
            training_args.num_train_epochs = MAX_EPOCHS
        else:
            training_args.num_train_epochs = min(max(math.ceil(TARGET_STEPS / steps_per_epoch), MIN_EPOCHS),
                                                 MAX_EPOCHS)
    if selecting and not _given(argv, "load_best_model_at_end"):
        training_args.load_best_model_at_end = True
    if training_args.load_best_model_at_end and not _given(argv, "metric_for_best_model"):
        training_args.metric_for_best_model = "macro_f1"
        training_args.greater_is_better = True
    if not _given(argv, "dataloader_pin_memory") and not torch.cuda.is_available():
        training_args.dataloader_pin_memory = False  # pinning needs an accelerator; on CPU it only warns
    return {
        "learning_rate": training_args.learning_rate,
        "warmup": training_args.warmup_steps,
        "num_train_epochs": training_args.num_train_epochs,
        "max_steps": training_args.max_steps,
        "steps_per_epoch": steps_per_epoch,
        "pretrained": pretrained,
        "best_model_metric": training_args.metric_for_best_model if training_args.load_best_model_at_end else None,
        "early_stopping_patience": early_stopping_patience if training_args.load_best_model_at_end else 0,
    }


def label_counts(windows, level: str, num_labels: int) -> np.ndarray:
    """Training items per class: windows (piece labels) or labelled notes (note labels)."""
    if level == SEQUENCE:
        return np.bincount(np.asarray(windows["labels"], dtype=np.int64), minlength=num_labels)
    notes = np.concatenate([np.asarray(row, dtype=np.int64) for row in windows["note_labels"]] or [np.zeros(0, int)])
    return np.bincount(notes[notes >= 0], minlength=num_labels)


