"""Configuration of Adversarial-MidiBERT: a BERT over Octuple MIDI tokens with adversarial masked pre-training.

Hub code: imports only the standard library and transformers, so that `save_pretrained` can copy it beside the
weights and `AutoConfig.from_pretrained(..., trust_remote_code=True)` can load it alone.
"""
from __future__ import annotations

import math
from dataclasses import field
from typing import Any, ClassVar

from transformers import PreTrainedConfig

# Attribute order of axis -1 of every Octuple id tensor; kept in step with `tokenization_octuple.py`.
ATTRIBUTES = ("bar", "position", "instrument", "pitch", "duration", "velocity", "time_signature", "tempo")
REGULAR_VOCAB_SIZES = (256, 128, 129, 256, 128, 32, 254, 49)
# After each attribute's regular ids come these specials, in this order (offsets from the regular size).
NUM_SPECIAL_IDS = 4
PAD_OFFSET, MASK_OFFSET, BOS_OFFSET, EOS_OFFSET = 0, 1, 2, 3

POSITION_EMBEDDING_TYPES = ("relative_key_query", "absolute", "rotary")
POOLINGS = ("attention", "bos", "mean")
MASKINGS = ("adversarial", "random", "random_freeze")
LAYER_NORM_POSITIONS = ("post", "pre")

# Every Auto class resolves to these files, whichever head saved the checkpoint (FACTS.md: `save_pretrained`
# otherwise records only the class it saved, and loading another head fails with "Unrecognized configuration").
AUTO_MAP = {
    "AutoConfig": "configuration_adversarial_midibert.AdversarialMidiBertConfig",
    "AutoModel": "modeling_adversarial_midibert.AdversarialMidiBertModel",
    "AutoModelForPreTraining": "modeling_adversarial_midibert.AdversarialMidiBertForPreTraining",
    "AutoModelForSequenceClassification": "modeling_adversarial_midibert.AdversarialMidiBertForSequenceClassification",
    "AutoModelForTokenClassification": "modeling_adversarial_midibert.AdversarialMidiBertForTokenClassification",
    "AutoTokenizer": ["tokenization_octuple.OctupleTokenizer", None],
}

PRESETS: dict[str, dict[str, Any]] = {
    # Paper, Table 1: the authors' BERT-base backbone with relative_key_query positions.
    "paper": {
        "hidden_size": 768,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "intermediate_size": 3072,
        "max_position_embeddings": 1024,
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "attribute_embedding_size": 256,
        "masker_hidden_size": 256,
        "position_embedding_type": "relative_key_query",
    },
    # Trains on a laptop CPU in minutes; same method, same vocabulary, same position limit.
    "tiny": {
        "hidden_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 256,
        "max_position_embeddings": 1024,
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "attribute_embedding_size": 32,
        "masker_hidden_size": 64,
        "position_embedding_type": "relative_key_query",
    },
    # The shipped checkpoints' network (adversarial_midibert/configs/small.yaml, docs/pretraining.md): 4 x 128, 1.1 M
    # parameters, 3x the tiny network's compute per note and what ~20 tokens per parameter (the compute-optimal
    # rule) fits in a few CPU hours in the authors' mode, whose masker pass doubles the backbone's work (3,000 steps
    # took 79 min on one thread); rotary positions
    # (relative, without the L x L bias that took 40 % of a tiny step), no dropout (a run this short sees the corpus
    # about twice and cannot overfit it; dropout's masks were 11 % of a tiny step) and pitch-class sharing
    # (held-out pitch recovery 0.117 instead of 0.070 after 1,000 steps of the tiny network).
    "small": {
        "hidden_size": 128,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "intermediate_size": 512,
        "max_position_embeddings": 1024,
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
        "attribute_embedding_size": 64,
        "masker_hidden_size": 128,
        "position_embedding_type": "rotary",
        "pitch_class_sharing": True,
    },
}


# Upper bounds checked before any allocation. They sit far above any model of this kind (the paper's is
# 12 x 768, about 0.1 B parameters) and only catch typos and hostile config.json files.
SIZE_LIMITS = {
    "hidden_size": 2**15,
    "num_hidden_layers": 256,
    "num_attention_heads": 1024,
    "intermediate_size": 2**17,
    "max_position_embeddings": 2**16,
    "attribute_embedding_size": 2**14,
    "masker_hidden_size": 2**16,
    "pooling_attention_size": 2**16,
    "pooling_attention_heads": 1024,
    "classifier_hidden_size": 2**16,
}
MAX_ATTRIBUTE_VOCAB_SIZE = 2**20
MAX_PARAMETERS = 5 * 10**9  # 20 GB of float32 weights


class AdversarialMidiBertConfig(PreTrainedConfig):
    r"""
    Configuration of an Adversarial-MidiBERT model: the Octuple embedding, the BERT encoder, the pre-training heads
    (recoverer and masker) with the adversarial-masking hyper-parameters, and the fine-tuning heads.

    The defaults are the paper's (Table 1). Backbone fields keep BERT's names.

    Args:
        hidden_size (`int`, *optional*, defaults to 768): width of the encoder.
        num_hidden_layers (`int`, *optional*, defaults to 12): number of encoder layers.
        num_attention_heads (`int`, *optional*, defaults to 12): attention heads; must divide `hidden_size`.
        intermediate_size (`int`, *optional*, defaults to 3072): width of the feed-forward layer.
        hidden_act (`str`, *optional*, defaults to `"gelu"`): feed-forward and masker activation.
        hidden_dropout_prob (`float`, *optional*, defaults to 0.1): dropout on embeddings and residual branches.
        attention_probs_dropout_prob (`float`, *optional*, defaults to 0.1): dropout on attention probabilities.
        max_position_embeddings (`int`, *optional*, defaults to 1024): longest sequence, BOS and EOS included.
        layer_norm_eps (`float`, *optional*, defaults to 1e-12): LayerNorm epsilon.
        initializer_range (`float`, *optional*, defaults to 0.02): std of the normal weight initialisation.
        position_embedding_type (`str`, *optional*, defaults to `"relative_key_query"`): `"relative_key_query"`
            (the authors' setting: learned distance embeddings on queries and keys, Huang et al. 2020) or
            `"absolute"` (learned absolute position embeddings added to the input) or `"rotary"` (rotary position
            embeddings on queries and keys, as ModernBERT: relative like `relative_key_query`, but with no
            `L x L` bias, so attention keeps scaled-dot-product attention's fused kernels; docs/probes/README.md
            measures it).
        rotary_base (`float`, *optional*, defaults to 10000.0): base of the rotary frequencies
            (`position_embedding_type="rotary"` only).
        layer_norm_position (`str`, *optional*, defaults to `"post"`): `"post"` (BERT's and the authors' layer:
            each residual sum is normalised) or `"pre"` (each sub-layer normalises its input, the residual stream
            is left alone, and a LayerNorm ends the encoder, as ModernBERT and Cramming do; the same parameter
            names, plus `encoder.final_layer_norm`). docs/pretraining.md measures it.
        attribute_vocab_sizes (`list[int]`, *optional*): regular ids per attribute, 8 values in the order
            `bar, position, instrument, pitch, duration, velocity, time_signature, tempo`. Four special ids
            (PAD, MASK, BOS, EOS) follow each attribute's regular ids.
        attribute_embedding_size (`int`, *optional*, defaults to 256): width of each attribute's table.
        scale_attribute_embeddings (`bool`, *optional*, defaults to `True`): multiply each table's output by
            sqrt(`attribute_embedding_size`), as the authors' code does.
        pitch_class_sharing (`bool`, *optional*, defaults to `False`): add to each pitch's embedding a pitch-class
            row and an octave row shared by all pitches of that class / octave, and to the recoverer's pitch logits
            a shared pitch-class and octave logit. `False` is the paper's network (one free row per pitch);
            docs/probes/README.md measures what sharing does to pitch recovery.
        masker_hidden_size (`int`, *optional*, defaults to 256): inner width of the masker head.
        classifier_pooling (`str`, *optional*, defaults to `"attention"`): sequence pooling, `"attention"`
            (the authors' structured self-attention pooling over the notes), `"bos"` or `"mean"` (over the notes).
        pooling_attention_size (`int`, *optional*, defaults to 128): inner width d_a of the attention pooling.
        pooling_attention_heads (`int`, *optional*, defaults to 4): number r of attention-pooling heads; the pooled
            vector concatenates their r weighted sums (width r x `hidden_size`).
        classifier_hidden_size (`int`, *optional*, defaults to 256): hidden width of both classification heads'
            `Linear - ReLU - Linear` classifier (the authors'); `None` for a single linear layer.
        classifier_dropout (`float`, *optional*): dropout before the classifiers; `None` uses `hidden_dropout_prob`.
        masking (`str`, *optional*, defaults to `"adversarial"`): `"adversarial"` (the masker chooses),
            `"random"` (plain MLM, the paper's ablation) or `"random_freeze"` (uniform random choice with the freeze
            book updated from random scores: the control that isolates what freezing alone does).
        mask_percent (`float`, *optional*, defaults to 15): p, the % of each sequence's real notes chosen.
        masker_target_percent (`float`, *optional*, defaults to 30): q, the % of a sequence's chosen notes that get
            masker target 1 (highest recovery loss) and target 0 (lowest); at most 50.
        freeze_percent (`float`, *optional*, defaults to 30): a, the % of each song's notes frozen every k epochs.
        unfreeze_percent (`float`, *optional*, defaults to 10): b, the % of frozen notes released again.
        freeze_every_epochs (`int`, *optional*, defaults to 15): k; 0 never freezes (adversarial masking without
            the freeze book, an ablation).
        attribute_weights_every_steps (`int`, *optional*, defaults to 0): eq. 2's attribute weights are computed
            from the recovery accuracy of the epoch's training masked notes at each epoch's end (0, the paper); N > 0
            also recomputes them every N optimizer steps from the current epoch's notes so far. Why one would: the
            paper's rule runs the whole first epoch at 1/8 each, a quarter of the `small` recipe, with pitch at the
            unigram rate until it ends. Measured there (N = 250): pitch rises earlier, bar, position and duration
            lag, and by step 3,000 the paper's rule leads (docs/pretraining.md), so no preset sets it.
        freeze_rank_momentum (`float`, *optional*, defaults to 0.7): m in [0, 1). Each freeze update ranks a song's
            notes by m * their previous (smoothed) rank + (1 - m) * this update's rank instead of this update's
            scores alone (m = 0, the paper). Why: a masker that is still learning reorders its notes between
            updates, and each reordering freezes a new a % (head-only main job, k = 1: 60 % frozen with 0, at most
            half with 0.7; docs/pretraining.md). A masker that keeps its ranking freezes the same notes either way.
        masker_random_share (`float`, *optional*, defaults to 0.5): share of each sequence's chosen notes drawn
            uniformly from its selectable notes instead of the masker's top scores. Eq. 3 then ranks a mix of the
            masker's picks and random ones, so the masker learns how hard ALL notes are, not only the ones the
            recoverer is already training on (with 0, the masker's scores stayed flat: docs/pretraining.md).
        masker_lr_scale (`float`, *optional*): the masker head's learning rate as a multiple of the rest of the
            network's (`AdversarialTrainer` puts the head in parameter groups of its own). Default (`None`): 1 when
            the masker loss trains the backbone, 20 when it trains the head alone (measured: docs/pretraining.md).
        masker_feature_layer (`int`, *optional*): which hidden states the masker reads, 0 = the attribute
            embeddings, `num_hidden_layers` = the last layer's output. Default (`None`): the last layer when the
            masker loss trains the backbone; the embeddings when it trains the head alone, since MLM never trains
            the backbone's outputs on clean notes and they barely differ from note to note (docs/pretraining.md).
        masker_window_norm (`bool`, *optional*, defaults to `True`): standardise the masker's input features over
            the real notes of each window (see `AdversarialMidiBertMaskerHead`); `False` for the authors' head.
        mask_token_ratio (`float`, *optional*, defaults to 0.8): share of chosen notes set to MASK.
        random_token_ratio (`float`, *optional*, defaults to 0.2): share of chosen notes given random regular ids;
            the rest keep their ids.
        masker_updates_backbone (`bool`, *optional*, defaults to `True`): whether the masker loss also trains the
            shared backbone through the clean pass (the authors' code: 1.7-1.8x the cost of a random-masking step on
            the tiny preset) or only the masker head, which then reads the embeddings (no encoder pass: 1.0x).
            Measured on the tiny preset (docs/masker-study.md): both maskers learn; at 1,256 steps the
            head-only checkpoint fine-tuned worse (melody), so the authors' setting stays the default.
        finetune_mask_percent (`float`, *optional*, defaults to 15): % of real notes set to all-MASK in the
            training forwards of the classification heads (mask fine-tuning).
        hidden_attributes (`list[str]`, *optional*, defaults to `[]`): attributes always replaced by MASK in the
            classification heads' input, e.g. `["velocity"]` for velocity prediction.

    Example:

    ```python
    >>> from configuration_adversarial_midibert import AdversarialMidiBertConfig
    >>> config = AdversarialMidiBertConfig.from_preset("tiny", num_labels=4)
    >>> config.vocab_sizes
    (260, 132, 133, 260, 132, 36, 258, 53)
    >>> config.mask_token_ids[3]
    257

    ```
    """

    model_type: ClassVar[str] = "adversarial_midibert"

    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 1024
    layer_norm_eps: float = 1e-12
    initializer_range: float = 0.02
    position_embedding_type: str = "relative_key_query"
    rotary_base: float = 10000.0
    layer_norm_position: str = "post"

    attribute_vocab_sizes: list[int] = field(default_factory=lambda: list(REGULAR_VOCAB_SIZES))
    attribute_embedding_size: int = 256
    scale_attribute_embeddings: bool = True
    pitch_class_sharing: bool = False
    masker_hidden_size: int = 256

    classifier_pooling: str = "attention"
    pooling_attention_size: int = 128
    pooling_attention_heads: int = 4
    classifier_hidden_size: int | None = 256
    classifier_dropout: float | None = None

    masking: str = "adversarial"
    mask_percent: float = 15
    masker_target_percent: float = 30
    freeze_percent: float = 30
    unfreeze_percent: float = 10
    freeze_every_epochs: int = 15
    attribute_weights_every_steps: int = 0
    freeze_rank_momentum: float = 0.7
    masker_random_share: float = 0.5
    masker_lr_scale: float | None = None
    masker_feature_layer: int | None = None
    masker_window_norm: bool = True
    mask_token_ratio: float = 0.8
    random_token_ratio: float = 0.2
    masker_updates_backbone: bool = True

    finetune_mask_percent: float = 15
    hidden_attributes: list[str] = field(default_factory=list)

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        self.attribute_vocab_sizes = [int(n) for n in self.attribute_vocab_sizes]
        self.hidden_attributes = list(self.hidden_attributes)
        self._check()
        # Merge rather than overwrite: a user may have added entries (e.g. a pipeline) to a saved config.
        self.auto_map = {**AUTO_MAP, **(getattr(self, "auto_map", None) or {})}

    @property
    def masker_feature_index(self) -> int:
        """Index into the backbone's `hidden_states` that the masker reads (`masker_feature_layer` resolved)."""
        if self.masker_feature_layer is not None:
            return int(self.masker_feature_layer)
        return self.num_hidden_layers if self.masker_updates_backbone else 0

    @property
    def masker_learning_rate_scale(self) -> float:
        """The masker head's learning-rate multiple (`masker_lr_scale` resolved)."""
        if self.masker_lr_scale is not None:
            return float(self.masker_lr_scale)
        return 1.0 if self.masker_updates_backbone else 20.0

    def _check(self) -> None:
        def positive(name):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"`{name}` must be a positive integer, got {value!r}")

        for name in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                     "max_position_embeddings", "attribute_embedding_size", "masker_hidden_size",
                     "pooling_attention_size", "pooling_attention_heads"):
            positive(name)
        if not isinstance(self.freeze_every_epochs, int) or self.freeze_every_epochs < 0:
            raise ValueError(f"`freeze_every_epochs` must be an integer >= 0, got {self.freeze_every_epochs!r}")
        steps = self.attribute_weights_every_steps
        if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
            raise ValueError(f"`attribute_weights_every_steps` must be an integer >= 0, got {steps!r}")
        if self.classifier_hidden_size is not None:
            positive("classifier_hidden_size")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"`hidden_size` ({self.hidden_size}) must be a multiple of `num_attention_heads` "
                f"({self.num_attention_heads})"
            )
        if self.position_embedding_type == "rotary" and (self.hidden_size // self.num_attention_heads) % 2:
            raise ValueError(
                f"rotary positions rotate pairs of dimensions: the head width hidden_size / num_attention_heads "
                f"({self.hidden_size // self.num_attention_heads}) must be even"
            )
        if not self.rotary_base > 1:
            raise ValueError(f"`rotary_base` must be > 1, got {self.rotary_base}")
        if len(self.attribute_vocab_sizes) != len(ATTRIBUTES) or min(self.attribute_vocab_sizes) <= 0:
            raise ValueError(
                f"`attribute_vocab_sizes` must hold {len(ATTRIBUTES)} positive sizes (one per attribute: "
                f"{', '.join(ATTRIBUTES)}), got {self.attribute_vocab_sizes}"
            )
        self._check_sizes()
        choices = {
            "position_embedding_type": POSITION_EMBEDDING_TYPES,
            "layer_norm_position": LAYER_NORM_POSITIONS,
            "classifier_pooling": POOLINGS,
            "masking": MASKINGS,
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"`{name}` must be one of {allowed}, got {getattr(self, name)!r}")
        for name in ("mask_percent", "freeze_percent", "unfreeze_percent", "finetune_mask_percent"):
            value = getattr(self, name)
            if not 0 <= value <= 100:
                raise ValueError(f"`{name}` is a percentage and must lie in 0..100, got {value}")
        if not 0 < self.masker_target_percent <= 50:
            # Above 50 the top-q % (target 1) and bottom-q % (target 0) of a sequence's notes would overlap.
            raise ValueError(f"`masker_target_percent` must lie in (0, 50], got {self.masker_target_percent}")
        if self.masker_feature_layer is not None and not 0 <= self.masker_feature_layer <= self.num_hidden_layers:
            raise ValueError(f"`masker_feature_layer` must lie in 0..{self.num_hidden_layers} (0 = the embeddings) or "
                             f"be None, got {self.masker_feature_layer}")
        if not 0 <= self.freeze_rank_momentum < 1:
            raise ValueError(f"`freeze_rank_momentum` must lie in [0, 1), got {self.freeze_rank_momentum}")
        if self.masker_lr_scale is not None and not self.masker_lr_scale > 0:
            raise ValueError(f"`masker_lr_scale` must be > 0 or None, got {self.masker_lr_scale}")
        for name in ("mask_token_ratio", "random_token_ratio", "masker_random_share", "hidden_dropout_prob",
                     "attention_probs_dropout_prob"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise ValueError(f"`{name}` must lie in 0..1, got {value}")
        if self.classifier_dropout is not None and not 0 <= self.classifier_dropout <= 1:
            raise ValueError(f"`classifier_dropout` must lie in 0..1 or be None, got {self.classifier_dropout}")
        if self.mask_token_ratio + self.random_token_ratio > 1 + 1e-9:
            raise ValueError(
                f"`mask_token_ratio` + `random_token_ratio` must not exceed 1, got "
                f"{self.mask_token_ratio} + {self.random_token_ratio}"
            )
        unknown = [name for name in self.hidden_attributes if name not in ATTRIBUTES]
        if unknown:
            raise ValueError(f"`hidden_attributes` has unknown attributes {unknown}; known: {ATTRIBUTES}")

    def _check_sizes(self) -> None:
        """Refuse sizes no real model has, before anything is allocated: a typo such as `num_hidden_layers=10**6`
        would otherwise allocate until memory runs out, and `hidden_size=10**6` fail deep in the allocator."""
        fields = {name: getattr(self, name) for name in SIZE_LIMITS}
        fields["classifier_hidden_size"] = self.classifier_hidden_size or 1
        for name, value in fields.items():
            if value > SIZE_LIMITS[name]:
                raise ValueError(f"`{name}` is {value}, more than the largest supported {SIZE_LIMITS[name]}")
        largest = max(self.attribute_vocab_sizes)
        if largest > MAX_ATTRIBUTE_VOCAB_SIZE:
            raise ValueError(f"`attribute_vocab_sizes` holds {largest}, more than the largest supported "
                             f"{MAX_ATTRIBUTE_VOCAB_SIZE} ids per attribute")
        parameters = self.approximate_num_parameters()
        if parameters > MAX_PARAMETERS:
            raise ValueError(
                f"`num_hidden_layers` ({self.num_hidden_layers}), `hidden_size` ({self.hidden_size}) and "
                f"`intermediate_size` ({self.intermediate_size}) imply about {parameters:.3g} parameters, more than "
                f"the largest supported {MAX_PARAMETERS:.3g}"
            )

    def approximate_num_parameters(self) -> int:
        """
        Parameters the model these sizes describe would have, to within a few percent (the encoder's weight
        matrices, the attribute tables and the recoverer's output layers; biases and norms left out).

        Example:

        ```python
        >>> from configuration_adversarial_midibert import AdversarialMidiBertConfig
        >>> round(AdversarialMidiBertConfig.from_preset("paper").approximate_num_parameters() / 1e6)
        89

        ```
        """
        hidden, vocab = self.hidden_size, sum(self.vocab_sizes)
        encoder = self.num_hidden_layers * (4 * hidden * hidden + 2 * hidden * self.intermediate_size)
        embedding = vocab * self.attribute_embedding_size + len(ATTRIBUTES) * self.attribute_embedding_size * hidden
        return encoder + embedding + vocab * hidden + self.max_position_embeddings * hidden

    @classmethod
    def from_preset(cls, name: str, **overrides) -> "AdversarialMidiBertConfig":
        """
        Build a config from a named preset, `"paper"` (Table 1), `"tiny"` or `"small"` (the shipped CPU-trained
        model's network), with any field overridden.

        Example:

        ```python
        >>> from configuration_adversarial_midibert import AdversarialMidiBertConfig
        >>> AdversarialMidiBertConfig.from_preset("paper").num_hidden_layers
        12
        >>> AdversarialMidiBertConfig.from_preset("tiny", position_embedding_type="absolute").hidden_size
        128

        ```
        """
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; known: {sorted(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})

    @property
    def attributes(self) -> tuple[str, ...]:
        return ATTRIBUTES

    @property
    def vocab_sizes(self) -> tuple[int, ...]:
        """Full table size per attribute: the regular ids and the 4 specials."""
        return tuple(n + NUM_SPECIAL_IDS for n in self.attribute_vocab_sizes)

    @property
    def pad_token_ids(self) -> tuple[int, ...]:
        return tuple(n + PAD_OFFSET for n in self.attribute_vocab_sizes)

    @property
    def mask_token_ids(self) -> tuple[int, ...]:
        return tuple(n + MASK_OFFSET for n in self.attribute_vocab_sizes)

    @property
    def bos_token_ids(self) -> tuple[int, ...]:
        return tuple(n + BOS_OFFSET for n in self.attribute_vocab_sizes)

    @property
    def eos_token_ids(self) -> tuple[int, ...]:
        return tuple(n + EOS_OFFSET for n in self.attribute_vocab_sizes)

    @property
    def attribute_embedding_scale(self) -> float:
        return math.sqrt(self.attribute_embedding_size) if self.scale_attribute_embeddings else 1.0


AdversarialMidiBertConfig.register_for_auto_class()

__all__ = ["AdversarialMidiBertConfig"]
