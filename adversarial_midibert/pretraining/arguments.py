"""Command-line arguments of pre-training: dataclasses for `HfArgumentParser`, layered over YAML presets.

A preset (`adversarial_midibert/configs/<name>.yaml`, or a path to a YAML file; read by
`adversarial_midibert.presets`) has three sections: `model:` (overrides of `AdversarialMidiBertConfig`, plus
`config_preset`, the config preset they start from), `training:` (defaults of `TrainingArguments`) and `data:`
(defaults of `DataArguments`). Flags typed on the command line always win.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

from transformers import HfArgumentParser, TrainingArguments

from adversarial_midibert.precision import with_cpu_for_bf16
from adversarial_midibert.presets import DEFAULT_PRESET, SAMPLE_MIDI, load_preset


@dataclass
class ModelArguments:
    """Which network to pre-train and how it masks."""

    preset: str = field(
        default=DEFAULT_PRESET,
        metadata={"help": "YAML preset: a name in adversarial_midibert/configs (tiny, paper) or a path to a "
                  ".yaml file."},
    )
    model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "Start from this checkpoint (folder or Hub id) instead of a freshly initialised model."},
    )
    masking: str | None = field(
        default=None,
        metadata={"help": "'adversarial' (the paper), 'random' (plain MLM, the ablation) or 'random_freeze' (random "
                  "choice with the freeze book fed random scores, a control). Default: the preset's."},
    )
    masker_updates_backbone: bool | None = field(
        default=None,
        metadata={"help": "Whether the masker loss also trains the shared backbone (the authors' code, 1.7-1.8x "
                  "a random step) or only the masker head, reading the embeddings (1.0x, but worse fine-tuning at "
                  "our larger tiny-preset budget: docs/masker-study.md). Default: the preset's (the authors' mode)."},
    )
    freeze_every_epochs: int | None = field(
        default=None, metadata={"help": "k: update the freeze book every k epochs; 0 never freezes (the "
                                "no-freezing ablation). Default: the preset's."}
    )
    freeze_rank_momentum: float | None = field(
        default=None, metadata={"help": "Weight of the past freeze updates' ranks when ranking a song's notes for "
                                "freezing, in [0, 1); 0 = the paper's rule (rank by this update's scores only). "
                                "Default: the preset's (0.7; docs/pretraining.md)."}
    )
    masker_feature_layer: int | None = field(
        default=None,
        metadata={"help": "Which hidden states the masker reads: 0 = the embeddings, the number of layers = the "
                  "last layer. Default: the last layer with --masker_updates_backbone, else the embeddings "
                  "(docs/pretraining.md)."},
    )
    masker_lr_scale: float | None = field(
        default=None,
        metadata={"help": "The masker head's learning rate as a multiple of the others'. Default: 1 with "
                  "--masker_updates_backbone, else 20 (docs/pretraining.md)."},
    )
    masker_random_share: float | None = field(
        default=None,
        metadata={"help": "Share of each sequence's chosen notes drawn at random instead of by the masker, so the "
                  "masker learns from notes it did not pick (0 = the paper's pure top-p %%; docs/pretraining.md). "
                  "Default: the preset's."},
    )
    config_overrides: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "Set by the preset's `model:` section; not a command-line flag."}
    )


@dataclass
class DataArguments:
    """Where the MIDI comes from and how it is cut into windows."""

    data: list[str] = field(
        default_factory=lambda: [str(SAMPLE_MIDI)],
        metadata={"help": "MIDI folders (searched recursively) or files. Default: the sample shipped in the repo."},
    )
    manifest: str | None = field(
        default=None, metadata={"help": "A csv/json manifest with a `path` column (relative to the manifest)."}
    )
    hf_dataset: str | None = field(
        default=None,
        metadata={"help": "A `datasets` folder saved with `save_to_disk` whose `midi_column` holds paths or bytes."},
    )
    midi_column: str = field(default="midi", metadata={"help": "Column of --hf_dataset with the MIDI."})
    max_length: int = field(default=1024, metadata={"help": "Tokens per window, BOS and EOS included."})
    stride: int = field(default=0, metadata={"help": "Notes shared by two consecutive windows of a song."})
    max_bars: int = field(default=256, metadata={"help": "A window spans at most this many bars."})
    validation_fraction: float = field(
        default=0.1, metadata={"help": "Fraction of SONGS (never windows) held out for evaluation; 0 for none."}
    )
    split_seed: int = field(
        default=42, metadata={"help": "Seed of the song split into training and validation, and of the held-out "
                              "notes the recovery probe masks, apart from --seed: a replicate with another --seed, "
                              "or a run continued from a checkpoint, is scored on the same held-out notes."}
    )
    transpose_semitones: int = field(
        default=6, metadata={"help": "k of the transposition augmentation of training batches (0: off)."}
    )
    num_proc: int = field(default=1, metadata={"help": "Processes that tokenize the MIDI files."})
    cache_dir: str | None = field(
        default=None,
        metadata={"help": "Where tokenized windows are cached (default: ~/.cache/adversarial_midibert/windows)."},
    )
    max_songs: int | None = field(default=None, metadata={"help": "Use only the first N songs (smoke tests)."})
    streaming_dir: str | None = field(
        default=None,
        metadata={"help": "Train from shards written by `python -m adversarial_midibert.pretraining.streaming` "
                  "(for corpora larger than memory) instead of --data."},
    )
    dump_process_state: bool = field(
        default=False,
        metadata={"help": "Each process writes its freeze-book digest and attribute weights to "
                  "<output_dir>/process_state-<rank>.json at the end (for multi-process checks)."},
    )

    def __post_init__(self):
        # Refused here, with the flag's name, rather than accepted silently (--num_proc 0) or failing after the
        # whole corpus is tokenized.
        for name, minimum in (("num_proc", 1), ("transpose_semitones", 0), ("stride", 0), ("max_songs", 1)):
            value = getattr(self, name)
            if value is not None and value < minimum:
                raise ValueError(f"--{name} must be at least {minimum}, got {value}")


def _preset_from_argv(argv: list[str]) -> str:
    for i, arg in enumerate(argv):
        if arg == "--preset" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--preset="):
            return arg.split("=", 1)[1]
    return DEFAULT_PRESET


def parse_pretraining_args(
    argv: list[str] | None = None,
) -> tuple[ModelArguments, DataArguments, TrainingArguments]:
    """Parse pre-training flags over the chosen preset's defaults.

    Args:
        argv (`list[str]`, *optional*): the flags; defaults to `sys.argv[1:]`.

    Returns:
        `(ModelArguments, DataArguments, TrainingArguments)`; `model_args.config_overrides` holds the preset's
        `model:` section.

    Example:

    >>> from adversarial_midibert.pretraining.arguments import parse_pretraining_args
    >>> model_args, data_args, training_args = parse_pretraining_args(["--preset", "tiny", "--max_steps", "3"])
    >>> training_args.max_steps, model_args.config_overrides["config_preset"]
    (3, 'tiny')
    """
    argv = with_cpu_for_bf16(list(sys.argv[1:] if argv is None else argv))
    preset = load_preset(_preset_from_argv(argv))
    parser = HfArgumentParser((ModelArguments, DataArguments, TrainingArguments))
    known = {action.dest for action in parser._actions}
    for section in ("training", "data"):
        unknown = set(preset[section]) - known
        if unknown:
            raise ValueError(f"preset section {section!r} sets unknown arguments {sorted(unknown)}")
    defaults = {"output_dir": "runs/pretrain", **preset["training"], **preset["data"]}
    parser.set_defaults(**defaults)
    model_args, data_args, training_args = parser.parse_args_into_dataclasses(args=argv)
    model_args.config_overrides = dict(preset["model"])
    for name in ("per_device_train_batch_size", "per_device_eval_batch_size"):
        if getattr(training_args, name) < 1:  # else found only after tokenizing, by the DataLoader
            raise ValueError(f"--{name} must be at least 1, got {getattr(training_args, name)}")
    return model_args, data_args, training_args
