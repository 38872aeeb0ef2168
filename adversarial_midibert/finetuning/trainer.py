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
from transformers import EarlyStoppingCallback, Trainer, TrainerCallback
from transformers.trainer_callback import ExportableState, ProgressCallback
from transformers.trainer_utils import SchedulerType

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
        time_budget (`TrainingTimeBudget`, *optional*): stops training when its time is spent, and fits the
            linear learning-rate schedule to it (`budget_linear_schedule`): warm-up over the first 10 % and decay
            to 0 at the end of the steps or of the budget, whichever comes first. Other `lr_scheduler_type`s keep
            their step schedules.
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
                 progress_metric: str | None = None, time_budget: TrainingTimeBudget | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.time_budget = time_budget
        if time_budget is not None:
            self.add_callback(time_budget)
        if transpose_semitones < 0:
            raise ValueError(f"transpose_semitones must be >= 0, got {transpose_semitones}")
        self.transpose_semitones = int(transpose_semitones)
        self.class_weights = None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32)
        # Keyword arguments of `write_model_card` (task, labels, data, settings, metrics), set by finetune.py.
        self.model_card_facts: dict | None = None
        if progress_metric is not None and not self.args.disable_tqdm:
            self.remove_callback(ProgressCallback)
            self.add_callback(FinetuneProgress(progress_metric))

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        if (self.lr_scheduler is None and self.time_budget is not None
                and self.args.lr_scheduler_type == SchedulerType.LINEAR):
            self.lr_scheduler = budget_linear_schedule(optimizer or self.optimizer,
                                                       warmup_share(self.args, num_training_steps),
                                                       num_training_steps, self.time_budget)
            self._created_lr_scheduler = True  # the Trainer rebuilds it on the next train(), like its own
        return super().create_scheduler(num_training_steps, optimizer)

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


class TrainingTimeBudget(TrainerCallback, ExportableState):
    """Stop training once `minutes` of it have passed (checked after every optimizer step), so "train until the dev
    score stops improving" has a bound a user can see before the run starts. `fired` says whether it stopped the
    run; the best evaluated epoch is still the one kept (`load_best_model_at_end`).

    `fraction` (time spent / budget) also drives the learning-rate schedule (`budget_linear_schedule`) and the
    warm-up that early stopping waits for (`EarlyStoppingAfterWarmup`). The time spent is saved in every checkpoint
    and carried over by `--resume_from_checkpoint`, so a resumed run neither restarts its budget nor re-warms.
    Under several processes every rank uses the slowest rank's clock (one all-reduce per step), so all of them
    stop at the same step with the same learning rate.

    Example:

    ```python
    >>> budget = TrainingTimeBudget(minutes=30)
    >>> trainer = FinetuneTrainer(..., callbacks=[budget])                     # doctest: +SKIP
    >>> trainer.train(); budget.fired                                        # doctest: +SKIP
    False

    ```
    """

    def __init__(self, minutes: float, carried_seconds: float = 0.0):
        self.seconds = 60.0 * minutes
        self.carried_seconds = float(carried_seconds)  # spent before a resume
        self.elapsed_seconds = self.carried_seconds  # as of the last optimizer step, agreed by all ranks
        self.started: float | None = None
        self.fired = False

    @property
    def fraction(self) -> float:
        """Share of the budget spent as of the last optimizer step (0 before training starts)."""
        return self.elapsed_seconds / self.seconds if self.seconds > 0 else 1.0

    def on_train_begin(self, args, state, control, **kwargs):
        saved = (state.stateful_callbacks or {}).get(type(self).__name__) if state.global_step > 0 else None
        if isinstance(saved, dict):
            self.carried_seconds = float(saved.get("attributes", {}).get("carried_seconds", 0.0))
        self.elapsed_seconds = self.carried_seconds
        self.started = time.monotonic()

    def on_step_end(self, args, state, control, **kwargs):
        if self.started is None:
            return
        elapsed = self.carried_seconds + time.monotonic() - self.started
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            slowest = torch.tensor([elapsed], dtype=torch.float64, device=args.device)
            torch.distributed.all_reduce(slowest, op=torch.distributed.ReduceOp.MAX)
            elapsed = float(slowest.item())
        self.elapsed_seconds = elapsed
        if elapsed >= self.seconds:
            control.should_training_stop = True
            self.fired = True

    def state(self) -> dict:
        return {"args": {"minutes": self.seconds / 60.0},
                "attributes": {"carried_seconds": self.elapsed_seconds, "fired": self.fired}}


def training_progress(step: int, total_steps: int, budget: TrainingTimeBudget | None) -> float:
    """How far through its schedule a run is, 0 to 1: the larger of the steps done and the time budget spent, so
    a run cut short by its budget still warms up over its first 10 % and decays to 0 at its end (issue 19: with a
    5-minute budget, a 40-epoch step schedule left ASAP runs in warm-up or at peak rate when time ran out)."""
    done = step / max(total_steps, 1)
    return min(max(done, budget.fraction if budget is not None else 0.0), 1.0)


def budget_linear_schedule(optimizer, warmup_share: float, total_steps: int, budget: TrainingTimeBudget | None):
    """Linear warm-up over the first `warmup_share` of `training_progress`, then linear decay to 0 at its end: the
    stock linear schedule when no budget binds, the same shape fitted to the clock when one does."""

    def multiplier(step: int) -> float:
        progress = training_progress(step, total_steps, budget)
        if progress < warmup_share:
            return progress / warmup_share
        return max(0.0, (1.0 - progress) / max(1.0 - warmup_share, 1e-8))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, multiplier)


def warmup_share(args, total_steps: int) -> float:
    """The warm-up's share of the schedule, from `warmup_steps` (a ratio below 1, a step count from 1 up)."""
    return args.get_warmup_steps(total_steps) / max(total_steps, 1)


class EarlyStoppingAfterWarmup(EarlyStoppingCallback):
    """`EarlyStoppingCallback` whose patience starts counting once the warm-up is over: before that the learning
    rate is still rising, and dev scores say nothing about where the run is going. Why: with patience 4 and a
    warm-up of 10 % of a 40-epoch schedule (4 epochs), Pianist8 runs stopped 7-15 epochs in, before their rate
    had peaked for long; with early stopping off they scored 0.09-0.12 higher (issue 19).

    Args:
        budget (`TrainingTimeBudget`, *optional*): the run's time budget, whose spent share counts as progress.
        early_stopping_patience, early_stopping_threshold: as `EarlyStoppingCallback`.
    """

    def __init__(self, early_stopping_patience: int = 1, early_stopping_threshold: float | None = 0.0,
                 budget: TrainingTimeBudget | None = None):
        super().__init__(early_stopping_patience, early_stopping_threshold)
        self.budget = budget

    def on_evaluate(self, args, state, control, metrics, **kwargs):
        if training_progress(state.global_step, state.max_steps, self.budget) < warmup_share(args, state.max_steps):
            return
        super().on_evaluate(args, state, control, metrics, **kwargs)


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
