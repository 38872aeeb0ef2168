"""The files the package ships and reads at run time: the YAML presets in `configs/`, the MIDI sample in
`sample_midi/` and the pre-trained checkpoint in `pretrained/` (package data, so an installed package finds them as
a checkout does).

A preset (`configs/<name>.yaml`, or a path to a YAML file) has three sections: `model:` (overrides of
`AdversarialMidiBertConfig`, plus `config_preset`, the config preset they start from), `training:` (defaults of
`TrainingArguments`) and `data:` (defaults of the pre-training `DataArguments`). Pre-training reads all three;
fine-tuning and inference read `model:` and `data:` for `preset:<name>` (a freshly initialised network).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
# 18 real MIT / CC BY files (see its ATTRIBUTION.md): the main job's default data and the tests' real music.
SAMPLE_MIDI = Path(__file__).resolve().parent / "sample_midi"
DEFAULT_PRESET = "tiny"
# Complete model folders (weights, config, code, tokenizer, card) that ship inside the package, by short name:
# the adversarial checkpoint, and its control pre-trained the same way with random masking (the paper's ablation).
PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"
SHIPPED_MODELS = {"adversarial-midibert-small": "small", "adversarial-midibert-small-random": "small-random"}
_SECTIONS = ("model", "training", "data")


def resolve_preset_path(preset: str) -> Path:
    """The YAML file of a preset name (`tiny`, `paper`) or path."""
    path = Path(preset)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise FileNotFoundError(f"preset file {path} not found")
        return path
    path = CONFIG_DIR / f"{preset}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
        raise ValueError(f"unknown preset {preset!r}; known presets: {known}, or pass a path to a .yaml file")
    return path


def load_preset(name: str) -> dict[str, dict[str, Any]]:
    """Read a preset: a dict with the sections `model`, `training` and `data` (each a dict, maybe empty).

    Example:

    >>> from adversarial_midibert.presets import load_preset
    >>> preset = load_preset("tiny")
    >>> sorted(preset)
    ['data', 'model', 'training']
    >>> preset["model"]["config_preset"]
    'tiny'
    """
    with open(resolve_preset_path(name)) as f:
        raw = yaml.safe_load(f) or {}
    unknown = set(raw) - set(_SECTIONS)
    if unknown:
        raise ValueError(f"preset {name!r} has unknown sections {sorted(unknown)}; expected {list(_SECTIONS)}")
    return {section: dict(raw.get(section) or {}) for section in _SECTIONS}


def resolve_model_name(name_or_path: str | Path) -> str:
    """The folder of a shipped checkpoint's short name (`adversarial-midibert-small`); anything else unchanged
    (a folder, a Hub id or `preset:<name>`), so every command that loads a model takes the short name too.

    Example:

    >>> from adversarial_midibert.presets import resolve_model_name
    >>> resolve_model_name("adversarial-midibert-small").endswith("pretrained/small")
    True
    >>> resolve_model_name("runs/pretrain")
    'runs/pretrain'
    """
    name = str(name_or_path)
    if name in SHIPPED_MODELS:
        return str(PRETRAINED_DIR / SHIPPED_MODELS[name])
    return name
