"""`FinetuneTrainer`: the stock `Trainer`, plus transposition of training batches when the task allows it.

Mask fine-tuning and hidden attributes live inside the classification heads (gated by `model.training`), so
evaluation is deterministic without anything here. Transposition follows the same rule: only in training
forwards, never in evaluation or prediction.
"""
from __future__ import annotations

from transformers import Trainer

from adversarial_midibert.hub_trainer import HubTrainerMixin
from tokenization_octuple import OctupleTokenizer


class FinetuneTrainer(HubTrainerMixin, Trainer):
    """A `Trainer` that transposes each training window by a random shift in `[-k, k]` semitones, and writes the
    fine-tuned model card (`model_cards/finetuned.md`) from `model_card_facts` when it saves a card or pushes.

    Args:
        transpose_semitones (`int`, *optional*, defaults to 0): `k`; 0 turns transposition off (tasks whose
            labels depend on the key). Drums and special ids are never shifted and no pitch leaves 0..127
            (`OctupleTokenizer.random_transpose`).
        *args, **kwargs: as `transformers.Trainer`.

    Example:

    ```python
    >>> trainer = FinetuneTrainer(model=model, args=training_args, train_dataset=train, eval_dataset=dev,
    ...                           data_collator=OctupleDataCollator(tokenizer), transpose_semitones=6)  # doctest: +SKIP
    >>> trainer.train()                                                                                 # doctest: +SKIP
    ```
    """

    model_card_kind = "finetuned"

    def __init__(self, *args, transpose_semitones: int = 0, **kwargs):
        super().__init__(*args, **kwargs)
        if transpose_semitones < 0:
            raise ValueError(f"transpose_semitones must be >= 0, got {transpose_semitones}")
        self.transpose_semitones = int(transpose_semitones)
        # Keyword arguments of `write_model_card` (task, labels, data, settings, metrics), set by finetune.py.
        self.model_card_facts: dict | None = None

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if model.training and self.transpose_semitones > 0:
            # The global torch RNG is seeded by the Trainer (args.seed), so the shifts are reproducible.
            inputs = {**inputs, "input_ids": OctupleTokenizer.random_transpose(inputs["input_ids"], self.transpose_semitones)}
        return super().compute_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)
