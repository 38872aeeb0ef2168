"""Adversarial-MidiBERT: the Octuple embedding, the BERT encoder, the pre-training heads and the fine-tuning heads.

Hub code: imports only torch, transformers and the configuration file beside it, so that `save_pretrained` copies
both files next to the weights and every `AutoModel...from_pretrained(..., trust_remote_code=True)` loads them.

Reading order: the pure selection functions of adversarial pre-training (`real_note_mask`, `choose_notes`,
`corrupt_notes`, `masker_targets`), the network (embedding, attention with the relative-position bias or rotary positions, encoder),
then the model classes.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.activations import ACT2FN
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutput, SequenceClassifierOutput, TokenClassifierOutput
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.utils import ModelOutput

try:
    from .configuration_adversarial_midibert import ATTRIBUTES, MASKINGS, AdversarialMidiBertConfig
except ImportError:  # imported as a top-level module (editable install, tests)
    from configuration_adversarial_midibert import ATTRIBUTES, MASKINGS, AdversarialMidiBertConfig


# ---------------------------------------------------------------------------------------------------------------
# Adversarial selection: pure tensor functions (SPEC.md, "Adversarial pre-training", steps 1-5)
# ---------------------------------------------------------------------------------------------------------------


def real_note_mask(input_ids: torch.Tensor, attention_mask: torch.Tensor | None, pitch_vocab_size: int) -> torch.Tensor:
    """
    Real notes of a batch: attended rows that are not BOS/EOS/PAD/MASK (their pitch id is a regular id).

    Args:
        input_ids (`torch.LongTensor` of shape `(batch, length, 8)`): Octuple ids.
        attention_mask (`torch.Tensor` of shape `(batch, length)`, *optional*): 1 on real rows.
        pitch_vocab_size (`int`): number of regular pitch ids (256).

    Returns:
        `torch.BoolTensor` of shape `(batch, length)`.

    Example:

    ```python
    >>> import torch
    >>> ids = torch.tensor([[[258] * 8, [0] * 8, [259] * 8, [256] * 8]])
    >>> real_note_mask(ids, torch.tensor([[1, 1, 1, 0]]), 256).tolist()
    [[False, True, False, False]]

    ```
    """
    notes = input_ids[..., 3] < pitch_vocab_size
    if attention_mask is not None:
        notes = notes & attention_mask.bool()
    return notes


def _round_half_up(values: torch.Tensor) -> torch.Tensor:
    # Python's round() is round-half-to-even; a percentage of a note count should not depend on parity.
    return torch.floor(values + 0.5).long()


def choose_notes(
    scores: torch.Tensor, selectable: torch.Tensor, real_counts: torch.Tensor, percent: float
) -> torch.Tensor:
    """
    Choose the top `percent` % of each sequence's real notes by score, among its selectable notes only.

    The count per sequence is round(percent / 100 * real_counts), at least 1 when the sequence has a selectable
    note, at most its number of selectable notes. Ties keep the earlier note (stable sort).

    Args:
        scores (`torch.Tensor` of shape `(batch, length)`): masker probabilities or uniform noise.
        selectable (`torch.BoolTensor` of shape `(batch, length)`): real notes that may be chosen (not frozen).
        real_counts (`torch.LongTensor` of shape `(batch,)`): number of real notes per sequence.
        percent (`float`): p, in 0..100.

    Returns:
        `torch.BoolTensor` of shape `(batch, length)`: the chosen notes.

    Example:

    ```python
    >>> import torch
    >>> scores = torch.tensor([[0.1, 0.9, 0.5, 0.7]])
    >>> selectable = torch.tensor([[True, True, True, False]])
    >>> choose_notes(scores, selectable, torch.tensor([4]), 50).tolist()
    [[False, True, True, False]]

    ```
    """
    return _top_k(scores, selectable, _choice_counts(selectable, real_counts, percent))


def _choice_counts(selectable: torch.Tensor, real_counts: torch.Tensor, percent: float) -> torch.Tensor:
    # round(percent % of the real notes), at least 1, at most the selectable notes of each sequence.
    counts = _round_half_up(real_counts.to(torch.float64) * (percent / 100.0))
    if percent > 0:
        counts = counts.clamp(min=1)
    return torch.minimum(counts, selectable.sum(-1))


def _top_k(scores: torch.Tensor, selectable: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    # The `counts[b]` selectable notes of each sequence b with the highest scores; ties keep the earlier note.
    masked_scores = scores.detach().float().masked_fill(~selectable, float("-inf"))
    order = masked_scores.argsort(dim=-1, descending=True, stable=True)
    ranks = torch.empty_like(order)
    ranks.scatter_(-1, order, torch.arange(order.shape[-1], device=order.device).expand_as(order))
    return (ranks < counts.unsqueeze(-1)) & selectable


def choose_adversarial_notes(
    scores: torch.Tensor,
    selectable: torch.Tensor,
    real_counts: torch.Tensor,
    percent: float,
    random_share: float = 0.0,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """
    The masker's choice with exploration: as many notes per sequence as [`choose_notes`], of which a share
    `random_share` is drawn uniformly from the selectable notes the masker did not pick, the rest being its own top
    scores.

    Why: trained only on the notes it picks itself, the masker never sees how hard the other notes are, while the
    recoverer learns exactly its picks; the masker's ranking then never forms (its scores stay flat). The random
    picks give eq. 3 a sample of the whole sequence to rank, at no extra forward pass.

    Args:
        scores (`torch.Tensor` of shape `(batch, length)`): masker logits (ranked; logits do not saturate as
            float32 sigmoid probabilities do above ~16.7).
        selectable, real_counts, percent: as in [`choose_notes`].
        random_share (`float`, *optional*, defaults to 0): share of each sequence's chosen notes drawn at random.
        generator (`torch.Generator`, *optional*): draws the random picks.

    Returns:
        `tuple(torch.BoolTensor, torch.BoolTensor)`: the chosen notes and, among them, the random picks, both
        `(batch, length)`.

    Example:

    ```python
    >>> import torch
    >>> scores = torch.tensor([[4.0, 3.0, 2.0, 1.0, 0.0, -1.0, -2.0, -3.0]])
    >>> selectable = torch.ones(1, 8, dtype=torch.bool)
    >>> chosen, explored = choose_adversarial_notes(scores, selectable, torch.tensor([8]), 50, random_share=0.5,
    ...                                             generator=torch.Generator().manual_seed(0))
    >>> chosen[0, :2].tolist(), int(chosen.sum()), int(explored.sum()), bool((explored[0, :2]).any())
    ([True, True], 4, 2, False)

    ```
    """
    counts = _choice_counts(selectable, real_counts, percent)
    random_counts = _round_half_up(counts.to(torch.float64) * float(random_share))
    own = _top_k(scores, selectable, counts - random_counts)
    noise = _uniform(tuple(scores.shape), scores.device, generator)
    explored = _top_k(noise, selectable & ~own, random_counts)
    return own | explored, explored


def _uniform(shape: tuple[int, ...], device: torch.device, generator: torch.Generator | None) -> torch.Tensor:
    # Draw on the generator's device so a CPU generator can drive masking of a GPU batch reproducibly.
    draw_device = generator.device if generator is not None else device
    return torch.rand(shape, generator=generator, device=draw_device).to(device)


def corrupt_notes(
    input_ids: torch.Tensor,
    chosen: torch.Tensor,
    mask_token_ids: tuple[int, ...] | list[int],
    regular_vocab_sizes: tuple[int, ...] | list[int],
    mask_token_ratio: float = 0.8,
    random_token_ratio: float = 0.2,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """
    Corrupt the chosen notes: `mask_token_ratio` of them become MASK on all eight attributes, `random_token_ratio`
    get a random REGULAR id per attribute (never a special id), the rest keep their ids.

    Args:
        input_ids (`torch.LongTensor` of shape `(batch, length, 8)`): clean Octuple ids.
        chosen (`torch.BoolTensor` of shape `(batch, length)`): notes to corrupt.
        mask_token_ids (`tuple[int]`): the MASK id of each attribute.
        regular_vocab_sizes (`tuple[int]`): regular ids per attribute; random ids are drawn below these.
        mask_token_ratio (`float`, *optional*, defaults to 0.8), random_token_ratio (`float`, *optional*,
            defaults to 0.2): shares of the chosen notes.
        generator (`torch.Generator`, *optional*): for reproducible corruption.

    Returns:
        `torch.LongTensor` of shape `(batch, length, 8)`: a corrupted copy; unchosen rows are unchanged.

    Example:

    ```python
    >>> import torch
    >>> ids = torch.zeros(1, 3, 8, dtype=torch.long)
    >>> chosen = torch.tensor([[False, True, False]])
    >>> corrupt_notes(ids, chosen, [9] * 8, [5] * 8, mask_token_ratio=1.0, random_token_ratio=0.0)[0, 1].tolist()
    [9, 9, 9, 9, 9, 9, 9, 9]

    ```
    """
    device = input_ids.device
    batch, length, n_attributes = input_ids.shape
    draw = _uniform((batch, length), device, generator)
    to_mask = chosen & (draw < mask_token_ratio)
    to_randomise = chosen & (draw >= mask_token_ratio) & (draw < mask_token_ratio + random_token_ratio)
    sizes = torch.as_tensor(regular_vocab_sizes, device=device, dtype=torch.float64)
    random_ids = (_uniform((batch, length, n_attributes), device, generator).double() * sizes).long()
    random_ids = torch.minimum(random_ids, sizes.long() - 1)  # guards the float edge case u * n == n
    mask_ids = torch.as_tensor(mask_token_ids, device=device, dtype=input_ids.dtype).expand_as(input_ids)
    corrupted = torch.where(to_mask.unsqueeze(-1), mask_ids, input_ids)
    return torch.where(to_randomise.unsqueeze(-1), random_ids.to(input_ids.dtype), corrupted)


def masker_targets(
    note_losses: torch.Tensor, chosen: torch.Tensor, percent: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """
    Masker targets (paper eq. 3): among each sequence's chosen notes, the `percent` % with the highest recovery
    loss get target 1 (hard to recover: mask them more), the `percent` % with the lowest get target 0.

    The count per sequence is round(percent / 100 * chosen), at least 1 of each when 2 or more notes are chosen,
    at most half of them (so no note gets both targets). A sequence with fewer than 2 chosen notes gets none.

    Args:
        note_losses (`torch.Tensor` of shape `(batch, length)`): recovery loss per note (detached).
        chosen (`torch.BoolTensor` of shape `(batch, length)`): the chosen notes.
        percent (`float`): q, in (0, 50].

    Returns:
        `tuple(torch.Tensor, torch.BoolTensor)`: targets (1.0 / 0.0) and the mask of notes that have a target,
        both of shape `(batch, length)`.

    Example:

    ```python
    >>> import torch
    >>> losses = torch.tensor([[0.5, 3.0, 1.0, 2.0, 9.0]])
    >>> chosen = torch.tensor([[True, True, True, True, False]])
    >>> targets, has_target = masker_targets(losses, chosen, 30)
    >>> targets.tolist(), has_target.tolist()
    ([[0.0, 1.0, 0.0, 0.0, 0.0]], [[True, True, False, False, False]])

    ```
    """
    num_chosen = chosen.sum(-1)
    counts = _round_half_up(num_chosen.to(torch.float64) * (percent / 100.0))
    counts = torch.where(num_chosen >= 2, counts.clamp(min=1), torch.zeros_like(counts))
    counts = torch.minimum(counts, num_chosen // 2).unsqueeze(-1)
    losses = note_losses.detach().float()
    arange = torch.arange(losses.shape[-1], device=losses.device).expand_as(losses)

    def ranks(values: torch.Tensor) -> torch.Tensor:
        order = values.argsort(dim=-1, descending=True, stable=True)
        out = torch.empty_like(order)
        out.scatter_(-1, order, arange)
        return out

    hardest = (ranks(losses.masked_fill(~chosen, float("-inf"))) < counts) & chosen
    easiest = (ranks((-losses).masked_fill(~chosen, float("-inf"))) < counts) & chosen
    return hardest.float(), hardest | easiest


def fine_tuning_inputs(
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    config: AdversarialMidiBertConfig,
    training: bool,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """
    Input of the classification heads: `config.hidden_attributes` set to MASK on every real note (train and eval),
    and, in training only, `config.finetune_mask_percent` % of each sequence's real notes set to all-MASK
    (mask fine-tuning, paper section 2.3).

    Returns:
        `tuple`: the model input ids `(batch, length, 8)`, the real-note mask of the ORIGINAL input `(batch,
        length)` (masked notes are still notes, for pooling), and the mask-fine-tuned notes `(batch, length)`.

    Example:

    ```python
    >>> import torch
    >>> from configuration_adversarial_midibert import AdversarialMidiBertConfig
    >>> config = AdversarialMidiBertConfig.from_preset("tiny", hidden_attributes=["velocity"])
    >>> ids = torch.tensor([[config.bos_token_ids, [1] * 8, config.eos_token_ids]])
    >>> new_ids, notes, masked = fine_tuning_inputs(ids, None, config, training=False)
    >>> new_ids[0, 1, 5].item() == config.mask_token_ids[5], notes.tolist(), masked.any().item()
    (True, [[False, True, False]], False)

    ```
    """
    notes = real_note_mask(input_ids, attention_mask, config.attribute_vocab_sizes[3])
    mask_ids = torch.as_tensor(config.mask_token_ids, device=input_ids.device, dtype=input_ids.dtype)
    if config.hidden_attributes:
        input_ids = input_ids.clone()
        for name in config.hidden_attributes:
            j = ATTRIBUTES.index(name)
            input_ids[..., j] = torch.where(notes, mask_ids[j], input_ids[..., j])
    masked = torch.zeros_like(notes)
    if training and config.finetune_mask_percent > 0:
        scores = _uniform(notes.shape, input_ids.device, generator)
        masked = choose_notes(scores, notes, notes.sum(-1), config.finetune_mask_percent)
        input_ids = torch.where(masked.unsqueeze(-1), mask_ids.expand_as(input_ids), input_ids)
    return input_ids, notes, masked


# ---------------------------------------------------------------------------------------------------------------
# Network
# ---------------------------------------------------------------------------------------------------------------


PITCH = ATTRIBUTES.index("pitch")
NUM_PITCH_CLASSES, NUM_OCTAVES, NUM_MIDI_PITCHES = 12, 11, 128


def pitch_class_and_octave(pitch_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pitch class (0-11) and octave (0-10) of pitch ids; 12 and 11 ("none") for drum and special ids."""
    melodic = pitch_ids < NUM_MIDI_PITCHES
    pitch_class = torch.where(melodic, pitch_ids % NUM_PITCH_CLASSES, NUM_PITCH_CLASSES)
    octave = torch.where(melodic, pitch_ids // NUM_PITCH_CLASSES, NUM_OCTAVES)
    return pitch_class, octave


class AdversarialMidiBertEmbeddings(nn.Module):
    """
    Octuple embedding: one table per attribute (times sqrt(width) when `scale_attribute_embeddings`),
    concatenated, projected to `hidden_size` (with bias), plus absolute positions when configured, then
    LayerNorm and dropout. With `relative_key_query` this is exactly the authors' network: their BERT embedding
    fed `inputs_embeds` adds a constant token-type row, which folds into the projection bias.
    """

    def __init__(self, config: AdversarialMidiBertConfig):
        super().__init__()
        self.scale = config.attribute_embedding_scale
        self.attribute_embeddings = nn.ModuleList(
            nn.Embedding(size, config.attribute_embedding_size) for size in config.vocab_sizes
        )
        self.projection = nn.Linear(len(config.vocab_sizes) * config.attribute_embedding_size, config.hidden_size)
        self.position_embeddings = (
            nn.Embedding(config.max_position_embeddings, config.hidden_size)
            if config.position_embedding_type == "absolute"
            else None
        )
        # With `pitch_class_sharing`, a pitch's vector adds a pitch-class row and an octave row that all pitches of
        # that class / octave share, so what is learned about C4 reaches C3 and C5 (one extra "none" row each for
        # drums and special ids).
        self.pitch_class_embeddings = self.octave_embeddings = None
        if config.pitch_class_sharing:
            self.pitch_class_embeddings = nn.Embedding(NUM_PITCH_CLASSES + 1, config.attribute_embedding_size)
            self.octave_embeddings = nn.Embedding(NUM_OCTAVES + 1, config.attribute_embedding_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        tables = [table(input_ids[..., j]) for j, table in enumerate(self.attribute_embeddings)]
        if self.pitch_class_embeddings is not None:
            pitch_class, octave = pitch_class_and_octave(input_ids[..., PITCH])
            tables[PITCH] = tables[PITCH] + self.pitch_class_embeddings(pitch_class) + self.octave_embeddings(octave)
        embeddings = self.projection(torch.cat(tables, dim=-1) * self.scale)
        if self.position_embeddings is not None:
            positions = torch.arange(input_ids.shape[1], device=input_ids.device)
            embeddings = embeddings + self.position_embeddings(positions)
        return self.dropout(self.LayerNorm(embeddings))


def _skew(x: torch.Tensor) -> torch.Tensor:
    """`(..., L, 2L-1) -> (..., L, L)` with `out[..., a, b] = x[..., a, b + L - 1 - a]`, by views only."""
    length = x.shape[-2]
    if length == 1:
        return x
    flat = x.flatten(-2)[..., length - 1 : length - 1 + length * (2 * length - 2)]
    return flat.unflatten(-1, (length, 2 * length - 2))[..., :length]


def _unskew(y: torch.Tensor) -> torch.Tensor:
    """The adjoint of `_skew`: `(..., L, L) -> (..., L, 2L-1)`, `y` placed where `_skew` reads, zeros elsewhere."""
    length = y.shape[-1]
    out = y.new_zeros(*y.shape[:-2], length, 2 * length - 1)
    _skew(out).copy_(y)
    return out


class _RelativeKeyQueryBias(torch.autograd.Function):
    """`skew(q E_rev^T) + skew(k E^T)^T` with a hand-written backward: autograd's backward of the two nested
    slices in `_skew` zero-fills and copies the `(..., L, 2L-1)` score tensor twice per side; this does it once.

    `torch.compile` traces it whole, this backward included, with no graph break (views, matmuls and one in-place
    copy into a fresh tensor only; `tests/test_compile.py` compiles it with `fullgraph=True`), so
    `TrainingArguments(torch_compile=True)` needs no exclusion here."""

    @staticmethod
    def forward(ctx, query, key, table):
        ctx.save_for_backward(query, key, table)
        query_scores = _skew(torch.matmul(query, table.flip(0).transpose(0, 1)))
        return query_scores + _skew(torch.matmul(key, table.transpose(0, 1))).transpose(-1, -2)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        query, key, table = ctx.saved_tensors
        grad = grad.to(query.dtype)  # under autocast the forward may have run in lower precision
        grad_query = grad_key = grad_table = None
        query_scores = _unskew(grad)  # (..., L, 2L-1), columns against the flipped table
        key_scores = _unskew(grad.transpose(-1, -2))
        if ctx.needs_input_grad[0]:
            grad_query = torch.matmul(query_scores, table.flip(0))
        if ctx.needs_input_grad[1]:
            grad_key = torch.matmul(key_scores, table)
        if ctx.needs_input_grad[2]:
            width = table.shape[0]
            grad_table = key_scores.reshape(-1, width).transpose(0, 1) @ key.reshape(-1, key.shape[-1])
            grad_table = grad_table + (
                query_scores.reshape(-1, width).transpose(0, 1) @ query.reshape(-1, query.shape[-1])
            ).flip(0)
        return grad_query, grad_key, grad_table


def relative_key_query_bias(
    query: torch.Tensor,
    key: torch.Tensor,
    distance_embedding: torch.Tensor,
    max_position_embeddings: int,
    scaling: float = 1.0,
) -> torch.Tensor:
    """
    The `relative_key_query` scores of transformers 4.x `BertSelfAttention` (Huang et al. 2020),
    `q_l . E[l - r] + k_r . E[l - r]`, times `scaling`, as an additive attention bias.

    4.x gathers a `(L, L, head_dim)` tensor of distance embeddings; here each side is one matmul against the
    `2L - 1` distances present, `(..., L, 2L-1)`, realigned to `(..., L, L)` by a pad-free skew (views only), so
    the cost is that of one extra attention-score matrix per side. Gradients reach query, key and the table.

    Args:
        query, key (`torch.Tensor` of shape `(batch, heads, length, head_dim)`).
        distance_embedding (`torch.Tensor` of shape `(2 * max_position_embeddings - 1, head_dim)`): the table;
            row `d + max_position_embeddings - 1` holds distance `d = l - r`.
        max_position_embeddings (`int`).
        scaling (`float`, *optional*, defaults to 1.0): applied to the `(2L - 1, head_dim)` table slice rather
            than to the `(batch, heads, L, L)` result, which is much cheaper.

    Returns:
        `torch.Tensor` of shape `(batch, heads, length, length)`.

    Example:

    ```python
    >>> import torch
    >>> q, k, table = torch.randn(1, 2, 5, 4), torch.randn(1, 2, 5, 4), torch.randn(2 * 8 - 1, 4)
    >>> bias = relative_key_query_bias(q, k, table, 8)
    >>> d = 1 - 3 + 8 - 1  # distance l - r for l=1, r=3, as a table row
    >>> torch.allclose(bias[0, 0, 1, 3], q[0, 0, 1] @ table[d] + k[0, 0, 3] @ table[d])
    True

    ```
    """
    length = query.shape[-2]
    table = distance_embedding[max_position_embeddings - length : max_position_embeddings + length - 1]
    table = table.to(query.dtype) * scaling  # row t holds distance t - (L - 1)
    return _RelativeKeyQueryBias.apply(query, key, table)


def rotary_cos_sin(length: int, head_dim: int, base: float, device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """
    Rotary position angles (Su et al. 2021, as in ModernBERT): `cos` and `sin` of shape `(length, head_dim)`, the
    `head_dim / 2` frequencies `base ** (-2i / head_dim)` each repeated for the two halves that `apply_rotary`
    rotates against each other. Recomputed per call: at most `length x head_dim` values, no state to save.
    """
    inv_freq = base ** (-torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim)
    angles = torch.outer(torch.arange(length, device=device, dtype=torch.float32), inv_freq)
    angles = torch.cat((angles, angles), dim=-1)
    return angles.cos().to(dtype), angles.sin().to(dtype)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """
    Rotate each `(x_i, x_{i + d/2})` pair of the last axis by its position's angle, so that the dot product of a
    rotated query at position l and a rotated key at position r depends on l - r only: relative positions with no
    `L x L` bias, which keeps scaled-dot-product attention on its fused kernels.

    Example:

    ```python
    >>> import torch
    >>> cos, sin = rotary_cos_sin(6, 4, 10000.0, "cpu", torch.float32)
    >>> q, k = torch.randn(4), torch.randn(4)
    >>> score = lambda l, r: apply_rotary(q, cos[l], sin[l]) @ apply_rotary(k, cos[r], sin[r])
    >>> torch.allclose(score(1, 3), score(3, 5), atol=1e-5)  # same distance, same score
    True

    ```
    """
    first, second = x.chunk(2, dim=-1)
    return x * cos + torch.cat((-second, first), dim=-1) * sin


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    weights = torch.matmul(query, key.transpose(-1, -2)) * scaling
    if attention_mask is not None:
        weights = weights + attention_mask
    weights = F.softmax(weights, dim=-1)
    weights = F.dropout(weights, p=dropout, training=module.training)
    return torch.matmul(weights, value).transpose(1, 2).contiguous(), weights


class AdversarialMidiBertSelfAttention(nn.Module):
    def __init__(self, config: AdversarialMidiBertConfig):
        super().__init__()
        self.config = config
        self.num_attention_heads = config.num_attention_heads
        self.attention_head_size = config.hidden_size // config.num_attention_heads
        self.scaling = self.attention_head_size**-0.5
        self.is_causal = False  # read by transformers' sdpa wrapper
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(config.hidden_size, config.hidden_size)
        self.value = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout = nn.Dropout(config.attention_probs_dropout_prob)
        self.max_position_embeddings = config.max_position_embeddings
        self.distance_embedding = (
            nn.Embedding(2 * config.max_position_embeddings - 1, self.attention_head_size)
            if config.position_embedding_type == "relative_key_query"
            else None
        )
        self.rotary_base = config.rotary_base if config.position_embedding_type == "rotary" else None

    def forward(
        self, hidden_states: torch.Tensor, key_mask: torch.Tensor | None, output_attentions: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        shape = (*hidden_states.shape[:-1], -1, self.attention_head_size)
        query = self.query(hidden_states).view(shape).transpose(1, 2)
        key = self.key(hidden_states).view(shape).transpose(1, 2)
        value = self.value(hidden_states).view(shape).transpose(1, 2)
        if self.rotary_base is not None:
            cos, sin = rotary_cos_sin(query.shape[-2], self.attention_head_size, self.rotary_base, query.device, query.dtype)
            query, key = apply_rotary(query, cos, sin), apply_rotary(key, cos, sin)
        if query.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
            # bf16 on a CPU speeds the linear layers up (AMX), but torch's CPU attention kernels are slower in bf16
            # than in fp32 (the flash-attention backward took 1.9x the fp32 time in a profile of a `small` step), so
            # attention stays fp32 there: a step 1.44x faster than fp32 with it, 1.30x without
            # (benchmarks/cpu_precision.py, docs/benchmarks.md).
            with torch.autocast("cpu", enabled=False):
                output, weights = self._attend(query.float(), key.float(), value.float(), key_mask, output_attentions)
            return output.to(value.dtype), weights
        return self._attend(query, key, value, key_mask, output_attentions)

    def _attend(self, query, key, value, key_mask, output_attentions: bool):
        # (batch, heads, tokens, head size) each -> (batch, tokens, hidden), and the weights when asked for.
        # One additive float mask in the query's dtype (sdpa requires it; under autocast that is not the
        # embeddings' dtype). The dtype minimum, not -inf, keeps padded query rows finite, so no NaN reaches the
        # real rows through 0 * NaN in the next layer; it is filled in after adding the bias so fp16 cannot
        # overflow to -inf.
        attention_mask = None
        if self.distance_embedding is not None:
            attention_mask = relative_key_query_bias(
                query, key, self.distance_embedding.weight, self.max_position_embeddings, scaling=self.scaling
            )
            if key_mask is not None:
                attention_mask = attention_mask.masked_fill(~key_mask, torch.finfo(query.dtype).min)
        elif key_mask is not None:
            attention_mask = torch.zeros(key_mask.shape, dtype=query.dtype, device=query.device)
            attention_mask = attention_mask.masked_fill(~key_mask, torch.finfo(query.dtype).min)
        implementation = self.config._attn_implementation
        if output_attentions:
            implementation = "eager"  # sdpa cannot return the weights
        attention = ALL_ATTENTION_FUNCTIONS.get_interface(implementation, eager_attention_forward)
        output, weights = attention(
            self,
            query,
            key,
            value,
            attention_mask,
            dropout=self.dropout.p if self.training else 0.0,
            scaling=self.scaling,
        )
        return output.reshape(*output.shape[:-2], -1), weights  # the functions return (batch, tokens, heads, size)


class AdversarialMidiBertSelfOutput(nn.Module):
    """A sub-layer's projection and residual sum. Post-LN (BERT) normalises the sum; pre-LN leaves the residual
    stream alone and this LayerNorm normalises the sub-layer's input instead (`normalise_input`)."""

    def __init__(self, config: AdversarialMidiBertConfig, input_size: int | None = None):
        super().__init__()
        self.dense = nn.Linear(input_size or config.hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.pre_norm = config.layer_norm_position == "pre"

    def normalise_input(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(hidden_states) if self.pre_norm else hidden_states

    def forward(self, hidden_states: torch.Tensor, input_tensor: torch.Tensor) -> torch.Tensor:
        summed = self.dropout(self.dense(hidden_states)) + input_tensor
        return summed if self.pre_norm else self.LayerNorm(summed)


class AdversarialMidiBertAttention(nn.Module):
    def __init__(self, config: AdversarialMidiBertConfig):
        super().__init__()
        self.self = AdversarialMidiBertSelfAttention(config)
        self.output = AdversarialMidiBertSelfOutput(config)

    def forward(self, hidden_states, key_mask, output_attentions=False):
        attended, weights = self.self(self.output.normalise_input(hidden_states), key_mask, output_attentions)
        return self.output(attended, hidden_states), weights


class AdversarialMidiBertIntermediate(nn.Module):
    def __init__(self, config: AdversarialMidiBertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self.intermediate_act_fn = ACT2FN[config.hidden_act]

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.intermediate_act_fn(self.dense(hidden_states))


class AdversarialMidiBertOutput(AdversarialMidiBertSelfOutput):
    def __init__(self, config: AdversarialMidiBertConfig):
        super().__init__(config, input_size=config.intermediate_size)


class AdversarialMidiBertLayer(GradientCheckpointingLayer):
    """A BERT layer, post-LayerNorm or pre-LayerNorm (`config.layer_norm_position`); parameter names follow
    transformers' `BertLayer` either way."""

    def __init__(self, config: AdversarialMidiBertConfig):
        super().__init__()
        self.attention = AdversarialMidiBertAttention(config)
        self.intermediate = AdversarialMidiBertIntermediate(config)
        self.output = AdversarialMidiBertOutput(config)

    def forward(self, hidden_states, key_mask=None, output_attentions=False):
        attended, weights = self.attention(hidden_states, key_mask, output_attentions)
        return self.output(self.intermediate(self.output.normalise_input(attended)), attended), weights


class AdversarialMidiBertEncoder(nn.Module):
    def __init__(self, config: AdversarialMidiBertConfig):
        super().__init__()
        self.layer = nn.ModuleList(AdversarialMidiBertLayer(config) for _ in range(config.num_hidden_layers))
        # Pre-LN leaves the residual stream unnormalised, so the encoder's output gets the LayerNorm that post-LN
        # layers apply inside.
        pre_norm = config.layer_norm_position == "pre"
        self.final_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps) if pre_norm else None

    def forward(self, hidden_states, key_mask, output_attentions=False, output_hidden_states=False):
        all_hidden = (hidden_states,) if output_hidden_states else None
        all_attentions = () if output_attentions else None
        for index, layer in enumerate(self.layer):
            # Positional arguments: re-entrant checkpointing only propagates gradients through those.
            hidden_states, weights = layer(hidden_states, key_mask, output_attentions)
            if self.final_layer_norm is not None and index == len(self.layer) - 1:
                hidden_states = self.final_layer_norm(hidden_states)
            if output_hidden_states:
                all_hidden += (hidden_states,)
            if output_attentions:
                all_attentions += (weights,)
        return BaseModelOutput(last_hidden_state=hidden_states, hidden_states=all_hidden, attentions=all_attentions)


class AdversarialMidiBertMaskerHead(nn.Module):
    """
    Masker: `Linear(hidden, m) -> act -> Linear(m, 1)`; returns logits (the sigmoid gives probabilities).

    With `config.masker_window_norm`, each feature is first standardised over the real notes of its window (zero
    mean, unit variance per window and dimension). Why: the masker only ranks notes against the others of their
    window, and early in pre-training the backbone gives every clean note nearly the same vector (measured on the
    tiny preset: a common part of norm 11.5, note-to-note std 0.025 per dimension); the head then sees 2 % signal
    and learns nothing at the presets' learning rates. Standardising keeps only what tells the notes apart.
    """

    def __init__(self, config: AdversarialMidiBertConfig):
        super().__init__()
        self.window_norm = config.masker_window_norm
        self.dense = nn.Linear(config.hidden_size, config.masker_hidden_size)
        self.activation = ACT2FN[config.hidden_act]
        self.decoder = nn.Linear(config.masker_hidden_size, 1)

    def forward(self, hidden_states: torch.Tensor, notes: torch.Tensor | None = None) -> torch.Tensor:
        if self.window_norm:
            hidden_states = _standardise_over_notes(hidden_states, notes)
        return self.decoder(self.activation(self.dense(hidden_states))).squeeze(-1)


def _standardise_over_notes(hidden_states: torch.Tensor, notes: torch.Tensor | None, eps: float = 1e-5) -> torch.Tensor:
    # Per window and feature: subtract the mean over the window's real notes, divide by their std.
    if notes is None:
        notes = torch.ones(hidden_states.shape[:-1], dtype=torch.bool, device=hidden_states.device)
    weights = notes.unsqueeze(-1).to(hidden_states.dtype)
    count = weights.sum(1, keepdim=True).clamp(min=1)
    mean = (hidden_states * weights).sum(1, keepdim=True) / count
    centred = hidden_states - mean
    variance = (centred.square() * weights).sum(1, keepdim=True) / count
    return centred * torch.rsqrt(variance + eps)


class AdversarialMidiBertAttentionPooling(nn.Module):
    """
    The authors' sequence pooling (structured self-attention, Lin et al. 2017, as in MidiBERT-Piano):
    `r` score heads `Linear(hidden, d_a) -> tanh -> Linear(d_a, r)` (no biases), a softmax over the pooled rows
    per head, and the `r` weighted sums concatenated to `(batch, r * hidden)`. Unlike their code, padding and
    the rows outside `mask` get no weight.
    """

    def __init__(self, config: AdversarialMidiBertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.pooling_attention_size, bias=False)
        self.score = nn.Linear(config.pooling_attention_size, config.pooling_attention_heads, bias=False)

    def forward(self, hidden_states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        scores = self.score(torch.tanh(self.dense(hidden_states))).float()  # (batch, length, r)
        scores = scores.masked_fill(~mask.unsqueeze(-1), float("-inf"))
        weights = scores.softmax(dim=1).to(hidden_states.dtype)
        return torch.einsum("blr,blh->brh", weights, hidden_states).flatten(1)


class AdversarialMidiBertClassifier(nn.Module):
    """Dropout, then `Linear - ReLU - Linear` (the authors' heads) or one `Linear` without `classifier_hidden_size`."""

    def __init__(self, config: AdversarialMidiBertConfig, input_size: int):
        super().__init__()
        dropout = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
        self.dropout = nn.Dropout(dropout)
        hidden = config.classifier_hidden_size
        self.dense = nn.Linear(input_size, hidden) if hidden is not None else None
        self.out_proj = nn.Linear(hidden if hidden is not None else input_size, config.num_labels)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        features = self.dropout(features)
        if self.dense is not None:
            features = torch.relu(self.dense(features))
        return self.out_proj(features)


# ---------------------------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------------------------


class AdversarialMidiBertPreTrainedModel(PreTrainedModel):
    """The loading rules shared by every head. Every module is a standard torch layer, so transformers' default
    `_init_weights` (normal(0, `initializer_range`) weights, zero biases, unit LayerNorms) is the whole init."""

    config_class = AdversarialMidiBertConfig
    base_model_prefix = "midibert"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_attention_backend = False
    _no_split_modules = ["AdversarialMidiBertLayer"]
    # A checkpoint of any head loads into any other: the other heads' weights are expected to be absent.
    _keys_to_ignore_on_load_unexpected = [
        r"^recoverer\.", r"^masker\.", r"^classifier\.", r"^pooler\.", r"^token_classifier\."
    ]


class AdversarialMidiBertModel(AdversarialMidiBertPreTrainedModel):
    """
    The backbone: Octuple ids `(batch, length, 8)` to hidden states `(batch, length, hidden_size)`.

    Example:

    ```python
    >>> import torch
    >>> from configuration_adversarial_midibert import AdversarialMidiBertConfig
    >>> from modeling_adversarial_midibert import AdversarialMidiBertModel
    >>> config = AdversarialMidiBertConfig.from_preset("tiny")
    >>> model = AdversarialMidiBertModel(config).eval()
    >>> ids = torch.tensor([[config.bos_token_ids, [0, 4, 0, 60, 8, 20, 10, 24], config.eos_token_ids]])
    >>> model(input_ids=ids).last_hidden_state.shape
    torch.Size([1, 3, 128])

    ```
    """

    def __init__(self, config: AdversarialMidiBertConfig):
        super().__init__(config)
        self.embeddings = AdversarialMidiBertEmbeddings(config)
        self.encoder = AdversarialMidiBertEncoder(config)
        self.post_init()

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> BaseModelOutput | tuple:
        r"""
        Args:
            input_ids (`torch.LongTensor` of shape `(batch, length, 8)`): Octuple ids from `OctupleTokenizer`.
            attention_mask (`torch.Tensor` of shape `(batch, length)`, *optional*): 1 on real rows, 0 on padding.
            output_attentions, output_hidden_states, return_dict (`bool`, *optional*): as in transformers;
                attention weights are computed with the eager path.

        Returns:
            [`~transformers.modeling_outputs.BaseModelOutput`].
        """
        if input_ids.dim() != 3 or input_ids.shape[-1] != len(self.config.vocab_sizes):
            raise ValueError(
                f"input_ids must have shape (batch, length, {len(self.config.vocab_sizes)}), got {tuple(input_ids.shape)}"
            )
        if input_ids.shape[1] > self.config.max_position_embeddings:
            raise ValueError(
                f"sequence length {input_ids.shape[1]} exceeds max_position_embeddings "
                f"({self.config.max_position_embeddings}); cut the piece into windows with the tokenizer"
            )
        output_attentions = output_attentions if output_attentions is not None else self.config.output_attentions
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        return_dict = return_dict if return_dict is not None else self.config.return_dict

        hidden_states = self.embeddings(input_ids)
        # (batch, 1, 1, length), True = attend; None when nothing is padded (sdpa's fastest path).
        key_mask = None
        if attention_mask is not None and not bool(attention_mask.all()):
            key_mask = attention_mask.bool()[:, None, None, :]
        outputs = self.encoder(hidden_states, key_mask, output_attentions, output_hidden_states)
        if not return_dict:
            return tuple(value for value in outputs.to_tuple())
        return outputs


class AdversarialMidiBertPitchLogits(nn.Module):
    """
    The recoverer's pitch classifier with `pitch_class_sharing`: `Linear(hidden, vocab)` plus a pitch-class logit
    and an octave logit that every pitch of that class / octave shares (the output side of the shared rows in
    `AdversarialMidiBertEmbeddings`), so evidence for "an E" raises every E at once.
    """

    def __init__(self, config: AdversarialMidiBertConfig):
        super().__init__()
        vocab = config.vocab_sizes[PITCH]
        self.dense = nn.Linear(config.hidden_size, vocab)
        self.pitch_class = nn.Linear(config.hidden_size, NUM_PITCH_CLASSES + 1)
        self.octave = nn.Linear(config.hidden_size, NUM_OCTAVES + 1)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        # The id -> class / octave maps are rebuilt per call (a few hundred ids) rather than kept as buffers, which
        # `from_pretrained` would leave uninitialised (models are built on the meta device).
        pitch_class, octave = pitch_class_and_octave(torch.arange(self.dense.out_features, device=hidden_states.device))
        # One linear layer whose rows add the shared rows, spread by one-hot products: the same logits as gathering
        # the three layers' outputs by class and octave, but with no gather to differentiate, whose backward
        # inductor (torch 2.13, CPU) compiled with a bounds check that failed on every step.
        spread = [F.one_hot(index, layer.out_features).to(layer.weight.dtype)
                  for index, layer in ((pitch_class, self.pitch_class), (octave, self.octave))]
        weight = self.dense.weight + spread[0] @ self.pitch_class.weight + spread[1] @ self.octave.weight
        bias = self.dense.bias + spread[0] @ self.pitch_class.bias + spread[1] @ self.octave.bias
        return F.linear(hidden_states, weight, bias)


@dataclass
class AdversarialMidiBertForPreTrainingOutput(ModelOutput):
    r"""
    Output of [`AdversarialMidiBertForPreTraining`].

    Args:
        loss (`torch.Tensor` of shape `()`): recoverer loss + masker loss.
        recoverer_loss (`torch.Tensor` of shape `()`): eq. 1 summed over the chosen notes, divided by
            `num_items_in_batch` or the number of chosen notes.
        masker_loss (`torch.Tensor` of shape `()`): eq. 3, the mean BCE over the notes that have a masker
            target; an exact zero (still connected to the masker's parameters) in random mode and with `labels`.
        logits (`tuple(torch.Tensor)`): 8 tensors `(num_chosen, vocab_j)`, the recoverer on the corrupted input,
            for the chosen notes only, in the row-major order of `chosen_mask` (`logits[j]` pairs with
            `input_ids[chosen_mask][:, j]`).
        masker_probabilities (`torch.Tensor` of shape `(batch, length)`): the masker on the clean input, 0 on
            rows that are not real notes; `None` in random mode and with `labels`.
        masker_logits (`torch.Tensor` of shape `(batch, length)`): the masker's logits on the clean input (what
            the choice ranks), detached; `None` when `masker_probabilities` is.
        chosen_mask (`torch.BoolTensor` of shape `(batch, length)`): the notes predicted (with `labels`: the
            rows with any label).
        explored_mask (`torch.BoolTensor` of shape `(batch, length)`): the chosen notes drawn at random rather
            than by the masker (`config.masker_random_share`); `None` outside adversarial mode.
        note_losses (`torch.Tensor` of shape `(batch, length)`): detached eq. 1 loss per chosen note, 0 elsewhere.
        attribute_correct (`torch.LongTensor` of shape `(8,)`): chosen notes whose attribute j was recovered.
        num_chosen (`torch.LongTensor` of shape `()`): number of chosen notes.
        hidden_states, attentions: of the pass over the corrupted input, when asked for.
    """

    loss: torch.Tensor | None = None
    recoverer_loss: torch.Tensor | None = None
    masker_loss: torch.Tensor | None = None
    logits: tuple[torch.Tensor, ...] | None = None
    masker_probabilities: torch.Tensor | None = None
    masker_logits: torch.Tensor | None = None
    chosen_mask: torch.Tensor | None = None
    explored_mask: torch.Tensor | None = None
    note_losses: torch.Tensor | None = None
    attribute_correct: torch.Tensor | None = None
    num_chosen: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


class AdversarialMidiBertForPreTraining(AdversarialMidiBertPreTrainedModel):
    """
    Adversarial masked pre-training: the backbone with the recoverer (one linear classifier per attribute over its
    full vocabulary, no transform layer, as the authors) and the masker (one masking probability per note).

    One forward does the whole step: masker on the clean input -> choose the top p % of each sequence's
    selectable notes -> corrupt them -> recoverer on the corrupted input -> eq. 1 -> masker targets and eq. 3.

    Example:

    ```python
    >>> import torch
    >>> from configuration_adversarial_midibert import AdversarialMidiBertConfig
    >>> from modeling_adversarial_midibert import AdversarialMidiBertForPreTraining
    >>> config = AdversarialMidiBertConfig.from_preset("tiny")
    >>> model = AdversarialMidiBertForPreTraining(config)
    >>> notes = torch.randint(0, 32, (2, 20, 8))
    >>> ids = torch.cat([torch.tensor([config.bos_token_ids] * 2)[:, None], notes,
    ...                  torch.tensor([config.eos_token_ids] * 2)[:, None]], dim=1)
    >>> out = model(input_ids=ids, generator=torch.Generator().manual_seed(0))
    >>> out.num_chosen.item(), out.loss.requires_grad  # round(15 % of 20) per sequence
    (6, True)

    ```
    """

    def __init__(self, config: AdversarialMidiBertConfig):
        super().__init__(config)
        self.midibert = AdversarialMidiBertModel(config)
        self.recoverer = nn.ModuleList(
            AdversarialMidiBertPitchLogits(config) if j == PITCH and config.pitch_class_sharing
            else nn.Linear(config.hidden_size, size)
            for j, size in enumerate(config.vocab_sizes)
        )
        self.masker = AdversarialMidiBertMaskerHead(config)
        self.post_init()

    def _masker_in_graph(self) -> torch.Tensor:
        # An exact zero that keeps every masker parameter in the graph when the masker loss is not computed
        # (random mode, labels): DDP with find_unused_parameters=False then sees all parameters used.
        return sum(parameter.sum() for parameter in self.masker.parameters()) * 0.0

    def _note_mask(self, input_ids, attention_mask):
        return real_note_mask(input_ids, attention_mask, self.config.attribute_vocab_sizes[3])

    def _masker_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        # What the masker reads: the backbone's hidden states number `config.masker_feature_index` of the CLEAN
        # input (0 = embeddings). In head-only mode the last layer is the wrong one: MLM never trains its output on
        # a note that is not masked, and on the tiny preset those vectors differed from note to note by a std of
        # 0.025 per dimension (0.67 when the masker loss trains the backbone).
        index = self.config.masker_feature_index
        if index == 0:  # the embeddings alone: no encoder pass at all (the head-only default, almost free)
            return self.midibert.embeddings(input_ids)
        last = index == self.config.num_hidden_layers
        outputs = self.midibert(input_ids, attention_mask=attention_mask, output_hidden_states=not last)
        return outputs.last_hidden_state if last else outputs.hidden_states[index]

    def masking_logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """
        The masker's logit per row on the clean input, `(batch, length)`, `-inf` on rows that are not real notes.
        Used every k epochs to score the training set for freezing: ranking by logits keeps notes apart that the
        float32 sigmoid would round to the same probability.

        Example:

        ```python
        >>> import torch
        >>> from configuration_adversarial_midibert import AdversarialMidiBertConfig
        >>> from modeling_adversarial_midibert import AdversarialMidiBertForPreTraining
        >>> model = AdversarialMidiBertForPreTraining(AdversarialMidiBertConfig.from_preset("tiny")).eval()
        >>> with torch.no_grad():
        ...     logits = model.masking_logits(torch.randint(0, 32, (1, 5, 8)))
        >>> logits.shape, bool(torch.isfinite(logits).all())
        (torch.Size([1, 5]), True)

        ```
        """
        notes = self._note_mask(input_ids, attention_mask)
        logits = self.masker(self._masker_features(input_ids, attention_mask), notes).float()
        return logits.masked_fill(~notes, float("-inf"))

    def masking_probabilities(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """The masker's probability per note on the clean input, `(batch, length)` in [0, 1], 0 on rows that are
        not real notes (the sigmoid of [`~AdversarialMidiBertForPreTraining.masking_logits`])."""
        return torch.sigmoid(self.masking_logits(input_ids, attention_mask))

    def _recover(self, input_ids, attention_mask, targets, predicted, weights, output_attentions,
                 output_hidden_states):
        outputs = self.midibert(
            input_ids,
            attention_mask=attention_mask,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        # The recoverer reads only the predicted rows (about 15 % of them): its 8 classifiers over ~1,200 ids in
        # all cost more than the whole encoder of a small model when run on every row, and the other rows' logits
        # never reach the loss (the sparse prediction of "Cramming", Geiping & Goldstein 2022).
        hidden = outputs.last_hidden_state[predicted]
        row_targets = targets[predicted]
        logits = tuple(head(hidden) for head in self.recoverer)
        row_losses = torch.zeros(hidden.shape[0], dtype=torch.float32, device=hidden.device)
        correct = []
        for j, attribute_logits in enumerate(logits):
            attribute_targets = row_targets[:, j]
            loss_j = F.cross_entropy(attribute_logits.float(), attribute_targets, ignore_index=-100, reduction="none")
            row_losses = row_losses + weights[j] * loss_j
            correct.append(((attribute_logits.argmax(-1) == attribute_targets) & (attribute_targets != -100)).sum())
        note_losses = torch.zeros(predicted.shape, dtype=torch.float32, device=hidden.device)
        note_losses = note_losses.masked_scatter(predicted, row_losses)
        return outputs, logits, note_losses, torch.stack(correct)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        selectable_mask: torch.Tensor | None = None,
        attribute_weights: torch.Tensor | None = None,
        masking: str | None = None,
        mask_percent: float | None = None,
        labels: torch.Tensor | None = None,
        num_items_in_batch: torch.Tensor | int | None = None,
        generator: torch.Generator | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> AdversarialMidiBertForPreTrainingOutput:
        r"""
        Args:
            input_ids (`torch.LongTensor` of shape `(batch, length, 8)`): CLEAN Octuple ids (BOS, notes, EOS, PAD).
            attention_mask (`torch.Tensor` of shape `(batch, length)`, *optional*): 1 on real rows.
            selectable_mask (`torch.BoolTensor` of shape `(batch, length)`, *optional*): notes that may be chosen;
                the trainer clears frozen notes. Defaults to every real note.
            attribute_weights (`torch.Tensor` of shape `(8,)`, *optional*): eq. 1 weights w_j; defaults to 1/8.
            masking (`str`, *optional*): `"adversarial"`, or `"random"` / `"random_freeze"` (uniform random choice
                among the selectable notes; the two differ only in the trainer's freeze book); defaults to
                `config.masking`.
            mask_percent (`float`, *optional*): % of each sequence's real notes chosen; defaults to
                `config.mask_percent`. Evaluation passes a fixed value, so that recovery under a fixed random masking
                compares runs pre-trained with different rates.
            labels (`torch.LongTensor` of shape `(batch, length, 8)`, *optional*): targets of an input the caller
                already corrupted, -100 where not predicted. Skips the selection; returns the plain recoverer loss.
            num_items_in_batch (`int` or `torch.Tensor`, *optional*): divisor of the recoverer loss across
                gradient-accumulation steps or processes; defaults to the number of chosen notes.
            generator (`torch.Generator`, *optional*): drives random-mode scores and the corruption.

        Returns:
            [`AdversarialMidiBertForPreTrainingOutput`].
        """
        config = self.config
        return_dict = return_dict if return_dict is not None else config.return_dict
        masking = masking or config.masking
        mask_percent = config.mask_percent if mask_percent is None else mask_percent
        if masking not in MASKINGS:
            raise ValueError(f"masking must be one of {MASKINGS}, got {masking!r}")
        device = input_ids.device
        weights = (
            torch.full((len(config.vocab_sizes),), 1.0 / len(config.vocab_sizes), device=device)
            if attribute_weights is None
            else torch.as_tensor(attribute_weights, dtype=torch.float32, device=device)
        )
        masker_probabilities = masker_logits = explored = None
        if labels is not None:
            predicted = (labels != -100).any(-1)
            outputs, logits, note_losses, correct = self._recover(
                input_ids, attention_mask, labels, predicted, weights, output_attentions, output_hidden_states
            )
            chosen = predicted
            masker_loss = self._masker_in_graph()
        else:
            notes = self._note_mask(input_ids, attention_mask)
            selectable = notes if selectable_mask is None else notes & selectable_mask.bool()
            if masking == "adversarial":
                if config.masker_updates_backbone:
                    masker_logits = self.masker(self._masker_features(input_ids, attention_mask), notes)
                else:
                    # The masker loss trains only the masker head: no graph through the backbone's clean pass, and
                    # no dropout either, so the head learns on the same features that `masking_probabilities`
                    # gives it when the training set is scored for freezing (in eval mode).
                    was_training = self.midibert.training
                    self.midibert.eval()
                    try:
                        with torch.no_grad():
                            clean = self._masker_features(input_ids, attention_mask)
                    finally:
                        self.midibert.train(was_training)
                    masker_logits = self.masker(clean.detach(), notes)
                masker_probabilities = torch.sigmoid(masker_logits.float()) * notes
                chosen, explored = choose_adversarial_notes(
                    masker_logits.detach(), selectable, notes.sum(-1), mask_percent,
                    config.masker_random_share, generator,
                )
            else:
                scores = _uniform(notes.shape, device, generator)
                chosen = choose_notes(scores, selectable, notes.sum(-1), mask_percent)
            corrupted = corrupt_notes(
                input_ids,
                chosen,
                config.mask_token_ids,
                config.attribute_vocab_sizes,
                config.mask_token_ratio,
                config.random_token_ratio,
                generator,
            )
            outputs, logits, note_losses, correct = self._recover(
                corrupted, attention_mask, input_ids, chosen, weights, output_attentions, output_hidden_states
            )
            if masker_logits is not None:
                targets, has_target = masker_targets(note_losses.detach(), chosen, config.masker_target_percent)
                if bool(has_target.any()):
                    masker_loss = F.binary_cross_entropy_with_logits(masker_logits.float()[has_target], targets[has_target])
                else:  # no sequence chose 2 notes: nothing to compare, but the masker stays in the graph
                    masker_loss = masker_logits.sum() * 0.0
            else:
                masker_loss = self._masker_in_graph()

        num_chosen = chosen.sum()
        divisor = num_items_in_batch if num_items_in_batch is not None else num_chosen.clamp(min=1)
        if isinstance(divisor, torch.Tensor):
            divisor = divisor.to(device)
        recoverer_loss = note_losses.sum() / divisor
        output = AdversarialMidiBertForPreTrainingOutput(
            loss=recoverer_loss + masker_loss,
            recoverer_loss=recoverer_loss,
            masker_loss=masker_loss,
            logits=logits,
            masker_probabilities=masker_probabilities,
            masker_logits=None if masker_logits is None else masker_logits.detach().float(),
            chosen_mask=chosen,
            explored_mask=explored,
            note_losses=note_losses.detach(),
            attribute_correct=correct,
            num_chosen=num_chosen,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )
        return output if return_dict else output.to_tuple()


class _ClassificationMixin:
    # The heads return a MEAN loss and take no `num_items_in_batch`: this tells a stock `Trainer` to divide by the
    # gradient-accumulation steps itself rather than expect a summed loss.
    accepts_loss_kwargs = False

    def _backbone(self, input_ids, attention_mask, generator, output_attentions, output_hidden_states):
        input_ids, notes, masked = fine_tuning_inputs(input_ids, attention_mask, self.config, self.training, generator)
        outputs = self.midibert(
            input_ids,
            attention_mask=attention_mask,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        return outputs, notes, masked


class AdversarialMidiBertForSequenceClassification(_ClassificationMixin, AdversarialMidiBertPreTrainedModel):
    """
    Sequence classification or regression (composer, emotion): pooling per `config.classifier_pooling`, then
    the classifier (dropout, `Linear - ReLU - Linear` as the authors, or one linear layer). `config.problem_type` as in transformers (single-label, multi-label,
    regression; inferred from `num_labels` and the labels' dtype when unset).

    Pooling: `"attention"` (the authors') and `"mean"` run over the real notes only, BOS/EOS excluded (they carry no
    music; `"bos"` is the option that reads BOS); notes hidden by mask fine-tuning still count, they are in the
    window. A window without notes falls back to its BOS/EOS rows.

    Example:

    ```python
    >>> import torch
    >>> from configuration_adversarial_midibert import AdversarialMidiBertConfig
    >>> from modeling_adversarial_midibert import AdversarialMidiBertForSequenceClassification
    >>> config = AdversarialMidiBertConfig.from_preset("tiny", num_labels=3)
    >>> model = AdversarialMidiBertForSequenceClassification(config).eval()
    >>> out = model(input_ids=torch.randint(0, 32, (2, 10, 8)), labels=torch.tensor([0, 2]))
    >>> out.logits.shape, out.loss.shape
    (torch.Size([2, 3]), torch.Size([]))

    ```
    """

    def __init__(self, config: AdversarialMidiBertConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.midibert = AdversarialMidiBertModel(config)
        attention = config.classifier_pooling == "attention"
        self.pooler = AdversarialMidiBertAttentionPooling(config) if attention else None
        pooled_size = config.hidden_size * (config.pooling_attention_heads if attention else 1)
        self.classifier = AdversarialMidiBertClassifier(config, pooled_size)
        self.post_init()

    def pool(self, hidden_states: torch.Tensor, notes: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        """`(batch, length, hidden)` -> `(batch, hidden)` per `config.classifier_pooling`."""
        if self.config.classifier_pooling == "bos":
            return hidden_states[:, 0]
        attended = torch.ones_like(notes) if attention_mask is None else attention_mask.bool()
        mask = torch.where(notes.any(-1, keepdim=True), notes, attended)
        if self.config.classifier_pooling == "attention":
            return self.pooler(hidden_states, mask)
        mask = mask.to(hidden_states.dtype).unsqueeze(-1)
        return (hidden_states * mask).sum(1) / mask.sum(1)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> SequenceClassifierOutput | tuple:
        r"""
        Args:
            input_ids (`torch.LongTensor` of shape `(batch, length, 8)`), attention_mask (`(batch, length)`,
                *optional*): as in [`AdversarialMidiBertModel`].
            labels (`torch.Tensor` of shape `(batch,)` or `(batch, num_labels)`, *optional*): class ids, float
                targets (regression) or multi-hot rows (multi-label).
            generator (`torch.Generator`, *optional*): drives mask fine-tuning (training mode only).

        Returns:
            [`~transformers.modeling_outputs.SequenceClassifierOutput`].
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        outputs, notes, _ = self._backbone(input_ids, attention_mask, generator, output_attentions, output_hidden_states)
        pooled = self.pool(outputs.last_hidden_state, notes, attention_mask)
        logits = self.classifier(pooled)

        loss = None
        if labels is not None:
            labels = labels.to(logits.device)
            if self.config.problem_type is None:
                if self.num_labels == 1:
                    self.config.problem_type = "regression"
                elif labels.dtype in (torch.long, torch.int):
                    self.config.problem_type = "single_label_classification"
                else:
                    self.config.problem_type = "multi_label_classification"
            if self.config.problem_type == "regression":
                loss = F.mse_loss(logits.squeeze(-1), labels.squeeze(-1).to(logits.dtype)) if self.num_labels == 1 \
                    else F.mse_loss(logits, labels.to(logits.dtype))
            elif self.config.problem_type == "single_label_classification":
                loss = F.cross_entropy(logits.view(-1, self.num_labels), labels.view(-1))
            else:
                loss = F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))
        output = SequenceClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )
        return output if return_dict else output.to_tuple()


class AdversarialMidiBertForTokenClassification(_ClassificationMixin, AdversarialMidiBertPreTrainedModel):
    """
    Note-level classification (melody, velocity): the classifier (dropout, `Linear - ReLU - Linear` as the
    authors, or one linear layer) on every row. Labels of -100 are
    ignored, and so are the notes hidden by mask fine-tuning (training mode).

    Example:

    ```python
    >>> import torch
    >>> from configuration_adversarial_midibert import AdversarialMidiBertConfig
    >>> from modeling_adversarial_midibert import AdversarialMidiBertForTokenClassification
    >>> config = AdversarialMidiBertConfig.from_preset("tiny", num_labels=3)
    >>> model = AdversarialMidiBertForTokenClassification(config).eval()
    >>> labels = torch.tensor([[-100, 0, 2, 1, -100]])
    >>> out = model(input_ids=torch.randint(0, 32, (1, 5, 8)), labels=labels)
    >>> out.logits.shape
    torch.Size([1, 5, 3])

    ```
    """

    def __init__(self, config: AdversarialMidiBertConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.midibert = AdversarialMidiBertModel(config)
        # Not `classifier`: a sequence-classification checkpoint must not fill this head with another task's weights.
        self.token_classifier = AdversarialMidiBertClassifier(config, config.hidden_size)
        self.post_init()

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> TokenClassifierOutput | tuple:
        r"""
        Args:
            input_ids (`torch.LongTensor` of shape `(batch, length, 8)`), attention_mask (`(batch, length)`,
                *optional*): as in [`AdversarialMidiBertModel`].
            labels (`torch.LongTensor` of shape `(batch, length)`, *optional*): class per row, -100 = ignored.
            generator (`torch.Generator`, *optional*): drives mask fine-tuning (training mode only).

        Returns:
            [`~transformers.modeling_outputs.TokenClassifierOutput`].
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        outputs, _, masked = self._backbone(input_ids, attention_mask, generator, output_attentions, output_hidden_states)
        logits = self.token_classifier(outputs.last_hidden_state)
        loss = None
        if labels is not None:
            labels = labels.to(logits.device).masked_fill(masked, -100)
            if bool((labels != -100).any()):
                loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)
            else:  # nothing to learn from this batch; a mean over no labels would be NaN
                loss = logits.sum() * 0.0
        output = TokenClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )
        return output if return_dict else output.to_tuple()


# `save_pretrained` copies this file and the configuration file beside the weights only for registered classes.
AdversarialMidiBertModel.register_for_auto_class("AutoModel")
AdversarialMidiBertForPreTraining.register_for_auto_class("AutoModelForPreTraining")
AdversarialMidiBertForSequenceClassification.register_for_auto_class("AutoModelForSequenceClassification")
AdversarialMidiBertForTokenClassification.register_for_auto_class("AutoModelForTokenClassification")

__all__ = [
    "AdversarialMidiBertPreTrainedModel",
    "AdversarialMidiBertModel",
    "AdversarialMidiBertForPreTraining",
    "AdversarialMidiBertForSequenceClassification",
    "AdversarialMidiBertForTokenClassification",
    "choose_notes",
    "corrupt_notes",
    "masker_targets",
    "real_note_mask",
    "fine_tuning_inputs",
    "relative_key_query_bias",
]
