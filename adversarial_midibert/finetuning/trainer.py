"""`FinetuneTrainer`: the stock `Trainer`, plus transposition of training batches when the task allows it, a
class-weighted training loss, and a progress bar that shows the epoch and the best dev score so far.

Mask fine-tuning and hidden attributes live inside the classification heads (gated by `model.training`), so
evaluation is deterministic without anything here. Transposition and class weights follow the same rule: only
in training forwards; the evaluation loss is the plain mean cross-entropy.
"""
from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F
from transformers import Trainer, TrainerCallback
from transformers.trainer_callback import ProgressCallback

from adversarial_midibert.hub.push import HubTrainerMixin
from modeling_adversarial_midibert import fine_tuning_inputs
from tokenization_octuple import OctupleTokenizer


class FinetuneTrainer(HubTrainerMixin, Trainer):
    """A `Trainer` that transposes each training window by a random shift in `[-k, k]` semitones, weights the
    training cross-entropy per class, and writes the fine-tuned model card (`model_cards/finetuned.md`) from
    `model_card_facts` when it saves a card or pushes.

    Args:
        transpose_semitones (`int`, *optional*, defaults to 0): `k`; 0 turns transposition off (tasks whose
            labels depend on the key). Drums and special ids are never shifted and no pitch leaves 0..127
            (`OctupleTokenizer.random_transpose`).
        class_weights (`torch.Tensor` of shape `(num_labels,)`, *optional*): weight of each class in the
            training loss (`class_weights_from_counts`); `None` keeps the heads' own unweighted loss.
        progress_metric (`str`, *optional*): dev metric shown as "best so far" on the progress bar (replaces the
            stock bar, which prints logged metrics as strings).
        *args, **kwargs: as `transformers.Trainer`.

    Example:

    ```python
    >>> trainer = FinetuneTrainer(model=model, args=training_args, train_dataset=train, eval_dataset=dev,
    ...                           data_collator=OctupleDataCollator(tokenizer), transpose_semitones=6)  # doctest: +SKIP
    >>> trainer.train()                                                                                 # doctest: +SKIP
    ```
    """

    model_card_kind = "finetuned"

    def __init__(self, *args, transpose_semitones: int = 0, class_weights: torch.Tensor | None = None,
                 progress_metric: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        if transpose_semitones < 0:
            raise ValueError(f"transpose_semitones must be >= 0, got {transpose_semitones}")
        self.transpose_semitones = int(transpose_semitones)
        self.class_weights = None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32)
        # Keyword arguments of `write_model_card` (task, labels, data, settings, metrics), set by finetune.py.
        self.model_card_facts: dict | None = None
        if progress_metric is not None and not self.args.disable_tqdm:
            self.remove_callback(ProgressCallback)
            self.add_callback(FinetuneProgress(progress_metric))

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if model.training and self.transpose_semitones > 0:
            # The global torch RNG is seeded by the Trainer (args.seed), so the shifts are reproducible.
            inputs = {**inputs, "input_ids": OctupleTokenizer.random_transpose(inputs["input_ids"], self.transpose_semitones)}
        if not model.training or self.class_weights is None or "labels" not in inputs:
            return super().compute_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)
        inputs = dict(inputs)
        labels = inputs.pop("labels")
        config = self.accelerator.unwrap_model(model).config
        if labels.dim() == 2 and config.finetune_mask_percent > 0:
            # Notes hidden by mask fine-tuning are left out of a token loss (as the head does): draw the head's
            # mask from a seeded generator and replay the same draw here to know which notes it hid.
            seed = int(torch.randint(0, 2**62, (1,)))
            inputs["generator"] = torch.Generator().manual_seed(seed)
            _, _, masked = fine_tuning_inputs(inputs["input_ids"], inputs.get("attention_mask"), config, True,
                                              torch.Generator().manual_seed(seed))
            labels = labels.masked_fill(masked.to(labels.device), -100)
        outputs = model(**inputs)
        logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
        labels = labels.to(logits.device)
        if bool((labels != -100).any()):
            loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                   weight=self.class_weights.to(logits.device), ignore_index=-100)
        else:  # nothing to learn from this batch; a mean over no labels would be NaN
            loss = logits.sum() * 0.0
        return (loss, outputs) if return_outputs else loss


def class_weights_from_counts(counts, max_weight: float = 10.0) -> torch.Tensor:
    """Balanced class weights: `n_items / (n_classes * n_c)` (scikit-learn's "balanced"), so every class present
    in training weighs as much in the loss as any other, capped at `max_weight` so a class with a handful of
    items cannot dominate; absent classes get 0.

    Example:

    ```python
    >>> class_weights_from_counts([90, 10]).tolist()
    [0.5555555820465942, 5.0]
    ```
    """
    counts = torch.as_tensor(counts, dtype=torch.float64)
    present = counts > 0
    weights = torch.zeros_like(counts)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return weights.clamp(max=max_weight).float()


class FinetuneProgress(TrainerCallback):
    """One progress bar over the training steps whose label is ``epoch e/E | best dev <metric> x``; logged
    losses and dev metrics are printed above it as plain numbers."""

    def __init__(self, metric: str):
        self.metric = metric
        self.best: float | None = None
        self.bar = None

    def _label(self, args, state) -> str:
        total = math.ceil(args.num_train_epochs) if state.max_steps <= 0 or args.max_steps <= 0 else None
        epoch = min(int(state.epoch or 0) + 1, total) if total else int(state.epoch or 0) + 1
        best = "-" if self.best is None else f"{self.best:.3f}"
        return f"epoch {epoch}/{total or '?'} | best dev {self.metric} {best}"

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=state.max_steps, dynamic_ncols=True, desc=self._label(args, state))

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)
            self.bar.set_description(self._label(args, state), refresh=False)

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        value = (metrics or {}).get(f"eval_{self.metric}")
        if value is not None and (self.best is None or value > self.best):
            self.best = float(value)
        if self.bar is not None:
            self.bar.set_description(self._label(args, state))

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        shown = {k: v for k, v in logs.items() if k not in ("total_flos",) and not k.endswith("_per_second")}
        text = "  ".join(f"{k} {_number(v)}" for k, v in shown.items())
        line = f"step {state.global_step}: {text}"
        (self.bar.write if self.bar is not None else print)(line)

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class TrainingTimeBudget(TrainerCallback):
    """Stop training once `minutes` of it have passed (checked after every optimizer step), so "train until the dev
    score stops improving" has a bound a user can see before the run starts. `fired` says whether it stopped the
    run; the best evaluated epoch is still the one kept (`load_best_model_at_end`).

    Example:

    ```python
    >>> budget = TrainingTimeBudget(minutes=30)
    >>> trainer = FinetuneTrainer(..., callbacks=[budget])                     # doctest: +SKIP
    >>> trainer.train(); budget.fired                                        # doctest: +SKIP
    False

    ```
    """

    def __init__(self, minutes: float):
        self.seconds = 60.0 * minutes
        self.started: float | None = None
        self.fired = False

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = time.monotonic()

    def on_step_end(self, args, state, control, **kwargs):
        if self.started is not None and time.monotonic() - self.started >= self.seconds:
            control.should_training_stop = True
            self.fired = True


def stopped_by(budget: TrainingTimeBudget | None, state, args) -> str:
    """Why training ended: `"time budget"`, `"max_steps"`, `"early stopping"` (before the epoch cap) or
    `"epoch cap"`, from the `TrainerState` and `TrainingArguments` of the finished run."""
    if budget is not None and budget.fired:
        return "time budget"
    if args.max_steps > 0 and state.global_step >= args.max_steps:
        return "max_steps"
    return "early stopping" if (state.epoch or 0) < args.num_train_epochs - 1e-6 else "epoch cap"


def _number(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
