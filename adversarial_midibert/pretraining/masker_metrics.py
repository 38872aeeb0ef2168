"""Does the masker know which notes are hard? Pairwise AUC inside each window.

The masker's loss (eq. 3) cannot answer this: its targets are relative to the notes the masker chose itself, so
even an oracle pays for the 30 % of its picks labelled 0. What can be compared across checkpoints and masking
modes is a ranking question asked on notes nobody chose: mask a uniformly random share of each held-out window,
take the hardest and the easiest of those notes by recovery loss, and count how often the masker scored a hard
note above an easy one of the same window (0.5 = chance, 1 = perfect).
"""

from __future__ import annotations

import torch


def _packed(values: torch.Tensor, keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    # The kept entries of each row moved to the front: values `(batch, k)` and which of them are real.
    width = int(keep.sum(-1).max()) if keep.numel() else 0
    order = (~keep).to(torch.int8).argsort(dim=-1, stable=True)[:, :width]
    valid = torch.arange(width, device=keep.device) < keep.sum(-1, keepdim=True)
    return values.gather(-1, order), valid


def pairwise_auc_counts(
    scores: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor, per_sequence: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """
    Pairs (positive note, negative note) of the SAME sequence, and how many of them the scores order correctly.

    Args:
        scores (`torch.Tensor` of shape `(batch, length)`): higher = more likely positive (masker logits).
        positive (`torch.BoolTensor` of shape `(batch, length)`): notes that should score high.
        negative (`torch.BoolTensor` of shape `(batch, length)`): notes that should score low.
        per_sequence (`bool`, *optional*, defaults to `False`): counts per sequence, shape `(batch,)`, instead of
            their totals (data-parallel evaluation gathers per-window rows).

    Returns:
        `tuple(torch.Tensor, torch.Tensor)`: float64 `(concordant, pairs)`; a tie counts one half, so
        `concordant / pairs` is the AUC (Mann-Whitney) pooled over every sequence's pairs.

    Example:

    >>> import torch
    >>> from adversarial_midibert.pretraining.masker_metrics import pairwise_auc_counts
    >>> scores = torch.tensor([[3.0, 1.0, 2.0, 0.0], [5.0, 5.0, 0.0, 0.0]])
    >>> positive = torch.tensor([[True, False, True, False], [True, False, False, False]])
    >>> negative = torch.tensor([[False, True, False, True], [False, True, False, False]])
    >>> [float(x) for x in pairwise_auc_counts(scores, positive, negative)]
    [4.5, 5.0]
    """
    scores = scores.detach().double()
    pos, pos_valid = _packed(scores, positive)
    neg, neg_valid = _packed(scores, negative)
    diff = pos.unsqueeze(-1) - neg.unsqueeze(-2)
    valid = pos_valid.unsqueeze(-1) & neg_valid.unsqueeze(-2)
    concordant = ((diff > 0).double() + 0.5 * (diff == 0).double()) * valid
    if per_sequence:
        return concordant.sum((-2, -1)), valid.sum((-2, -1)).double()
    return concordant.sum(), valid.sum().double()


def loss_ranked_auc_counts(
    scores: torch.Tensor, note_losses: torch.Tensor, measured: torch.Tensor, percent: float, per_sequence: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """[`pairwise_auc_counts`] with eq. 3's split: among each sequence's `measured` notes, the `percent` % with the
    highest recovery loss should score above the `percent` % with the lowest."""
    from modeling_adversarial_midibert import masker_targets

    targets, has_target = masker_targets(note_losses, measured, percent)
    return pairwise_auc_counts(scores, has_target & (targets > 0), has_target & (targets == 0), per_sequence)


def auc(concordant: float, pairs: float) -> float:
    """`concordant / pairs`, NaN when there is no pair (nothing to rank)."""
    return float(concordant) / float(pairs) if float(pairs) > 0 else float("nan")
