"""Command-line arguments of fine-tuning: `FinetuneArguments` and the `TrainingArguments` defaults, for
`HfArgumentParser`. Any `TrainingArguments` flag works and overrides `TRAINING_DEFAULTS`; the learning rate,
warm-up, epoch count and best-checkpoint selection are fitted to the model and the data
(`adversarial_midibert.finetuning.recipe.fit_recipe`) unless given.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field

from transformers import HfArgumentParser, TrainingArguments

from adversarial_midibert.finetuning.recipe import MAX_TRAIN_MINUTES, PATIENCE
from adversarial_midibert.precision import with_cpu_for_bf16

# Fine-tuning defaults (any flag overrides them). The learning rate, the warm-up, the number of epochs and the
# best-checkpoint selection are not fixed numbers: `fit_recipe` chooses them from the model and the data.
TRAINING_DEFAULTS = {
    "output_dir": "runs/finetune",
    "per_device_train_batch_size": 16,
    "per_device_eval_batch_size": 32,
    "weight_decay": 0.01,
    "eval_strategy": "epoch",
    "save_strategy": "epoch",
    "save_total_limit": 1,
    "logging_steps": 50,
    "report_to": "none",
    "seed": 42,
    # The collator needs `note_labels`, which the model's forward does not name; columns are chosen here.
    "remove_unused_columns": False,
}


@dataclass
class FinetuneArguments:
    """What to fine-tune, on which data, and how."""

    model: str = field(
        default="preset:tiny",
        metadata={"help": "A checkpoint folder or Hub id (pre-trained or fine-tuned), the shipped pre-trained model "
                  "adversarial-midibert-small, or preset:<name> (tiny, small, paper) "
                  "for a freshly initialised network (no pre-training)."},
    )
    task: str = field(
        default="sequence",
        metadata={"help": "sequence (one label per piece), melody (POP909 tracks), velocity (6 bins, velocity hidden), "
                  "instrument (GM families) or tracks (with --track_labels)."},
    )
    recipe: str | None = field(
        default=None,
        metadata={"help": "One of the paper's tasks on the shared corpora: composer (ASAP), composer_music21, "
                  "composer_pianist8, emotion, melody, velocity. Replaces --task and the data flags."},
    )
    data_root: str | None = field(default=None, metadata={"help": "The shared corpora for --recipe (default ../shared/data)."})
    data: str | None = field(
        default=None,
        metadata={"help": "A MIDI folder: <label>/*.mid per class for --task sequence, any layout for note tasks."},
    )
    manifest: str | None = field(default=None, metadata={"help": "A csv/json manifest (path relative to it)."})
    hf_dataset: str | None = field(
        default=None, metadata={"help": "A datasets folder (save_to_disk) or Hub dataset with a MIDI path/bytes column."}
    )
    eval_data: str | None = field(default=None, metadata={"help": "Your own dev split, in the same form as --data."})
    eval_manifest: str | None = field(default=None, metadata={"help": "Your own dev split, as a manifest."})
    train_split: str = field(default="train", metadata={"help": "Split of --hf_dataset to train on."})
    eval_split: str | None = field(default=None, metadata={"help": "Split of --hf_dataset to evaluate on (if any)."})
    midi_column: str = field(default="midi", metadata={"help": "Column of --hf_dataset holding paths or bytes."})
    path_column: str = field(default="path", metadata={"help": "Column of --manifest holding the file paths."})
    label_column: str = field(default="label", metadata={"help": "Column with the piece label (sequence task)."})
    group_column: str | None = field(
        default="group", metadata={"help": "Column naming the song/piece a file belongs to (used when present); "
                                   "groups never straddle splits."}
    )
    group_regex: str | None = field(
        default=None, metadata={"help": "For --data class folders: files whose names share this regex's match (its "
                                "first capture group if any) form one group, e.g. '^(.+)_\\d+$' for song_3.mid. "
                                "Files in a sub-folder of a class folder are one group without it."}
    )
    task_name: str | None = field(
        default=None, metadata={"help": "Name recorded in the config and model card (default: the recipe, the task, "
                                "or for a sequence task the data folder / manifest name)."}
    )
    track_labels: str | None = field(
        default=None, metadata={"help": "For --task tracks: NAME=label,NAME=label (track names, case-insensitive)."}
    )
    eval_fraction: float = field(default=0.1, metadata={"help": "Share of songs/groups held out when no split is given."})
    split_seed: int = field(default=42, metadata={"help": "Seed of the song/group split (and of subsets)."})
    max_train_songs: int | None = field(default=None, metadata={"help": "Use a seeded subset of this many training groups."})
    max_eval_songs: int | None = field(default=None, metadata={"help": "Use a seeded subset of this many dev groups."})
    max_length: int | None = field(
        default=None, metadata={"help": "Tokens per window, BOS/EOS included (default: the checkpoint's tokenizer or the preset's)."}
    )
    stride: int = field(default=0, metadata={"help": "Notes shared by consecutive TRAINING windows (dev windows never overlap)."})
    finetune_mask_percent: float | None = field(
        default=None, metadata={"help": "Mask fine-tuning: %% of notes set to MASK in training forwards; 0 = off "
                                "(default: the config's, 15)."}
    )
    dropout: float | None = field(
        default=None, metadata={"help": "Dropout on embeddings, residual branches, attention and the classifier head "
                                "while fine-tuning (default: the checkpoint's or preset's)."}
    )
    transpose: bool | None = field(
        default=None, metadata={"help": "Random transposition of training windows (default: the task's choice)."}
    )
    transpose_semitones: int = field(default=6, metadata={"help": "k of the transposition: shifts in [-k, k]."})
    ignore_time_signatures: bool | None = field(
        default=None, metadata={"help": "Tokenize every file as 4/4, so bar and position ids do not depend on its "
                                "meter (default: the task's choice, on for the track-role tasks melody, instrument "
                                "and tracks; --ignore_time_signatures false turns it off)."}
    )
    class_weighting: str = field(
        default="balanced", metadata={"help": "balanced: class-weighted training loss (n / (classes * n_class), at "
                                      "most 10); none: the plain mean cross-entropy."}
    )
    early_stopping_patience: int = field(
        default=PATIENCE, metadata={"help": "Stop after this many evaluations without a better dev macro-F1 (0: off)."}
    )
    max_train_minutes: float = field(
        default=MAX_TRAIN_MINUTES,
        metadata={"help": "Stop training after this many minutes even if the dev score still improves (0: no "
                  "limit); the best evaluated epoch is kept."},
    )
    baselines: bool = field(default=True, metadata={"help": "Fit the majority and note-statistics baselines."})
    num_proc: int = field(default=1, metadata={"help": "Processes that tokenize the MIDI files."})
    cache_dir: str | None = field(default=None, metadata={"help": "Cache tokenized windows here (default: no cache)."})


def parse_args(argv: list[str] | None = None) -> tuple[FinetuneArguments, TrainingArguments]:
    """Parse the fine-tuning flags and any `TrainingArguments` flag over `TRAINING_DEFAULTS`.

    Example:

    ```python
    >>> ft_args, training_args = parse_args(["--recipe", "emotion", "--num_train_epochs", "2"])
    >>> ft_args.recipe, training_args.num_train_epochs, training_args.remove_unused_columns
    ('emotion', 2.0, False)
    ```
    """
    parser = HfArgumentParser((FinetuneArguments, TrainingArguments))
    parser.set_defaults(**TRAINING_DEFAULTS)
    return parser.parse_args_into_dataclasses(args=with_cpu_for_bf16(list(sys.argv[1:] if argv is None else argv)))

