"""Masked-note recovery of a pre-trained checkpoint outside a training run: the share of a fixed random 15 % of
notes whose attributes the recoverer gets back, under pre-training's corruption (80 % MASK, 20 % random ids).
It is `eval_random_recovery_accuracy_<attribute>` of `AdversarialTrainer` for any windows, for example the
shipped sample (held out of the shipped checkpoint's pre-training): how the shipped weights are checked
(tests/test_shipped_model.py) and how their model card's table is made (scripts/ship_checkpoint.py).

Beside each accuracy it scores a baseline on the same notes: copying the most common value of that attribute among
the window's notes that were not chosen. Why: the global unigram rate undersells what needs no music knowledge at
all (a window's most common pitch is 10 % of its masked notes, against 3.7 % over the corpus; its most common
duration 24 %), so a recovery figure means something only next to what copying gets. Held out, corpus by corpus:
scripts/recovery_by_corpus.py.
"""
from __future__ import annotations

import torch

from modeling_adversarial_midibert import real_note_mask

# The share of notes that recovery is measured on, whatever rate a checkpoint was pre-trained with: the paper's p,
# so that runs pre-trained with other masking rates are compared on the same notes.
RECOVERY_MASK_PERCENT = 15


def masked_recovery(model, windows, seed: int = 0, batch_size: int = 32) -> dict[str, float]:
    """
    Per-attribute recovery accuracy of `model` (an `AdversarialMidiBertForPreTraining`, in eval mode) on a random
    `RECOVERY_MASK_PERCENT` (15) % of the notes of `windows`, chosen and corrupted by a generator seeded with `seed`.

    Args:
        model: the pre-training model; its masker is not used (random masking).
        windows: rows with `input_ids` (`[n_tokens][8]`, BOS and EOS included), e.g. `build_window_dataset`'s.
        seed (`int`, *optional*, defaults to 0): the masking seed; the same seed gives the same notes.
        batch_size (`int`, *optional*, defaults to 32).

    Returns:
        `dict[str, float]`: attribute name -> accuracy over the chosen notes; `"<name>_copy"` -> accuracy of copying
        the window's most common value among its notes that were not chosen (ties: the smaller id; a window with
        none left counts as wrong); `"notes"`, how many were chosen.

    Example:

    ```python
    >>> from adversarial_midibert.evaluation.recovery import masked_recovery
    >>> masked_recovery(model.eval(), windows)["pitch"]                      # doctest: +SKIP
    0.097

    ```
    """
    config = model.config
    pad = list(config.pad_token_ids)
    generator = torch.Generator().manual_seed(seed)
    correct = torch.zeros(len(config.attributes), dtype=torch.float64)
    copied = torch.zeros(len(config.attributes), dtype=torch.float64)
    chosen = 0
    with torch.no_grad():
        for start in range(0, len(windows), batch_size):
            batch = windows[start:start + batch_size]["input_ids"]
            length = max(len(rows) for rows in batch)
            ids = torch.tensor([rows + [pad] * (length - len(rows)) for rows in batch])
            mask = torch.tensor([[1] * len(rows) + [0] * (length - len(rows)) for rows in batch])
            out = model(input_ids=ids, attention_mask=mask, masking="random",
                        mask_percent=RECOVERY_MASK_PERCENT, generator=generator)
            correct += out.attribute_correct.double()
            copied += _copy_correct(ids, real_note_mask(ids, mask, config.attribute_vocab_sizes[3]), out.chosen_mask)
            chosen += int(out.num_chosen)
    result = {name: float(correct[j] / max(chosen, 1)) for j, name in enumerate(config.attributes)}
    result.update({f"{name}_copy": float(copied[j] / max(chosen, 1)) for j, name in enumerate(config.attributes)})
    result["notes"] = chosen
    return result


def _copy_correct(ids: torch.Tensor, notes: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
    # Per attribute, the chosen notes whose value is the most common one among their window's unchosen notes.
    hits = torch.zeros(ids.shape[-1], dtype=torch.float64)
    for window, is_note, is_chosen in zip(ids, notes, chosen):
        context, targets = window[is_note & ~is_chosen], window[is_chosen]
        if len(context) == 0:
            continue
        for j in range(ids.shape[-1]):
            most_common = torch.bincount(context[:, j]).argmax()
            hits[j] += (targets[:, j] == most_common).sum()
    return hits
