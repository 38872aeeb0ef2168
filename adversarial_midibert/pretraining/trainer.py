"""`AdversarialTrainer`: adversarial masked pre-training (SPEC.md, steps 1-6) as a `transformers.Trainer`.

The model's forward does one whole adversarial step (masker on the clean input, choice, corruption, recoverer,
eq. 1 and eq. 3). The trainer supplies what lives across steps:

- `selectable_mask`: real notes minus the notes frozen in the `FreezeBook` (read through each window's
  `song_index` / `window_start`), added to every training batch;
- `attribute_weights` (eq. 2): 1/8 in the first epoch, then proportional to 1 / accuracy of each attribute on the
  TRAINING masked notes of the previous epoch, summed over all processes (with
  `config.attribute_weights_every_steps` = N > 0, also every N steps from the current epoch's notes so far);
- the freeze-book update every `config.freeze_every_epochs` epochs: the masker scores the whole training set
  (each process a shard, gathered), and every process applies the same seeded update;
- loss scaling: the recoverer loss is divided by the number of chosen notes of the whole accumulated batch (all
  gradient-accumulation micro-batches, all processes) and the masker loss is weighted by each micro-batch's share
  of masker targets, so 2 accumulation steps of B windows give the gradient of one step of 2B;
- a dedicated masking generator per process (transposition, corruption, random-mode scores) saved with every
  checkpoint, and a fixed-seed generator for evaluation, so evaluation is deterministic and a resumed run
  continues exactly.
"""

from __future__ import annotations

import itertools
import json
import os
import warnings
from typing import Any

import numpy as np
import torch
from transformers import Trainer, TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from configuration_adversarial_midibert import MASKINGS

from adversarial_midibert.data.collator import OctupleDataCollator
from adversarial_midibert.data.dataset import song_note_counts
from adversarial_midibert.evaluation.recovery import RECOVERY_MASK_PERCENT
from adversarial_midibert.hub.push import HubTrainerMixin
from adversarial_midibert.pretraining.freeze_book import FREEZE_BOOK_NAME, FreezeBook
from adversarial_midibert.pretraining.masker_metrics import auc, loss_ranked_auc_counts

ATTRIBUTES = ("bar", "position", "instrument", "pitch", "duration", "velocity", "time_signature", "tempo")
# The masking modes that keep a freeze book: the method itself, and random choice with the same freezing (control).
FREEZING_MASKINGS = ("adversarial", "random_freeze")
TRAINER_STATE_FILE = "adversarial_state.pt"
# Eq. 2 divides by each attribute's accuracy; an attribute never recovered in an epoch would get an infinite
# weight, so accuracies are floored here (weight ratio at most 100 : 1 against a perfectly recovered attribute).
MIN_ACCURACY = 0.01


def attribute_weights_from_accuracy(correct: torch.Tensor, chosen: float) -> torch.Tensor:
    """Eq. 2: w_j proportional to 1 / a_j, normalised to sum 1, with a_j = correct_j / chosen.

    Example:

    >>> import torch
    >>> from adversarial_midibert.pretraining.trainer import attribute_weights_from_accuracy
    >>> w = attribute_weights_from_accuracy(torch.tensor([50.0, 100, 100, 100, 100, 100, 100, 100]), 100)
    >>> round(float(w[0] / w[1]), 3), round(float(w.sum()), 6)
    (2.0, 1.0)
    """
    accuracy = (correct.double() / max(float(chosen), 1.0)).clamp(min=MIN_ACCURACY)
    inverse = 1.0 / accuracy
    return (inverse / inverse.sum()).float()


def build_freeze_book(train_dataset) -> tuple[FreezeBook, np.ndarray]:
    """A fresh book for every song of a window dataset, and the map `song_index -> book row` (-1: none)."""
    counts = song_note_counts(train_dataset)
    song_ids = sorted(counts)
    book = FreezeBook(song_ids, [counts[s] for s in song_ids])
    song_index = np.asarray(train_dataset["song_index"], dtype=np.int64)
    rows = np.full(int(song_index.max()) + 1 if len(song_index) else 0, -1, dtype=np.int64)
    for index, song_id in zip(song_index.tolist(), train_dataset["song_id"]):
        rows[index] = book.row_of[song_id]
    return book, rows


def last_complete_checkpoint(folder: str) -> str | None:
    """The newest `checkpoint-<step>` folder of `folder` that holds a readable `trainer_state.json` (the Trainer
    writes it last) and this trainer's state; `None` when there is none. A torn checkpoint (a process killed while
    writing, a full disk: `trainer_state.json` cut short) is skipped with a warning naming it."""
    if not os.path.isdir(folder):
        return None
    steps = []
    for name in os.listdir(folder):
        if name.startswith(f"{PREFIX_CHECKPOINT_DIR}-") and name.rsplit("-", 1)[1].isdigit():
            steps.append((int(name.rsplit("-", 1)[1]), os.path.join(folder, name)))
    for _, path in sorted(steps, reverse=True):
        state = os.path.join(path, "trainer_state.json")
        if not (os.path.isfile(state) and os.path.isfile(os.path.join(path, TRAINER_STATE_FILE))):
            continue
        try:
            with open(state) as f:
                json.load(f)
        except (OSError, ValueError) as error:
            warnings.warn(f"skipping the unreadable checkpoint {path} ({type(error).__name__}: {error}); resuming "
                          "from an older one", stacklevel=2)
            continue
        return path
    return None


class _EpochDataLoader(torch.utils.data.DataLoader):
    """A plain DataLoader that passes `set_epoch` on to its dataset (the Trainer calls it every epoch)."""

    def set_epoch(self, epoch: int) -> None:
        self.dataset.set_epoch(epoch)


class _EpochCallback(TrainerCallback):
    """Closes each epoch (eq. 2 weights, freeze-book update) at its end, and after a resume from a checkpoint
    saved on an epoch's last step (that epoch's end never ran in the interrupted process)."""

    def __init__(self, trainer: "AdversarialTrainer"):
        self.trainer = trainer

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.trainer._close_epochs(state)

    def on_epoch_end(self, args, state, control, **kwargs):
        self.trainer._close_epochs(state)

    def on_step_end(self, args, state, control, **kwargs):
        every = int(self.trainer._config().attribute_weights_every_steps)
        if every > 0 and state.global_step % every == 0:
            self.trainer._refresh_attribute_weights()


class AdversarialTrainer(HubTrainerMixin, Trainer):
    """A `Trainer` for `AdversarialMidiBertForPreTraining` (adversarial or random masking).

    Args:
        model (`AdversarialMidiBertForPreTraining`): the network; its config holds p, q, a, b and k.
        args (`TrainingArguments`): `remove_unused_columns` is forced to `False` (the batches carry `song_index`
            and `window_start`) and `label_names` to `[]`.
        train_dataset (`datasets.Dataset` or `ShardedWindowStream`): windows from `build_window_dataset`, or this
            process's stream of pre-tokenized shards (`adversarial_midibert.pretraining.streaming`).
        eval_dataset (`datasets.Dataset`, *optional*): windows of held-out songs.
        processing_class (`OctupleTokenizer`, *optional*): saved with the model; gives the PAD ids.
        masking (`str`, *optional*): `"adversarial"`, `"random"` or `"random_freeze"`; defaults to
            `model.config.masking`.
        transpose_semitones (`int`, *optional*, defaults to 6): k of the transposition of training batches.
        freeze_book (`FreezeBook`, *optional*): built from `train_dataset` when not given.
        song_rows (`np.ndarray`, *optional*): `song_index -> freeze-book row`, with `freeze_book`.
        freeze_book_shards (`dict[str, list[str]]`, *optional*): with a `ShardedWindowStream` (streaming), the
            data shards of this process and their song ids: the book is saved and restored shard by shard.
        eval_seed (`int`, *optional*): seed of evaluation masking; defaults to `args.seed`.
        Other keyword arguments go to `Trainer`.

    Example:

    >>> from transformers import TrainingArguments
    >>> from tokenization_octuple import OctupleTokenizer
    >>> from configuration_adversarial_midibert import AdversarialMidiBertConfig
    >>> from modeling_adversarial_midibert import AdversarialMidiBertForPreTraining
    >>> from adversarial_midibert.data.dataset import build_window_dataset, find_midi_files
    >>> from adversarial_midibert.presets import SAMPLE_MIDI
    >>> from adversarial_midibert.pretraining.trainer import AdversarialTrainer
    >>> tok = OctupleTokenizer(max_length=128)
    >>> windows, _ = build_window_dataset(find_midi_files(SAMPLE_MIDI / "pop909")[:2], tok)
    >>> model = AdversarialMidiBertForPreTraining(AdversarialMidiBertConfig.from_preset("tiny"))
    >>> args = TrainingArguments("/tmp/doctest-pretrain", max_steps=2, per_device_train_batch_size=4, logging_steps=1,
    ...                          report_to="none", use_cpu=True, save_strategy="no", disable_tqdm=True)
    >>> trainer = AdversarialTrainer(model=model, args=args, train_dataset=windows, processing_class=tok)
    >>> result = trainer.train()  # doctest: +ELLIPSIS
    {...}
    >>> result.global_step, sorted(k for k in trainer.state.log_history[0] if k.startswith("weight_"))[:2]
    (2, ['weight_bar', 'weight_duration'])
    """

    model_card_kind = "pretrained"

    def __init__(
        self,
        model=None,
        args=None,
        *,
        masking: str | None = None,
        transpose_semitones: int = 6,
        freeze_book: FreezeBook | None = None,
        song_rows: np.ndarray | None = None,
        freeze_book_shards: dict[str, list[str]] | None = None,
        eval_seed: int | None = None,
        **kwargs,
    ):
        # The batches carry song_index / window_start, which the model's signature does not list.
        args.remove_unused_columns = False
        args.label_names = []
        if getattr(args, "ddp_find_unused_parameters", None) is None:
            args.ddp_find_unused_parameters = False
        if kwargs.get("data_collator") is None:
            pad = kwargs.get("processing_class")
            pad = model.config.pad_token_ids if pad is None else pad
            kwargs["data_collator"] = OctupleDataCollator(pad)
        super().__init__(model=model, args=args, **kwargs)
        config = model.config
        self.masking = masking or config.masking
        if self.masking not in MASKINGS:
            raise ValueError(f"masking must be one of {MASKINGS}, got {self.masking!r}")
        self.transpose_semitones = int(transpose_semitones)
        self.eval_seed = self.args.seed if eval_seed is None else int(eval_seed)
        # Our compute_loss normalises over the whole accumulated batch itself (see get_batch_samples).
        self.loss_is_scaled_for_ga = True

        if freeze_book is None and self.train_dataset is not None:
            freeze_book, song_rows = build_freeze_book(self.train_dataset)
        self.freeze_book = freeze_book
        self.song_rows = song_rows
        self.freeze_book_shards = freeze_book_shards

        n = len(config.vocab_sizes)
        self.attribute_weights = torch.full((n,), 1.0 / n)
        self.epochs_closed = 0
        self.last_epoch_accuracy: torch.Tensor | None = None
        device = self.args.device
        self._epoch_correct = torch.zeros(n, dtype=torch.float64, device=device)
        self._epoch_chosen = torch.zeros((), dtype=torch.float64, device=device)
        self._log_sums = self._zero_sums(device)
        self._eval_sums = self._zero_sums(device)
        # One masking stream per process, so the processes corrupt their (different) windows independently.
        self.masking_generator = torch.Generator().manual_seed(self.args.seed * 1_000_003 + self.args.process_index)
        self._eval_generator: torch.Generator | None = None
        self._random_eval_generator: torch.Generator | None = None
        self._masker_targets_in_batch: torch.Tensor | None = None
        self.model_card_facts: dict[str, Any] = {}
        self.last_evaluation: dict[str, float] = {}
        self.add_callback(_EpochCallback(self))

    # ------------------------------------------------------------------ optimizer

    def create_optimizer(self, model=None):
        """The Trainer's optimizer, with the masker head's parameters in groups of their own whose learning rate is
        `config.masker_lr_scale` times the others' (the schedule scales every group alike). Why: the recoverer
        learns the notes the masker picks at the full rate, so a masker head that learns no faster keeps chasing a
        ranking that has already changed."""
        optimizer = super().create_optimizer(model)
        scale = self._config().masker_learning_rate_scale
        if scale == 1.0 or getattr(optimizer, "_masker_groups", False):
            return optimizer
        masker = {id(p) for p in self.accelerator.unwrap_model(self.model).masker.parameters()}
        groups = []
        for group in optimizer.param_groups:
            for is_masker in (False, True):
                params = [p for p in group["params"] if (id(p) in masker) == is_masker]
                if params:
                    groups.append({**group, "params": params, "lr": group["lr"] * (scale if is_masker else 1.0)})
        optimizer.param_groups = groups
        optimizer._masker_groups = True
        return optimizer

    # ------------------------------------------------------------------ batches and loss

    def get_train_dataloader(self):
        if not getattr(self.train_dataset, "sharded_by_rank", False):
            return super().get_train_dataloader()
        # Each process already streams only its own shards: Accelerate must neither split nor dispatch them.
        return _EpochDataLoader(self.train_dataset, batch_size=self._train_batch_size, collate_fn=self.data_collator,
                                num_workers=self.args.dataloader_num_workers)

    @staticmethod
    def _zero_sums(device) -> dict[str, torch.Tensor]:
        return {
            "correct": torch.zeros(len(ATTRIBUTES), dtype=torch.float64, device=device),
            "chosen": torch.zeros((), dtype=torch.float64, device=device),
            "recoverer_loss": torch.zeros((), dtype=torch.float64, device=device),
            "masker_loss": torch.zeros((), dtype=torch.float64, device=device),
            "batches": torch.zeros((), dtype=torch.float64, device=device),
            "windows": torch.zeros((), dtype=torch.float64, device=device),
            "masker_spread": torch.zeros((), dtype=torch.float64, device=device),
            # masker AUC pairs (concordant, all) and windows whose choice the frozen notes capped
            "auc_concordant": torch.zeros((), dtype=torch.float64, device=device),
            "auc_pairs": torch.zeros((), dtype=torch.float64, device=device),
            "capped": torch.zeros((), dtype=torch.float64, device=device),
            # evaluation under a fixed uniformly random masking: correct per attribute, masked notes
            "random_correct": torch.zeros(len(ATTRIBUTES), dtype=torch.float64, device=device),
            "random_chosen": torch.zeros((), dtype=torch.float64, device=device),
        }

    def _config(self):
        return self.accelerator.unwrap_model(self.model).config

    def _real_notes(self, batch) -> torch.Tensor:
        config = self._config()
        return (batch["input_ids"][..., 3] < config.attribute_vocab_sizes[3]) & batch["attention_mask"].bool()

    def _selectable(self, batch, real: torch.Tensor) -> torch.Tensor:
        if self.masking not in FREEZING_MASKINGS or self.freeze_book is None or "song_index" not in batch:
            return real
        song_index = batch["song_index"].cpu().numpy()
        inside = song_index < len(self.song_rows)
        rows = np.where(inside, self.song_rows[np.minimum(song_index, len(self.song_rows) - 1)], -1)
        return self.freeze_book.selectable_mask(torch.from_numpy(rows), batch["window_start"].cpu(), real)

    def _planned_counts(self, real: torch.Tensor, selectable: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Chosen notes and masker targets the model will use for this batch: they depend only on the counts of
        real and selectable notes, so they are known before the forward (the model's own rules are reused). Also
        counts the windows where frozen notes left fewer selectable notes than p % of the real ones
        (`capped_fraction` in the logs: there the masker has no choice left)."""
        from modeling_adversarial_midibert import choose_notes, masker_targets

        config = self._config()
        no_scores = torch.zeros(real.shape, device=real.device)
        chosen = choose_notes(no_scores, selectable, real.sum(-1), config.mask_percent)
        uncapped = choose_notes(no_scores, real, real.sum(-1), config.mask_percent)
        self._log_sums["capped"] += (chosen.sum(-1) < uncapped.sum(-1)).sum().to(self._log_sums["capped"])
        num_targets = torch.zeros((), dtype=torch.long, device=real.device)
        if self.masking == "adversarial":
            # Distinct losses so the hardest and the easiest q % never overlap: only their number matters here.
            ramp = torch.arange(real.shape[-1], device=real.device, dtype=torch.float32).expand(real.shape)
            num_targets = masker_targets(ramp, chosen, config.masker_target_percent)[1].sum()
        return chosen.sum(), num_targets

    def get_batch_samples(self, epoch_iterator, num_batches, device):
        """Prefetch the micro-batches of one optimizer step, augment them (transposition, frozen notes) and count
        the chosen notes and masker targets of the whole accumulated batch, over all processes."""
        batches = []
        for _ in range(num_batches):
            try:
                batches.append(next(epoch_iterator))
            except StopIteration:
                break
        total_chosen = torch.zeros((), dtype=torch.long, device=device)
        total_targets = torch.zeros((), dtype=torch.long, device=device)
        for batch in batches:
            if self.transpose_semitones > 0:
                batch["input_ids"] = self._transpose(batch["input_ids"])
            real = self._real_notes(batch)
            selectable = self._selectable(batch, real)
            chosen, targets = self._planned_counts(real, selectable)
            batch["selectable_mask"] = selectable
            batch["num_masker_targets"] = targets
            total_chosen += chosen.to(device)
            total_targets += targets.to(device)
        if self.args.average_tokens_across_devices and self.args.world_size > 1:
            totals = self.accelerator.reduce(torch.stack([total_chosen, total_targets]), reduction="sum")
            total_chosen, total_targets = totals[0], totals[1]
        self._masker_targets_in_batch = total_targets
        return batches, total_chosen

    def _transpose(self, input_ids: torch.Tensor) -> torch.Tensor:
        from tokenization_octuple import OctupleTokenizer

        return OctupleTokenizer.random_transpose(input_ids, self.transpose_semitones, self.masking_generator)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """Run the adversarial step. Training: loss = recoverer loss (eq. 1 summed over the chosen notes of the
        micro-batch / chosen notes of the accumulated batch) + masker loss (eq. 3) weighted by the micro-batch's
        share of the accumulated batch's masker targets. Evaluation: no frozen notes, the fixed-seed generator."""
        training = model.training
        device = inputs["input_ids"].device
        generator = self.masking_generator if training else self._eval_generator
        outputs = model(
            input_ids=inputs["input_ids"],
            attention_mask=inputs["attention_mask"],
            selectable_mask=inputs.get("selectable_mask") if training else None,
            attribute_weights=self.attribute_weights.to(device),
            masking=self.masking,
            num_items_in_batch=num_items_in_batch if training else None,
            generator=generator,
        )
        masker_loss = outputs.masker_loss
        if training and num_items_in_batch is not None:
            share = inputs["num_masker_targets"].to(device).double() / self._masker_targets_in_batch.clamp(min=1)
            masker_loss = masker_loss * share.to(masker_loss.dtype)
            if self.args.average_tokens_across_devices and self.args.world_size > 1:
                # DDP averages the processes' gradients; the loss was normalised by the global counts.
                masker_loss = masker_loss * self.args.world_size
        recoverer_loss = outputs.recoverer_loss
        if training and num_items_in_batch is not None and self.args.average_tokens_across_devices:
            recoverer_loss = recoverer_loss * max(self.args.world_size, 1)
        loss = recoverer_loss + masker_loss
        if training:
            self._accumulate(self._log_sums, outputs, self._real_notes(inputs))
            self._epoch_correct += outputs.attribute_correct.detach().double()
            self._epoch_chosen += outputs.num_chosen.detach().double()
        else:
            self._accumulate_evaluation(model, inputs, outputs)
        return (loss, outputs) if return_outputs else loss

    def _accumulate(self, sums, outputs, real: torch.Tensor) -> None:
        sums["correct"] += outputs.attribute_correct.detach().double()
        sums["chosen"] += outputs.num_chosen.detach().double()
        # Per-micro-batch means as the model reports them (recoverer over its own chosen notes), for logging only.
        chosen = outputs.num_chosen.detach().double().clamp(min=1)
        sums["recoverer_loss"] += outputs.note_losses.detach().double().sum() / chosen
        sums["masker_loss"] += outputs.masker_loss.detach().double()
        sums["batches"] += 1
        sums["windows"] += real.shape[0]
        if outputs.masker_probabilities is not None and bool(real.any()):
            # How far apart the masker's scores are: near 0 it tells no note from another, and its top-p % choice
            # is an arbitrary fixed order rather than the hardest notes.
            sums["masker_spread"] += outputs.masker_probabilities.detach()[real].double().std(correction=0)
            # How well the masker orders the notes it was trained on in this batch (eq. 3's pairs): cheap, but
            # on notes it partly chose itself; `eval_masker_auc` asks the same on uniformly random notes.
            concordant, pairs = loss_ranked_auc_counts(outputs.masker_logits, outputs.note_losses, outputs.chosen_mask,
                                                       self._config().masker_target_percent)
            sums["auc_concordant"] += concordant.to(sums["auc_concordant"])
            sums["auc_pairs"] += pairs.to(sums["auc_pairs"])

    def _accumulate_evaluation(self, model, inputs, outputs) -> None:
        """Evaluation sums per window, gathered with `gather_for_metrics`: in data-parallel evaluation Accelerate
        pads the last batch with repeated windows, and those must not be counted twice.

        Besides the step's own masking (the masker's picks, the current eq. 2 weights), every window is also
        recovered under a FIXED uniformly random masking of `RECOVERY_MASK_PERCENT` % of the notes with uniform
        weights: the same notes for every checkpoint, masking mode and pre-training masking rate, so
        `eval_random_recovery_accuracy` compares them. Its hardest and easiest notes are what `eval_masker_auc` asks
        the masker (scored on the clean input) to tell apart."""
        input_ids = inputs["input_ids"]
        n = len(ATTRIBUTES)
        uniform = torch.full((n,), 1.0 / n, device=input_ids.device)
        probe = model(input_ids=input_ids, attention_mask=inputs["attention_mask"], attribute_weights=uniform,
                      masking="random", mask_percent=RECOVERY_MASK_PERCENT, generator=self._random_eval_generator)
        per_window = [self._correct_per_window(input_ids, outputs), self._correct_per_window(input_ids, probe)]
        per_window.append(torch.stack([outputs.note_losses.sum(-1).double()], dim=-1))
        auc_columns = torch.zeros(input_ids.shape[0], 2, dtype=torch.float64, device=input_ids.device)
        if outputs.masker_logits is not None:  # per window, so the gathered sums count each window once
            auc_columns = torch.stack(loss_ranked_auc_counts(outputs.masker_logits, probe.note_losses, probe.chosen_mask,
                                                             self._config().masker_target_percent, per_sequence=True), -1)
        per_window = self.accelerator.gather_for_metrics(torch.cat(per_window + [auc_columns], dim=-1))
        sums = self._eval_sums
        sums["correct"] += per_window[:, :8].sum(0)
        sums["chosen"] += per_window[:, 8].sum()
        sums["random_correct"] += per_window[:, 9:17].sum(0)
        sums["random_chosen"] += per_window[:, 17].sum()
        sums["recoverer_loss"] += per_window[:, 18].sum()
        sums["auc_concordant"] += per_window[:, 19].sum()
        sums["auc_pairs"] += per_window[:, 20].sum()
        sums["windows"] += len(per_window)
        # The masker loss is a mean over the batch's masker targets: averaged over this process's batches, then
        # over the processes (a padded last batch weighs in like any other).
        sums["masker_loss"] += outputs.masker_loss.detach().double()
        sums["batches"] += 1

    @staticmethod
    def _correct_per_window(input_ids: torch.Tensor, outputs) -> torch.Tensor:
        # (windows, 9): notes whose attribute j was recovered, then the number of predicted notes.
        # The recoverer's logits cover the chosen notes only, in row-major order: put each hit back in its window.
        chosen = outputs.chosen_mask
        targets = input_ids[chosen]
        correct = [chosen.masked_scatter(chosen, logits.argmax(-1) == targets[:, j]).sum(-1)
                   for j, logits in enumerate(outputs.logits)]
        return torch.stack(correct + [chosen.sum(-1)], dim=-1).double()

    def _summarise_evaluation(self, prefix: str) -> dict[str, float]:
        sums = self._eval_sums
        masker = torch.stack([sums["masker_loss"], sums["batches"]])
        if self.args.world_size > 1:
            masker = self.accelerator.reduce(masker, reduction="sum")
        chosen = sums["chosen"].clamp(min=1)
        out = {f"{prefix}recoverer_loss": float(sums["recoverer_loss"] / chosen),
               f"{prefix}masker_loss": float(masker[0] / masker[1].clamp(min=1)),
               f"{prefix}accuracy": float(sums["correct"].sum() / (8 * chosen)),
               f"{prefix}windows": float(sums["windows"]),
               f"{prefix}masked_notes": float(sums["chosen"])}
        out.update({f"{prefix}accuracy_{name}": float(sums["correct"][j] / chosen) for j, name in enumerate(ATTRIBUTES)})
        random_chosen = sums["random_chosen"].clamp(min=1)
        out[f"{prefix}random_recovery_accuracy"] = float(sums["random_correct"].sum() / (8 * random_chosen))
        out[f"{prefix}random_masked_notes"] = float(sums["random_chosen"])
        out.update({f"{prefix}random_recovery_accuracy_{name}": float(sums["random_correct"][j] / random_chosen)
                    for j, name in enumerate(ATTRIBUTES)})
        if self.masking == "adversarial":
            out[f"{prefix}masker_auc"] = auc(sums["auc_concordant"], sums["auc_pairs"])
        return out

    def _summarise_training(self, sums) -> dict[str, float]:
        names = ("chosen", "recoverer_loss", "masker_loss", "masker_spread", "batches", "windows", "capped",
                 "auc_concordant", "auc_pairs")
        totals = torch.cat([sums["correct"], torch.stack([sums[k] for k in names])])
        if self.args.world_size > 1:
            totals = self.accelerator.reduce(totals, reduction="sum")
        totals = totals.cpu()
        correct, (chosen, recoverer, masker, spread, batches, windows, capped, concordant, pairs) = totals[:8], totals[8:]
        out = {"recoverer_loss": float(recoverer / batches.clamp(min=1)),
               "masker_loss": float(masker / batches.clamp(min=1)),
               "accuracy": float(correct.sum() / (8 * chosen).clamp(min=1))}
        if self.masking in FREEZING_MASKINGS:
            out["capped_fraction"] = float(capped / windows.clamp(min=1))
        if self.masking == "adversarial":
            out["masker_spread"] = float(spread / batches.clamp(min=1))
            out["masker_auc"] = auc(concordant, pairs)
        out.update({f"accuracy_{name}": float(correct[j] / chosen.clamp(min=1)) for j, name in
                    enumerate(ATTRIBUTES)})
        return out

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs:  # the periodic training log, reached by every process at the same step
            logs.update(self._summarise_training(self._log_sums))
            self._log_sums = self._zero_sums(self.args.device)
            logs.update({f"weight_{name}": float(w) for name, w in zip(ATTRIBUTES, self.attribute_weights)})
            if self.freeze_book is not None:
                logs["frozen_fraction"] = self.freeze_book.frozen_fraction()
        super().log(logs, start_time)

    # ------------------------------------------------------------------ evaluation

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad(), self.compute_loss_context_manager():
            loss = self.compute_loss(model, inputs)
        return loss.detach(), None, None

    def evaluation_loop(self, dataloader, description, prediction_loss_only=None, ignore_keys=None,
                        metric_key_prefix="eval"):
        """The Trainer's loop with a freshly seeded masking generator (the same masked notes at every evaluation)
        and per-attribute recovery accuracy summed over all processes."""
        self._eval_generator = torch.Generator().manual_seed(self.eval_seed)
        # A second fixed stream for the random-masking probe: its notes do not depend on the masking mode.
        self._random_eval_generator = torch.Generator().manual_seed(self.eval_seed + 1)
        self._eval_sums = self._zero_sums(self.args.device)
        # Evaluation must not move the global RNG that training draws dropout from: creating the DataLoader
        # iterator draws a seed from it, and a run resumed from a checkpoint saved just before an epoch-end
        # evaluation never repeats that evaluation, so its dropout would drift from the uninterrupted run's.
        devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
        with torch.random.fork_rng(devices=devices):
            output = super().evaluation_loop(dataloader, description, True, ignore_keys, metric_key_prefix)
        output.metrics.update(self._summarise_evaluation(f"{metric_key_prefix}_"))
        self.last_evaluation = dict(output.metrics)
        return output

    # ------------------------------------------------------------------ epochs and freezing

    def _close_epochs(self, state) -> None:
        completed = int(state.epoch + 1e-9) if state.epoch is not None else 0
        while self.epochs_closed < completed:
            self._close_epoch()

    def _epoch_totals(self) -> torch.Tensor:
        """This epoch's correct recoveries per attribute and its chosen notes so far, summed over processes."""
        totals = torch.cat([self._epoch_correct, self._epoch_chosen.reshape(1)])
        if self.args.world_size > 1:
            totals = self.accelerator.reduce(totals, reduction="sum")
        return totals.cpu()

    def _refresh_attribute_weights(self, totals: torch.Tensor | None = None) -> None:
        """Eq. 2 from `totals` (default: the current epoch's notes so far, for
        `config.attribute_weights_every_steps`); every process calls it at the same step, so the weights stay
        identical. The saved epoch sums make a resume exact."""
        totals = self._epoch_totals() if totals is None else totals
        if totals[8] > 0:
            self.attribute_weights = attribute_weights_from_accuracy(totals[:8], float(totals[8]))

    def _close_epoch(self) -> None:
        totals = self._epoch_totals()
        self._epoch_correct.zero_()
        self._epoch_chosen.zero_()
        self.epochs_closed += 1
        logs: dict[str, float] = {}
        self._refresh_attribute_weights(totals)
        if totals[8] > 0:
            self.last_epoch_accuracy = (totals[:8] / totals[8]).float()
            logs.update({f"epoch_accuracy_{n}": float(a) for n, a in zip(ATTRIBUTES, self.last_epoch_accuracy)})
            logs.update({f"weight_{n}": float(w) for n, w in zip(ATTRIBUTES, self.attribute_weights)})
        k = int(self._config().freeze_every_epochs)
        if self.masking in FREEZING_MASKINGS and self.freeze_book is not None and k > 0 and self.epochs_closed % k == 0:
            self.update_freeze_book()
        if self.freeze_book is not None:
            logs["frozen_fraction"] = self.freeze_book.frozen_fraction()
        logs["closed_epoch"] = float(self.epochs_closed)
        self.log(logs)

    @torch.no_grad()
    def score_training_set(self) -> dict[int, np.ndarray]:
        """The masker's logit of every note of every training song (SPEC step 6), `{book row: scores}`.

        Each process scores every `world_size`-th window; the pieces are gathered so every process returns the
        same scores. A note in several overlapping windows gets the mean of its scores.
        """
        model = self.accelerator.unwrap_model(self.model)
        was_training = model.training
        model.eval()
        dataset = self.train_dataset
        rank, world = self.args.process_index, max(self.args.world_size, 1)
        batch_size = self.args.per_device_eval_batch_size
        sharded = getattr(dataset, "sharded_by_rank", False)
        if sharded:  # streaming: this process owns its songs whole, nothing to gather
            windows = dataset.all_windows()
        else:
            windows = (dataset[i] for i in range(rank, len(dataset), world))
        pieces: list[tuple[int, int, np.ndarray]] = []
        while chunk := list(itertools.islice(windows, batch_size)):
            batch = self.data_collator(chunk)
            ids = batch["input_ids"].to(self.args.device)
            mask = batch["attention_mask"].to(self.args.device)
            with self.accelerator.autocast():
                logits = model.masking_logits(ids, mask).float().cpu().numpy()
            lengths = batch["attention_mask"].sum(-1).tolist()
            for b, (index, start, length) in enumerate(
                zip(batch["song_index"].tolist(), batch["window_start"].tolist(), lengths)
            ):
                pieces.append((int(self.song_rows[index]), int(start), logits[b, 1 : length - 1].copy()))
        if was_training:
            model.train()
        if world > 1 and not sharded:
            from accelerate.utils import gather_object

            pieces = gather_object(pieces)
        book = self.freeze_book
        sums = {row: np.zeros(int(book.num_notes[row])) for row in {p[0] for p in pieces}}
        counts = {row: np.zeros(int(book.num_notes[row])) for row in sums}
        for row, start, values in pieces:
            sums[row][start : start + len(values)] += values
            counts[row][start : start + len(values)] += 1
        return {row: sums[row] / np.maximum(counts[row], 1) for row in sums}

    def update_freeze_book(self) -> None:
        """Score the training set and apply one freeze step (top a % frozen, b % of the frozen unfrozen). With
        `masking="random_freeze"` the scores are uniform noise, seeded like the unfreezing, so every process and
        a resumed run freeze the same notes."""
        config = self._config()
        if self.masking == "random_freeze":
            rng = np.random.default_rng([int(self.args.seed), self.freeze_book.num_updates, 1])
            book = self.freeze_book
            scores = {row: rng.random(int(book.num_notes[row])) for row in range(len(book))}
        else:
            scores = self.score_training_set()
        self.freeze_book.update(scores, config.freeze_percent, config.unfreeze_percent, seed=self.args.seed,
                                momentum=config.freeze_rank_momentum)

    # ------------------------------------------------------------------ checkpoints

    def _save_checkpoint(self, model, trial):
        # Written first, so a checkpoint pushed to the Hub inside the parent's method already holds it.
        folder = os.path.join(self._get_output_dir(trial=trial), f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}")
        self.save_adversarial_state(folder)
        super()._save_checkpoint(model, trial)

    def save_adversarial_state(self, folder: str) -> None:
        """Write the freeze book and the trainer's own state (weights, epoch sums, masking generators) to
        `folder`. Every process must call it (the epoch sums and generator states are gathered)."""
        from accelerate.utils import gather_object

        epoch = torch.cat([self._epoch_correct, self._epoch_chosen.reshape(1)])
        if self.args.world_size > 1:
            epoch = self.accelerator.reduce(epoch, reduction="sum")
            generator_states = gather_object([self.masking_generator.get_state()])
        else:
            generator_states = [self.masking_generator.get_state()]
        if self.args.should_save:
            os.makedirs(folder, exist_ok=True)
            torch.save(
                {
                    "attribute_weights": self.attribute_weights.clone(),
                    "epochs_closed": self.epochs_closed,
                    "epoch_correct": epoch[:8].cpu(),
                    "epoch_chosen": epoch[8].cpu(),
                    "masking_generator_states": generator_states,
                    "masking": self.masking,
                },
                os.path.join(folder, TRAINER_STATE_FILE),
            )
            if self.freeze_book is not None and self.freeze_book_shards is None:
                self.freeze_book.save(os.path.join(folder, FREEZE_BOOK_NAME))
        if self.freeze_book is not None and self.freeze_book_shards is not None:
            # Streaming: every process writes the books of the data shards it owns.
            os.makedirs(os.path.join(folder, "freeze_books"), exist_ok=True)
            for shard, song_ids in self.freeze_book_shards.items():
                self.freeze_book.subset(song_ids).save(os.path.join(folder, "freeze_books", f"{shard}.npz"))

    def load_adversarial_state(self, folder: str) -> None:
        """Restore what `save_adversarial_state` wrote. The epoch sums (already summed over processes) go to
        process 0 only, so the next all-reduce counts them once."""
        path = os.path.join(folder, TRAINER_STATE_FILE)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{folder} has no {TRAINER_STATE_FILE}: not a checkpoint of AdversarialTrainer")
        state = torch.load(path, weights_only=True)
        if state["masking"] != self.masking:
            raise ValueError(f"the checkpoint was trained with masking={state['masking']!r}, not {self.masking!r}")
        self.attribute_weights = state["attribute_weights"].float()
        self.epochs_closed = int(state["epochs_closed"])
        self._epoch_correct.zero_()
        self._epoch_chosen.zero_()
        if self.args.process_index == 0:
            self._epoch_correct += state["epoch_correct"].to(self._epoch_correct)
            self._epoch_chosen += state["epoch_chosen"].to(self._epoch_chosen)
        generator_states = state["masking_generator_states"]
        if len(generator_states) != max(self.args.world_size, 1):
            raise ValueError(f"the checkpoint was written by {len(generator_states)} processes, this run has "
                             f"{self.args.world_size}: the masking streams cannot be resumed exactly")
        self.masking_generator.set_state(generator_states[self.args.process_index])
        book_path = os.path.join(folder, FREEZE_BOOK_NAME)
        if self.freeze_book is not None and self.freeze_book_shards is not None:
            book = self.freeze_book
            for shard in self.freeze_book_shards:
                part = FreezeBook.load(os.path.join(folder, "freeze_books", f"{shard}.npz"))
                for song_id in part.song_ids:
                    book.copy_song(part, part.row_of[song_id], book.row_of[song_id])
                book.num_updates = part.num_updates
        elif self.freeze_book is not None and os.path.isfile(book_path):
            with np.load(book_path, allow_pickle=False) as saved:
                self.freeze_book.load_state_dict(saved)

    def train(self, resume_from_checkpoint: str | bool | None = None, **kwargs):
        """`Trainer.train`, restoring this trainer's state too. `resume_from_checkpoint=True` (or `"last"` /
        `"true"` from the command line) picks the newest COMPLETE checkpoint of `output_dir`: a process killed
        while writing one leaves a partial folder behind, which is skipped."""
        if resume_from_checkpoint is True or str(resume_from_checkpoint).lower() in ("last", "true"):
            resume_from_checkpoint = last_complete_checkpoint(self.args.output_dir)
            if resume_from_checkpoint is None:
                raise ValueError(f"no complete checkpoint found in {self.args.output_dir} to resume from")
        if resume_from_checkpoint:
            self.load_adversarial_state(resume_from_checkpoint)
        return super().train(resume_from_checkpoint=resume_from_checkpoint or None, **kwargs)

    def process_state(self) -> dict[str, Any]:
        """What must be identical on every process: the freeze book's digest, the attribute weights and the last
        evaluation's metrics (gathered over the processes; only its timings differ)."""
        import torch.distributed as dist

        return {
            "process_index": self.args.process_index,
            "world_size": self.args.world_size,
            "distributed_world_size": dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1,
            "distributed_backend": dist.get_backend() if dist.is_available() and dist.is_initialized() else None,
            "freeze_book_digest": None if self.freeze_book is None else self.freeze_book.digest(),
            "frozen_fraction": None if self.freeze_book is None else self.freeze_book.frozen_fraction(),
            "attribute_weights": [float(w) for w in self.attribute_weights],
            "epochs_closed": self.epochs_closed,
            "freeze_updates": None if self.freeze_book is None else self.freeze_book.num_updates,
            "eval_dataset_size": None if self.eval_dataset is None else len(self.eval_dataset),
            "last_evaluation": self.last_evaluation,
        }
