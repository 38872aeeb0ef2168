"""Convert the authors' published Adversarial-MidiBERT weights into this package's classes.

The authors (github.com/RS2002/Adversarial-MidiBERT) save PyTorch state dicts of their own modules:
`midibert_pretrain.pth` (the backbone, `MidiBert` of their `model.py`), `pretrain_model.pth` (backbone + MLM
head, `MidiBertLM`, often with DataParallel's `module.` prefix), and a Hugging Face Hub release of the same
weights (`model.safetensors` or `pytorch_model.bin` written by `PyTorchModelHubMixin`, with their `Octuple.pkl`
dictionary). Their network is a transformers 4.x `BertModel` fed `inputs_embeds`, so every tensor has a place in
`AdversarialMidiBertForPreTraining`; the mapping (below, and in docs/authors-weights.md) is written from their
`model.py`, `pretrain.py` and PianoBART's `make_dict.py`.

| their key (under the backbone prefix)          | ours (`midibert.` in head classes)                |
|------------------------------------------------|---------------------------------------------------|
| `word_emb.{j}.lut.weight` (n_j + 6, E)         | `embeddings.attribute_embeddings.{j}.weight` (n_j + 4, E): rows 0..n_j+3 |
| `in_linear.weight` / `in_linear.bias`          | `embeddings.projection.weight` / `.bias` + `bert.embeddings.token_type_embeddings.weight[0]` |
| `bert.embeddings.LayerNorm.*`                  | `embeddings.LayerNorm.*`                          |
| `bert.encoder.layer.{i}.*`                     | `encoder.layer.{i}.*` (same names, incl. `attention.self.distance_embedding.weight`) |
| `proj.{j}.weight` / `.bias` (MLM head)         | `recoverer.{j}.weight` / `.bias`: rows 0..n_j+3    |

Ids: their regular ids equal ours row for row (same MusicBERT tables and order); after them they put
`PAD, MASK, SOS, EOS, CLS, SEP`, we put `PAD, MASK, BOS, EOS`: the first four rows map one to one (SOS is our
BOS) and CLS / SEP, which their data never contains, are dropped. Skipped, and reported: the text word-embedding
table (`bert.embeddings.word_embeddings`, never used with `inputs_embeds`), `bert.embeddings.position_embeddings`
(unused with `relative_key_query`), the second token-type row, the pooler, and `attention_linear` (their disabled
attribute-attention MLP). Their masker head was never saved, so ours starts freshly initialised.

Run it as `python -m adversarial_midibert.hub.convert_authors SOURCE OUTPUT_DIR` (or `adversarial-midibert convert`).
"""
from __future__ import annotations

import argparse
import json
import pickle
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from configuration_adversarial_midibert import REGULAR_VOCAB_SIZES, AdversarialMidiBertConfig

AUTHOR_ATTRIBUTES = ("Bar", "Position", "Instrument", "Pitch", "Duration", "Velocity", "TimeSig", "Tempo")
# Their special ids follow each attribute's regular ids in this order; ours are the first four, same order.
AUTHOR_SPECIALS = ("PAD", "MASK", "SOS", "EOS", "CLS", "SEP")
KEPT_SPECIALS = 4
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
DICTIONARY_FILE = "Octuple.pkl"
_LAYER_TENSORS = (
    "attention.self.query.weight", "attention.self.query.bias",
    "attention.self.key.weight", "attention.self.key.bias",
    "attention.self.value.weight", "attention.self.value.bias",
    "attention.output.dense.weight", "attention.output.dense.bias",
    "attention.output.LayerNorm.weight", "attention.output.LayerNorm.bias",
    "intermediate.dense.weight", "intermediate.dense.bias",
    "output.dense.weight", "output.dense.bias",
    "output.LayerNorm.weight", "output.LayerNorm.bias",
)
_DISTANCE = "attention.self.distance_embedding.weight"
_BERT_DEFAULT_HEADS = 12  # their BertConfig never sets it


class ConversionError(ValueError):
    """The checkpoint is not one the converter recognises (unknown keys or shapes, or an incompatible vocabulary)."""


@dataclass
class ConversionPlan:
    """What goes where: computed from key names and shapes alone, so it can be checked without the weights.

    Attributes:
        config (`AdversarialMidiBertConfig`): the architecture the shapes imply.
        has_heads (`bool`): whether the file holds the MLM head (then the target is `...ForPreTraining`).
        sources (`dict[str, tuple[str, tuple[str, ...]]]`): our key (in the `...ForPreTraining` layout when
            `has_heads`, else the backbone layout) -> (rule, their keys). Rules: `"copy"`, `"rows"` (keep the
            regular ids and PAD, MASK, SOS, EOS), `"fold"` (projection bias + token-type row 0).
        skipped (`dict[str, str]`): their key -> why it is not used. Besides these, every `"rows"` rule drops
            the last two rows of its table (their CLS and SEP ids, which their data never contains).
        backbone_prefix, head_prefix (`str`): where their `MidiBert` and `MLM` modules sit in the file.
    """

    config: AdversarialMidiBertConfig
    has_heads: bool
    sources: dict[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    backbone_prefix: str = ""
    head_prefix: str | None = None


def plan_conversion(shapes: Mapping[str, Sequence[int]], *, num_attention_heads: int | None = None,
                    regular_vocab_sizes: Sequence[int] = REGULAR_VOCAB_SIZES) -> ConversionPlan:
    """
    Map the authors' key names and shapes onto ours, refusing anything it does not recognise.

    Args:
        shapes (`Mapping[str, Sequence[int]]`): their key -> tensor shape (a state dict's `.shape`s will do).
        num_attention_heads (`int`, *optional*): only needed for an absolute-position checkpoint; with
            `relative_key_query` it follows from the distance table's width.
        regular_vocab_sizes (`Sequence[int]`, *optional*): our regular ids per attribute.

    Returns:
        [`ConversionPlan`].

    Raises:
        [`ConversionError`] naming the unknown keys, the missing keys or the wrong shapes.

    Example:

    ```python
    >>> from adversarial_midibert.hub.convert_authors import plan_conversion
    >>> shapes = {k: v.shape for k, v in torch.load("midibert_pretrain.pth").items()}  # doctest: +SKIP
    >>> plan_conversion(shapes).config.num_hidden_layers                                # doctest: +SKIP
    12
    ```
    """
    shapes = {key: tuple(int(n) for n in shape) for key, shape in _strip_data_parallel(shapes).items()}
    prefix = _one_prefix(shapes, "in_linear.weight", "the backbone (their MidiBert)")
    if prefix is None:
        raise ConversionError(
            "not an Adversarial-MidiBERT checkpoint: no `in_linear.weight` (the authors' MidiBert projection) "
            f"among its {len(shapes)} keys, e.g. {sorted(shapes)[:5]}")
    heads = _one_prefix({k: v for k, v in shapes.items() if not k.startswith(prefix) or not prefix},
                        "proj.0.weight", "the MLM head")
    if heads == prefix:
        heads = None
    expected: dict[str, tuple[int, ...]] = {}
    bad: list[str] = []

    def need(key: str, shape: tuple[int, ...]) -> None:
        expected[key] = shape
        if key in shapes and shapes[key] != shape:
            bad.append(f"{key}: shape {shapes[key]}, expected {shape}")

    def get(key: str) -> tuple[int, ...]:
        if key not in shapes:
            raise ConversionError(f"missing key {key!r}: not the authors' MidiBert layout")
        return shapes[key]

    b = prefix
    width = get(f"{b}word_emb.0.lut.weight")[1]
    hidden = get(f"{b}in_linear.weight")[0]
    layers = sorted({int(m.group(1)) for k in shapes if (m := re.match(re.escape(b) + r"bert\.encoder\.layer\.(\d+)\.", k))})
    if not layers or layers != list(range(len(layers))):
        raise ConversionError(f"encoder layers must be numbered 0..N-1, found {layers}")
    intermediate = get(f"{b}bert.encoder.layer.0.intermediate.dense.weight")[0]
    relative = f"{b}bert.encoder.layer.0.{_DISTANCE}" in shapes
    if relative:
        rows, head_size = get(f"{b}bert.encoder.layer.0.{_DISTANCE}")
        if rows % 2 == 0 or hidden % head_size:
            raise ConversionError(f"distance table {(rows, head_size)} does not fit hidden size {hidden}")
        max_positions, heads_count = (rows + 1) // 2, hidden // head_size
        if num_attention_heads not in (None, heads_count):
            raise ConversionError(f"the distance table implies {heads_count} attention heads, "
                                  f"not {num_attention_heads}")
    else:
        max_positions = get(f"{b}bert.embeddings.position_embeddings.weight")[0]
        heads_count = num_attention_heads or _BERT_DEFAULT_HEADS
    config = AdversarialMidiBertConfig.from_preset(
        "paper", hidden_size=hidden, num_hidden_layers=len(layers), num_attention_heads=heads_count,
        intermediate_size=intermediate, max_position_embeddings=max_positions, attribute_embedding_size=width,
        attribute_vocab_sizes=list(regular_vocab_sizes), scale_attribute_embeddings=True,
        position_embedding_type="relative_key_query" if relative else "absolute", hidden_act="gelu",
        layer_norm_eps=1e-12)

    plan = ConversionPlan(config=config, has_heads=heads is not None, backbone_prefix=b, head_prefix=heads)
    ours = "midibert." if plan.has_heads else ""
    for j, (name, n) in enumerate(zip(AUTHOR_ATTRIBUTES, regular_vocab_sizes)):
        key = f"{b}word_emb.{j}.lut.weight"
        rows = get(key)[0]
        if rows != n + len(AUTHOR_SPECIALS):
            raise ConversionError(
                f"{key}: the {name} table has {rows} rows; the authors' layout has {n} regular ids + "
                f"{len(AUTHOR_SPECIALS)} specials ({', '.join(AUTHOR_SPECIALS)}) = {n + len(AUTHOR_SPECIALS)}. "
                "A vocabulary of another size cannot be mapped onto ours row by row.")
        need(key, (n + len(AUTHOR_SPECIALS), width))
        plan.sources[f"{ours}embeddings.attribute_embeddings.{j}.weight"] = ("rows", (key,))
    need(f"{b}in_linear.weight", (hidden, len(AUTHOR_ATTRIBUTES) * width))
    need(f"{b}in_linear.bias", (hidden,))
    type_rows = get(f"{b}bert.embeddings.token_type_embeddings.weight")[0]
    need(f"{b}bert.embeddings.token_type_embeddings.weight", (type_rows, hidden))
    plan.sources[f"{ours}embeddings.projection.weight"] = ("copy", (f"{b}in_linear.weight",))
    plan.sources[f"{ours}embeddings.projection.bias"] = (
        "fold", (f"{b}in_linear.bias", f"{b}bert.embeddings.token_type_embeddings.weight"))
    for part in ("weight", "bias"):
        need(f"{b}bert.embeddings.LayerNorm.{part}", (hidden,))
        plan.sources[f"{ours}embeddings.LayerNorm.{part}"] = ("copy", (f"{b}bert.embeddings.LayerNorm.{part}",))
    position_key = f"{b}bert.embeddings.position_embeddings.weight"
    if relative:
        if position_key in shapes:
            need(position_key, (max_positions, hidden))
            plan.skipped[position_key] = "absolute position table, unused with relative_key_query"
    else:
        need(position_key, (max_positions, hidden))
        plan.sources[f"{ours}embeddings.position_embeddings.weight"] = ("copy", (position_key,))
    layer_shapes = {
        "attention.self.query.weight": (hidden, hidden), "attention.self.key.weight": (hidden, hidden),
        "attention.self.value.weight": (hidden, hidden), "attention.output.dense.weight": (hidden, hidden),
        "intermediate.dense.weight": (intermediate, hidden), "intermediate.dense.bias": (intermediate,),
        "output.dense.weight": (hidden, intermediate),
    }
    for i in layers:
        names = _LAYER_TENSORS + ((_DISTANCE,) if relative else ())
        for name in names:
            shape = (2 * max_positions - 1, hidden // heads_count) if name == _DISTANCE else \
                layer_shapes.get(name, (hidden,))
            need(f"{b}bert.encoder.layer.{i}.{name}", shape)
            plan.sources[f"{ours}encoder.layer.{i}.{name}"] = ("copy", (f"{b}bert.encoder.layer.{i}.{name}",))
    if plan.has_heads:
        for j, n in enumerate(regular_vocab_sizes):
            for part, shape in (("weight", (n + len(AUTHOR_SPECIALS), hidden)), ("bias", (n + len(AUTHOR_SPECIALS),))):
                need(f"{heads}proj.{j}.{part}", shape)
                plan.sources[f"recoverer.{j}.{part}"] = ("rows", (f"{heads}proj.{j}.{part}",))

    # Present in their files, never used by their forward: recognised (shape-checked) and skipped.
    optional = {
        f"{b}bert.embeddings.word_embeddings.weight": (None, hidden, "text word-embedding table; their "
                                                                     "forward feeds inputs_embeds"),
        f"{b}bert.pooler.dense.weight": ((hidden, hidden), None, "BERT pooler, never used"),
        f"{b}bert.pooler.dense.bias": ((hidden,), None, "BERT pooler, never used"),
        f"{b}bert.embeddings.position_ids": (None, None, "buffer of position indices"),
        f"{b}bert.embeddings.token_type_ids": (None, None, "buffer of token-type indices"),
        f"{b}attention_linear.0.weight": ((4 * width, 8 * width), None, "attention MLP, disabled in their forward"),
        f"{b}attention_linear.0.bias": ((4 * width,), None, "attention MLP, disabled in their forward"),
        f"{b}attention_linear.2.weight": ((4 * width, 4 * width), None, "attention MLP, disabled in their forward"),
        f"{b}attention_linear.2.bias": ((4 * width,), None, "attention MLP, disabled in their forward"),
        f"{b}attention_linear.4.weight": ((8 * width, 4 * width), None, "attention MLP, disabled in their forward"),
        f"{b}attention_linear.4.bias": ((8 * width,), None, "attention MLP, disabled in their forward"),
    }
    for key, (shape, last_dim, reason) in optional.items():
        if key not in shapes:
            continue
        if (shape is not None and shapes[key] != shape) or (last_dim is not None and shapes[key][-1] != last_dim):
            bad.append(f"{key}: shape {shapes[key]}, expected {shape or ('...', last_dim)}")
        plan.skipped[key] = reason
    if type_rows > 1:
        plan.skipped[f"{b}bert.embeddings.token_type_embeddings.weight"] = (
            f"row 0 folded into the projection bias; rows 1..{type_rows - 1} never used")

    unknown = sorted(set(shapes) - set(expected) - set(plan.skipped))
    missing = sorted(set(expected) - set(shapes))
    problems = []
    if unknown:
        problems.append(f"{len(unknown)} unrecognised key(s): {unknown[:10]}")
    if missing:
        problems.append(f"{len(missing)} missing key(s): {missing[:10]}")
    problems += bad[:10]
    if problems:
        raise ConversionError("cannot convert this checkpoint (the authors' MidiBert / MidiBertLM layout with "
                              "transformers 4.x BertModel was expected):\n  " + "\n  ".join(problems))
    return plan


def convert_state_dict(state_dict: Mapping[str, torch.Tensor], **kwargs) -> tuple[dict[str, torch.Tensor], ConversionPlan]:
    """
    Convert the authors' state dict into ours (keys of `AdversarialMidiBertForPreTraining` when the MLM head is
    present, else of `AdversarialMidiBertModel`).

    Example:

    ```python
    >>> ours, plan = convert_state_dict(torch.load("pretrain_model.pth", weights_only=True))  # doctest: +SKIP
    >>> model = AdversarialMidiBertForPreTraining(plan.config)                                # doctest: +SKIP
    >>> model.load_state_dict(ours, strict=False).unexpected_keys                             # doctest: +SKIP
    []
    ```
    """
    state_dict = _strip_data_parallel(state_dict)
    plan = plan_conversion({key: tuple(value.shape) for key, value in state_dict.items()}, **kwargs)
    converted = {}
    for ours, (rule, keys) in plan.sources.items():
        tensor = state_dict[keys[0]].detach().to(torch.float32)
        if rule == "rows":
            tensor = tensor[: tensor.shape[0] - (len(AUTHOR_SPECIALS) - KEPT_SPECIALS)]
        elif rule == "fold":
            # Their BertEmbeddings adds token-type row 0 to every position (token_type_ids default to zeros).
            tensor = tensor + state_dict[keys[1]][0].to(torch.float32)
        converted[ours] = tensor.clone().contiguous()
    return converted, plan


# Reading their files

def load_authors_checkpoint(source, *, revision: str | None = None, cache_dir=None) -> tuple[dict, dict]:
    """
    Read the authors' weights from a `.pth` / `.bin` / `.safetensors` file, a folder in their Hub release
    layout, or a Hub repo id (downloaded with `huggingface_hub`).

    Returns:
        `(state_dict, found)`: the tensors, and `found` with the weights file, the dictionary (`Octuple.pkl`, or
        `None`) and the release's `config.json` contents (or `None`).
    """
    path = Path(source)
    if not path.exists():
        if not re.fullmatch(r"[\w.-]+/[\w.-]+", str(source)):
            raise ConversionError(f"{source}: no such file or folder, and not a Hub repo id (owner/name)")
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

        try:
            path = Path(snapshot_download(str(source), revision=revision, cache_dir=cache_dir, allow_patterns=[
                *WEIGHT_FILES, "*.pth", "*.pt", "config.json", DICTIONARY_FILE]))
        except (HfHubHTTPError, LocalEntryNotFoundError) as error:
            raise ConversionError(f"{source}: cannot download it from the Hub ({type(error).__name__}: "
                                  f"{str(error).splitlines()[0]})") from error
    found = {"weights": None, "dictionary": None, "release_config": None}
    if path.is_dir():
        candidates = [path / name for name in WEIGHT_FILES if (path / name).is_file()]
        candidates = candidates or sorted([*path.glob("*.pth"), *path.glob("*.pt")])
        if len(candidates) != 1:
            raise ConversionError(
                f"{path}: expected one weights file ({', '.join(WEIGHT_FILES)} or a single .pth), found "
                f"{[c.name for c in candidates] or 'none'}; pass the file itself")
        weights = candidates[0]
        if (path / DICTIONARY_FILE).is_file():
            found["dictionary"] = str(path / DICTIONARY_FILE)
        if (path / "config.json").is_file():
            found["release_config"] = json.loads((path / "config.json").read_text())
    else:
        weights = path
    found["weights"] = str(weights)
    if weights.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(weights))
    else:
        try:
            state = torch.load(weights, map_location="cpu", weights_only=True)
        except Exception as error:  # pickle errors come in many classes
            raise ConversionError(f"{weights}: not a PyTorch state dict readable with weights_only=True ({error})")
        if isinstance(state, Mapping) and not any(isinstance(v, torch.Tensor) for v in state.values()):
            state = next((state[k] for k in ("state_dict", "model", "model_state_dict") if isinstance(state.get(k), Mapping)), state)
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConversionError(f"{weights}: expected a flat state dict of tensors")
    return dict(state), found


class _PlainUnpickler(pickle.Unpickler):
    """Their dictionary is two dicts of str/int; anything that needs a global is refused, not executed."""

    def find_class(self, module, name):
        raise ConversionError(f"refusing to unpickle {module}.{name}: the authors' dictionary holds only dicts")


def authors_dictionary(regular_vocab_sizes: Sequence[int] = REGULAR_VOCAB_SIZES) -> dict[str, dict[str, int]]:
    """
    The authors' event -> id dictionary (`e2w` of PianoBART's `Octuple.pkl`) as our tables imply it: their names,
    our regular id order, then their six specials. A real `Octuple.pkl` must equal it for rows to map one to one.
    """
    from tokenization_octuple import TIME_SIGNATURE_TABLE

    n = dict(zip(AUTHOR_ATTRIBUTES, regular_vocab_sizes))
    names = {
        "Bar": [f"Bar {i}" for i in range(n["Bar"])],
        "Position": [f"Position {i}/64" for i in range(n["Position"])],
        "Instrument": [f"Instrument {i}" for i in range(128)] + ["Instrument percussion"],
        "Pitch": [f"Pitch {i}" for i in range(128)] + [f"Pitch percussion {i}" for i in range(128)],
        "Duration": [f"Duration {i}" for i in range(n["Duration"])],
        "Velocity": [f"Velocity {i * 4 + 2}" for i in range(n["Velocity"])],
        "TimeSig": [f"TimeSig {a}/{b}" for a, b in TIME_SIGNATURE_TABLE],
        "Tempo": [f"Tempo {2 ** (i / 12) * 16}" for i in range(n["Tempo"])],
    }
    table = {}
    for cls in AUTHOR_ATTRIBUTES:
        regular = names[cls]
        if len(regular) != n[cls]:
            raise ConversionError(f"{cls}: our table has {n[cls]} regular ids, the authors' {len(regular)}")
        table[cls] = {name: i for i, name in enumerate(regular + [f"{cls} <{s}>" for s in AUTHOR_SPECIALS])}
    return table


def check_authors_dictionary(path, regular_vocab_sizes: Sequence[int] = REGULAR_VOCAB_SIZES) -> None:
    """Refuse a dictionary (`Octuple.pkl`) whose ids do not line up with ours row for row."""
    with open(path, "rb") as f:
        try:
            loaded = _PlainUnpickler(f).load()
        except ConversionError:
            raise
        except Exception as error:
            raise ConversionError(f"{path}: not a readable dictionary ({error})")
    e2w = loaded[0] if isinstance(loaded, tuple) else loaded
    expected = authors_dictionary(regular_vocab_sizes)
    for cls, table in expected.items():
        theirs = e2w.get(cls) if isinstance(e2w, Mapping) else None
        if theirs != table:
            if not isinstance(theirs, Mapping):
                raise ConversionError(f"{path}: no {cls} table")
            diff = [name for name in table if theirs.get(name) != table[name]][:5]
            extra = sorted(set(theirs) - set(table))[:5]
            raise ConversionError(f"{path}: the {cls} ids differ from ours (e.g. {diff or extra}); "
                                  "rows cannot be mapped one to one")


# Writing ours

@dataclass
class ConversionReport:
    """What a conversion did; `str()` is the summary the command prints."""

    output_dir: str
    weights: str
    plan: ConversionPlan
    not_converted: list[str]
    dictionary_checked: bool

    def to_dict(self) -> dict:
        return {"source": self.weights, "model_class": self.model_class,
                "backbone_prefix": self.plan.backbone_prefix, "head_prefix": self.plan.head_prefix,
                "dictionary_checked": self.dictionary_checked,
                "mapping": {ours: {"rule": rule, "from": list(keys)} for ours, (rule, keys) in self.plan.sources.items()},
                "skipped": self.plan.skipped, "not_converted": self.not_converted}

    @property
    def model_class(self) -> str:
        return "AdversarialMidiBertForPreTraining" if self.plan.has_heads else "AdversarialMidiBertModel"

    def __str__(self) -> str:
        c = self.plan.config
        lines = [f"converted {self.weights} -> {self.output_dir} ({self.model_class})",
                 f"  {c.num_hidden_layers} layers x {c.hidden_size} wide, {c.num_attention_heads} heads, "
                 f"{c.position_embedding_type}, {len(self.plan.sources)} tensors mapped",
                 f"  skipped ({len(self.plan.skipped)}):"]
        lines += [f"    {key}: {reason}" for key, reason in self.plan.skipped.items()]
        if self.not_converted:
            lines.append(f"  not in the authors' files, freshly initialised: {', '.join(self.not_converted)}")
        lines.append("  CLS and SEP rows (their last two ids per attribute, absent from their data) dropped from "
                     "every embedding table and recoverer head")
        lines.append("  dictionary: " + ("checked against ours" if self.dictionary_checked else
                                        "none given (ids assumed to follow PianoBART's Octuple.pkl)"))
        return "\n".join(lines)


def convert_authors_checkpoint(source, output_dir, *, dictionary=None, revision: str | None = None,
                               num_attention_heads: int | None = None, cache_dir=None) -> ConversionReport:
    """
    Convert the authors' checkpoint into a folder that `AutoModel`, `AutoModelForPreTraining` and the
    classification Auto classes load with `trust_remote_code=True`, with our tokenizer and a model card beside it.

    Args:
        source (`str` or `os.PathLike`): their `midibert_pretrain.pth` / `pretrain_model.pth`, a
            `.safetensors` / `.bin` file, a folder in their Hub release layout, or a Hub repo id.
        output_dir (`str` or `os.PathLike`): where to write our checkpoint.
        dictionary (`str` or `os.PathLike`, *optional*): their `Octuple.pkl`, checked against our id layout (found
            automatically in a Hub release folder).
        revision (`str`, *optional*): Hub revision when `source` is a repo id.
        num_attention_heads (`int`, *optional*): only for absolute-position checkpoints (default 12, BERT's).

    Returns:
        [`ConversionReport`]; `conversion.json` in `output_dir` holds the same, key by key.

    Example:

    ```python
    >>> from adversarial_midibert.hub.convert_authors import convert_authors_checkpoint
    >>> report = convert_authors_checkpoint("pretrain_model.pth", "runs/authors")            # doctest: +SKIP
    >>> from transformers import AutoModel
    >>> model = AutoModel.from_pretrained("runs/authors", trust_remote_code=True)             # doctest: +SKIP
    ```
    """
    from modeling_adversarial_midibert import AdversarialMidiBertForPreTraining, AdversarialMidiBertModel
    from tokenization_octuple import OctupleTokenizer

    from adversarial_midibert.hub.model_card import write_model_card

    state, found = load_authors_checkpoint(source, revision=revision, cache_dir=cache_dir)
    dictionary = dictionary or found["dictionary"]
    if dictionary is not None:
        check_authors_dictionary(dictionary)
    converted, plan = convert_state_dict(state, num_attention_heads=num_attention_heads)
    del state
    model_class = AdversarialMidiBertForPreTraining if plan.has_heads else AdversarialMidiBertModel
    model = model_class(plan.config)
    result = model.load_state_dict(converted, strict=False)
    if result.unexpected_keys or any(not key.startswith("masker.") for key in result.missing_keys):
        raise ConversionError(f"internal mapping error: missing {result.missing_keys}, "
                              f"unexpected {result.unexpected_keys}")
    output_dir = Path(output_dir)
    model.save_pretrained(output_dir)
    OctupleTokenizer(max_length=plan.config.max_position_embeddings).save_pretrained(output_dir)
    report = ConversionReport(output_dir=str(output_dir), weights=found["weights"], plan=plan,
                              not_converted=sorted(result.missing_keys), dictionary_checked=dictionary is not None)
    (output_dir / "conversion.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    c = plan.config
    write_model_card(
        output_dir, "pretrained", model_name="Adversarial-MidiBERT (the authors' weights, converted)",
        datasets=["POP1K7", "POP909", "Pianist8", "EMOPIA", "GiantMIDI"],
        settings={"source": str(source), "hidden size": c.hidden_size, "layers": c.num_hidden_layers,
                  "attention heads": c.num_attention_heads, "positions": c.position_embedding_type,
                  "max notes per window": c.max_position_embeddings, "masking": "adversarial"},
        command=f"python -m adversarial_midibert.hub.convert_authors {source} {output_dir}",
        notes=("These are the pre-trained weights published by the paper's author (github.com/RS2002/"
               "Adversarial-MidiBERT), converted tensor by tensor into this package's classes; "
               "`conversion.json` lists the mapping. "
               + ("The masker head was never saved by the authors: it starts freshly initialised."
                  if plan.has_heads else "The file held the backbone only: the pre-training heads start "
                                         "freshly initialised.")))
    return report


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="their .pth / .bin / .safetensors file, a release folder, or a Hub repo id "
                                       "(e.g. RS2002/Adversarial-MidiBERT)")
    parser.add_argument("output_dir", help="folder to write the converted checkpoint to")
    parser.add_argument("--dictionary", help="their Octuple.pkl, to check the id layout (found automatically in "
                                             "a release folder)")
    parser.add_argument("--revision", help="Hub revision when SOURCE is a repo id")
    parser.add_argument("--num_attention_heads", type=int,
                        help="attention heads, only for absolute-position checkpoints (default 12)")


def _run(args: argparse.Namespace) -> int:
    try:
        report = convert_authors_checkpoint(args.source, args.output_dir, dictionary=args.dictionary,
                                            revision=args.revision, num_attention_heads=args.num_attention_heads)
    except ConversionError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(report)
    return 0


_DESCRIPTION = ("Convert the authors' published Adversarial-MidiBERT weights (.pth state dicts or their Hub "
                "release) into a folder the transformers Auto classes load with trust_remote_code=True.")


def add_convert(subparsers) -> None:
    """The `convert` subcommand of the `adversarial-midibert` command (see `adversarial_midibert.cli`)."""
    parser = subparsers.add_parser("convert", help="convert the authors' published weights into our classes",
                                   description=_DESCRIPTION)
    _add_arguments(parser)
    parser.set_defaults(func=_run)


def main(argv: Sequence[str] | None = None) -> int:
    """
    Command line: `python -m adversarial_midibert.hub.convert_authors SOURCE OUTPUT_DIR [--dictionary PKL]`.

    Returns the exit code: 0, or 2 when the checkpoint is refused (the reason is printed).

    Example:

    ```python
    >>> from adversarial_midibert.hub.convert_authors import main
    >>> main(["pretrain_model.pth", "runs/authors"])   # doctest: +SKIP
    converted pretrain_model.pth -> runs/authors (AdversarialMidiBertForPreTraining)
    ```
    """
    parser = argparse.ArgumentParser(prog="python -m adversarial_midibert.hub.convert_authors", description=_DESCRIPTION)
    _add_arguments(parser)
    return _run(parser.parse_args(argv))


def _strip_data_parallel(mapping: Mapping) -> dict:
    """`nn.DataParallel` (their default with two GPUs) saves every key under `module.`."""
    if mapping and all(key.startswith("module.") for key in mapping):
        return {key[len("module."):]: value for key, value in mapping.items()}
    return dict(mapping)


def _one_prefix(shapes: Mapping[str, tuple], suffix: str, what: str) -> str | None:
    prefixes = sorted({key[: -len(suffix)] for key in shapes if key == suffix or key.endswith("." + suffix)})
    if len(prefixes) > 1:
        raise ConversionError(f"found {what} under several prefixes {prefixes}; convert one model at a time")
    return prefixes[0] if prefixes else None


__all__ = ["ConversionError", "ConversionPlan", "ConversionReport", "add_convert", "authors_dictionary",
           "check_authors_dictionary", "convert_authors_checkpoint", "convert_state_dict",
           "load_authors_checkpoint", "main", "plan_conversion"]

if __name__ == "__main__":
    sys.exit(main())
