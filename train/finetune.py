"""Fine-tune Adversarial-MidiBERT on a sequence task (one label per piece) or a note task (one label per note).

    # a folder per class: my_set/<label>/*.mid
    accelerate launch train/finetune.py --model runs/pretrain --data my_set --output_dir runs/my_task
    # a csv/json manifest with path,label[,group] columns
    accelerate launch train/finetune.py --model runs/pretrain --manifest pieces.csv --output_dir runs/x
    # note labels from POP909's track names (melody / bridge / accompaniment) or velocity bins
    accelerate launch train/finetune.py --model runs/pretrain --task melody --data pop909/ --output_dir runs/mel
    # the paper's four tasks on the shared corpora
    accelerate launch train/finetune.py --model runs/pretrain --recipe emotion --output_dir runs/emotion
    # no pre-training (the paper's ablation): a fresh network from a preset
    accelerate launch train/finetune.py --model preset:tiny --recipe melody --output_dir runs/mel_scratch

The learning rate, warm-up and epoch count are chosen from the model (width, pre-trained or not) and the data
(`fit_recipe`), with evaluation every epoch, early stopping on dev macro-F1, the best epoch kept and a
class-weighted loss; any `TrainingArguments` flag overrides them (`--num_train_epochs`, `--learning_rate`, `--bf16`,
`--push_to_hub`...).
Without a given split, songs are split by song / group with `--split_seed`, never by window. Mask fine-tuning
(`--finetune_mask_percent`, 0 turns it off) and transposition (`--transpose`) act on training batches only;
evaluation is deterministic and reports accuracy and macro-F1 (window and song level for sequence tasks, note
level for note tasks). The run leaves in `output_dir`: the model (loadable with `AutoModelFor...Classification`
and `trust_remote_code=True`, labels in `config.json`), the tokenizer, `finetune_results.json` (metrics, the
majority and note-statistics `baselines` on the same dev windows, warnings, the chosen recipe, the split file by
file, skipped files with reasons), `confusion_matrix.png` and a model card (`README.md`) with both baselines.
"""
from __future__ import annotations

import difflib
import json
import math
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from transformers import EarlyStoppingCallback, HfArgumentParser, TrainingArguments

from adversarial_midibert.arguments import load_preset
from adversarial_midibert.baselines import fit_baselines
from adversarial_midibert.collator import OctupleDataCollator
from adversarial_midibert.compatibility import check_tokenizer_fits_model, load_tokenizer_or_default
from adversarial_midibert.data import build_window_dataset, find_midi_files, sources_from_dataset, sources_from_manifest
from adversarial_midibert.finetune_trainer import FinetuneTrainer, class_weights_from_counts
from adversarial_midibert.metrics import ClassificationMetrics, argmax_logits, confusion_matrix, save_confusion_matrix
from adversarial_midibert.tasks import (
    SEQUENCE,
    TaskData,
    check_labels,
    load_recipe,
    make_task,
    sources_from_class_folders,
    subsample_groups,
)
from configuration_adversarial_midibert import AdversarialMidiBertConfig
from modeling_adversarial_midibert import (
    AdversarialMidiBertForSequenceClassification,
    AdversarialMidiBertForTokenClassification,
)
from pipeline_adversarial_midibert import register_pipelines
from tokenization_octuple import OctupleTokenizer

PRESET_PREFIX = "preset:"
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
# The recipe rule (`fit_recipe`), documented in the README:
# - learning rate: 1e-3 for a freshly initialised network, 5e-4 for a pre-trained one (features worth keeping,
#   so smaller steps), times 128 / hidden_size (a wider network takes proportionally smaller steps: the tiny
#   preset gets the base rate, the 768-wide paper preset 1/6 of it, 8.3e-5 pre-trained, near BERT's usual range);
# - warm-up: the first 10 % of the steps (linear), then linear decay;
# - epochs: enough for about TARGET_STEPS optimizer steps, at least MIN_EPOCHS and at most MAX_EPOCHS, with early
#   stopping after PATIENCE epochs without a better dev macro-F1 and the best epoch's weights kept.
BASE_LEARNING_RATE = {"scratch": 1e-3, "pretrained": 5e-4}
WARMUP_SHARE = 0.1
TARGET_STEPS = 250
MIN_EPOCHS, MAX_EPOCHS, PATIENCE = 3, 40, 4
# A model whose dev macro-F1 is less than this above the majority class's has not clearly learned anything.
CLEAR_MARGIN = 0.1


@dataclass
class FinetuneArguments:
    """What to fine-tune, on which data, and how."""

    model: str = field(
        default="preset:tiny",
        metadata={"help": "A checkpoint folder or Hub id (pre-trained or fine-tuned), or preset:<name> (tiny, paper) "
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
    return parser.parse_args_into_dataclasses(args=sys.argv[1:] if argv is None else argv)


def _sources(args: FinetuneArguments, data: str | None, manifest: str | None, level_is_sequence: bool):
    label_column = args.label_column if level_is_sequence else None
    if manifest:
        if not Path(manifest).is_file():
            raise FileNotFoundError(f"{manifest}: no such manifest file")
        return sources_from_manifest(manifest, args.path_column, label_column, args.group_column)
    if data:
        if not Path(data).is_dir():
            raise FileNotFoundError(f"{data}: no such folder")
        if level_is_sequence:
            return sources_from_class_folders(data, group_regex=args.group_regex)
        sources = find_midi_files(data)
        if not sources:
            raise ValueError(f"{data}: no MIDI files (.mid, .midi) in this folder or below")
        return sources
    return None


def _dataset_sources(args: FinetuneArguments, level_is_sequence: bool):
    import datasets

    path = Path(args.hf_dataset)
    loaded = datasets.load_from_disk(str(path)) if path.exists() else datasets.load_dataset(args.hf_dataset)
    label_column = args.label_column if level_is_sequence else None

    def convert(ds):
        group_column = args.group_column if args.group_column in ds.column_names else None
        return sources_from_dataset(ds, args.midi_column, label_column, group_column)

    if isinstance(loaded, datasets.DatasetDict):
        train = convert(loaded[args.train_split])
        return train, (convert(loaded[args.eval_split]) if args.eval_split else None)
    return convert(loaded), None


def resolve_task(args: FinetuneArguments) -> TaskData:
    """The task and its song-disjoint split, from a recipe, a folder, a manifest or a datasets.Dataset."""
    if args.recipe:
        ignored = [flag for flag, value in (("--data", args.data), ("--manifest", args.manifest),
                                             ("--hf_dataset", args.hf_dataset), ("--eval_data", args.eval_data),
                                             ("--eval_manifest", args.eval_manifest)) if value]
        if ignored:
            raise ValueError(f"--recipe {args.recipe} brings its own data and split; {', '.join(ignored)} would be "
                             "ignored: drop it, or use --data/--manifest with --task instead of --recipe")
        task = load_recipe(args.recipe, args.data_root, seed=args.split_seed)
        if task.level == SEQUENCE:
            check_labels(task.train, task.eval)
        return task
    is_sequence = args.task == SEQUENCE
    if args.hf_dataset:
        train, dev = _dataset_sources(args, is_sequence)
    else:
        train = _sources(args, args.data, args.manifest, is_sequence)
        if train is None:
            raise ValueError("give the data: --data FOLDER, --manifest FILE, --hf_dataset NAME or --recipe NAME")
        dev = _sources(args, args.eval_data, args.eval_manifest, is_sequence)
    task = make_task(args.task, train, eval_sources=dev, eval_fraction=args.eval_fraction, seed=args.split_seed,
                     track_mapping=args.track_labels, transpose=args.transpose)
    if dev is not None and is_sequence:
        check_labels(train, dev)
    named_after = args.data or args.manifest or args.hf_dataset
    if args.task_name:
        task.name = args.task_name
    elif is_sequence and named_after:
        task.name = Path(named_after.rstrip("/")).stem
    return task


def check_model_name(name: str) -> None:
    """Fail at once, with "no such folder", on a `--model` that looks like a local path but is not a folder (a
    typo would otherwise be tried as a Hub id and end, minutes later offline, in a connection error)."""
    if name.startswith(PRESET_PREFIX):
        load_preset(name[len(PRESET_PREFIX):])  # unknown preset: a ValueError naming the known ones
        return
    path = Path(name).expanduser()
    if path.is_dir():
        return
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    first = name.split("/")[0]
    local_looking = (path.exists() or name.startswith((".", "/", "~")) or name.count("/") > 1 or os.sep != "/" and os.sep in name
                     or (name.count("/") == 1 and Path(first).is_dir()))
    if not (local_looking or offline):
        return
    parent = path.parent if path.parent.is_dir() else None
    close = difflib.get_close_matches(path.name, [p.name for p in parent.iterdir() if p.is_dir()], n=2) if parent else []
    hint = f" (did you mean {', '.join(str(parent / c) for c in close)}?)" if close else ""
    what = "is a file, not a checkpoint folder" if path.exists() else "no such folder"
    reason = " and HF_HUB_OFFLINE is set, so it is not looked up on the Hub" if offline and not local_looking else ""
    raise FileNotFoundError(f"--model {name}: {what}{reason}{hint}")


def load_model_and_tokenizer(args: FinetuneArguments, task: TaskData):
    """The classification model for `task` (labels, hidden attributes, mask fine-tuning in its config) and the
    tokenizer that cuts its windows."""
    model_class = (AdversarialMidiBertForSequenceClassification if task.level == SEQUENCE
                   else AdversarialMidiBertForTokenClassification)
    updates = {"num_labels": len(task.labels), **task.config_updates()}  # num_labels first: it resets id2label
    if task.level == SEQUENCE:
        updates["problem_type"] = "single_label_classification"
    if args.finetune_mask_percent is not None:
        updates["finetune_mask_percent"] = args.finetune_mask_percent
    if args.model.startswith(PRESET_PREFIX):
        preset = load_preset(args.model[len(PRESET_PREFIX):])
        overrides = dict(preset["model"])
        config_preset = overrides.pop("config_preset", args.model[len(PRESET_PREFIX):])
        # Pre-training-only fields of the YAML (masking schedule) do not matter to a classifier but are valid config.
        config = AdversarialMidiBertConfig.from_preset(config_preset, **{**overrides, **updates})
        model = model_class(config)
        tokenizer = OctupleTokenizer(max_length=args.max_length or preset["data"].get("max_length", 1024))
    else:
        # Task fields are set on the config object: passed as keyword arguments, the ones a fresh config lacks
        # (note_labeler, finetuning_task) would reach the model's __init__.
        config = AdversarialMidiBertConfig.from_pretrained(args.model)
        for key, value in updates.items():
            setattr(config, key, value)
        # ignore_mismatched_sizes: a fine-tuned checkpoint may be fine-tuned again with another label set.
        model = model_class.from_pretrained(args.model, config=config, ignore_mismatched_sizes=True)
        # A checkpoint without tokenizer files gets a default one, with a warning naming its settings.
        tokenizer = load_tokenizer_or_default(args.model, config)
        if args.max_length:
            tokenizer = OctupleTokenizer(max_length=args.max_length, max_bars=tokenizer.max_bars)
    ignore = task.ignore_time_signatures if args.ignore_time_signatures is None else args.ignore_time_signatures
    if ignore != tokenizer.ignore_time_signatures:  # the task's reading of meter; the saved tokenizer records it
        tokenizer = OctupleTokenizer(max_length=tokenizer.max_length, stride=tokenizer.stride,
                                     max_bars=tokenizer.max_bars, max_notes=tokenizer.max_notes,
                                     max_bytes=tokenizer.max_bytes, ignore_time_signatures=ignore)
    # Vocabularies that differ from the tokenizer's would end in an IndexError mid-training: one clear line now.
    check_tokenizer_fits_model(tokenizer, model.config, model_name=args.model)
    return model, tokenizer


def build_split(sources, tokenizer, task: TaskData, args: FinetuneArguments, stride: int):
    """Windows of one split with the columns the collator needs, plus the build report and the song ids."""
    windows_tokenizer = OctupleTokenizer(max_length=tokenizer.max_length, stride=stride, max_bars=tokenizer.max_bars,
                                         ignore_time_signatures=tokenizer.ignore_time_signatures)
    windows, report = build_window_dataset(sources, windows_tokenizer, note_labeler=task.note_labeler,
                                           num_proc=args.num_proc, cache_dir=args.cache_dir)
    song_ids = windows["song_id"] if len(windows) else []
    if task.level == SEQUENCE:
        label2id = task.label2id
        windows = windows.add_column("labels", [label2id[label] for label in windows["label"]])
        windows = windows.select_columns(["input_ids", "labels"])
    else:
        windows = windows.select_columns(["input_ids", "note_labels"])
    return windows, report, song_ids


def _report_dict(report) -> dict:
    return {"files": report.num_files, "songs": report.num_songs, "windows": report.num_windows,
            "notes": report.num_notes, "skipped": [{"song_id": s, "reason": r} for s, r in report.skipped]}


def _loss_curve(log_history: list[dict]) -> list[float]:
    return [round(entry["loss"], 5) for entry in log_history if "loss" in entry]


def _given(argv: list[str], *names: str) -> bool:
    """Whether one of these `TrainingArguments` flags was typed (then the recipe rule leaves it alone)."""
    return any(arg == f"--{name}" or arg.startswith(f"--{name}=") for arg in argv for name in names)


def fit_recipe(training_args, argv: list[str], model, pretrained: bool, num_train_windows: int, has_eval: bool,
               early_stopping_patience: int) -> dict:
    """Set the learning rate, warm-up, epoch count and best-checkpoint selection from the model and the data
    (the rule beside `BASE_LEARNING_RATE`), unless the flag was given; returns what was chosen, for the report.

    Example:

    ```python
    >>> recipe = fit_recipe(training_args, [], model, pretrained=False, num_train_windows=4000, has_eval=True,
    ...                     early_stopping_patience=5)                               # doctest: +SKIP
    >>> recipe["learning_rate"], recipe["num_train_epochs"]                          # doctest: +SKIP
    (0.001, 5)
    ```
    """
    from transformers.trainer_utils import IntervalStrategy

    per_step = (training_args.per_device_train_batch_size * training_args.gradient_accumulation_steps
                * max(training_args.world_size, 1))
    steps_per_epoch = max(math.ceil(num_train_windows / per_step), 1)
    if not _given(argv, "learning_rate"):
        base = BASE_LEARNING_RATE["pretrained" if pretrained else "scratch"]
        training_args.learning_rate = float(f"{base * 128 / model.config.hidden_size:.3g}")
    if not _given(argv, "warmup_steps", "warmup_ratio"):
        training_args.warmup_steps = WARMUP_SHARE
    if not _given(argv, "num_train_epochs") and training_args.max_steps <= 0:
        training_args.num_train_epochs = min(max(math.ceil(TARGET_STEPS / steps_per_epoch), MIN_EPOCHS), MAX_EPOCHS)
    if not has_eval:
        training_args.eval_strategy = IntervalStrategy.NO
    selecting = (has_eval and training_args.eval_strategy != IntervalStrategy.NO
                 and training_args.save_strategy == training_args.eval_strategy)
    if selecting and not _given(argv, "load_best_model_at_end"):
        training_args.load_best_model_at_end = True
    if training_args.load_best_model_at_end and not _given(argv, "metric_for_best_model"):
        training_args.metric_for_best_model = "macro_f1"
        training_args.greater_is_better = True
    if not _given(argv, "dataloader_pin_memory") and not torch.cuda.is_available():
        training_args.dataloader_pin_memory = False  # pinning needs an accelerator; on CPU it only warns
    return {
        "learning_rate": training_args.learning_rate,
        "warmup": training_args.warmup_steps,
        "num_train_epochs": training_args.num_train_epochs,
        "max_steps": training_args.max_steps,
        "steps_per_epoch": steps_per_epoch,
        "pretrained": pretrained,
        "best_model_metric": training_args.metric_for_best_model if training_args.load_best_model_at_end else None,
        "early_stopping_patience": early_stopping_patience if training_args.load_best_model_at_end else 0,
    }


def label_counts(windows, level: str, num_labels: int) -> np.ndarray:
    """Training items per class: windows (piece labels) or labelled notes (note labels)."""
    if level == SEQUENCE:
        return np.bincount(np.asarray(windows["labels"], dtype=np.int64), minlength=num_labels)
    notes = np.concatenate([np.asarray(row, dtype=np.int64) for row in windows["note_labels"]] or [np.zeros(0, int)])
    return np.bincount(notes[notes >= 0], minlength=num_labels)


HEADLINE = {SEQUENCE: "song_macro_f1", "token": "macro_f1"}


def result_rows(metrics: dict, baselines: dict | None, level: str) -> list[tuple[str, dict]]:
    rows = [("model", metrics)]
    if baselines:
        rows += [("majority class", baselines["majority"]),
                 ("note statistics (logistic regression)", baselines["note_statistics"])]
    return rows


def results_table(metrics: dict, baselines: dict | None, level: str, markdown: bool = False) -> str:
    """The model beside both baselines: macro-F1 / accuracy per song (piece labels; the headline) and per window
    or note."""
    columns = ([("song", "song_macro_f1", "song_accuracy")] if level == SEQUENCE else []) + \
              [("window" if level == SEQUENCE else "note", "macro_f1", "accuracy")]

    def cell(values, f1, acc):
        return f"{values[f1]:.3f} / {values[acc]:.3f}" if f1 in values and acc in values else "-"

    rows = result_rows(metrics, baselines, level)
    if markdown:
        head = "| dev, macro-F1 / accuracy | " + " | ".join(name for name, _, _ in columns) + " |"
        lines = [head, "|---" * (len(columns) + 1) + "|"]
        lines += [f"| {name} | " + " | ".join(cell(v, f1, acc) for _, f1, acc in columns) + " |" for name, v in rows]
        return "\n".join(lines)
    width = max(len(name) for name, _ in rows) + 2
    lines = ["dev, macro-F1 / accuracy".ljust(width) + "".join(f"{name:<17}" for name, _, _ in columns)]
    lines += [name.ljust(width) + "".join(f"{cell(v, f1, acc):<17}" for _, f1, acc in columns) for name, v in rows]
    return "\n".join(lines)


def baseline_warning(metrics: dict, baselines: dict | None, level: str, pretrained: bool = False) -> str | None:
    """One plain sentence when the model is not clearly above the majority class or falls below note statistics."""
    key = HEADLINE[level] if HEADLINE[level] in metrics else "macro_f1"
    if not baselines or key not in metrics:
        return None
    model, majority, stats = metrics[key], baselines["majority"][key], baselines["note_statistics"][key]
    start = ("start from a checkpoint pre-trained on more music (--model)" if pretrained else
             "start from a pre-trained checkpoint (--model)")
    remedies = f"train longer (--num_train_epochs), raise the learning rate (--learning_rate), or {start}"
    name = key.replace("_", " ").replace("macro f1", "macro-F1")
    if model < majority + CLEAR_MARGIN:
        return (f"The model's dev {name} ({model:.3f}) is not clearly above always answering the majority class "
                f"({majority:.3f}): it has learned little; {remedies}.")
    if model < stats:
        return (f"The model's dev {name} ({model:.3f}) is below a logistic regression on note statistics "
                f"({stats:.3f}): {remedies}.")
    return None


def dev_set_warning(task: TaskData, eval_report) -> str | None:
    """Warn when the dev set is too small for its scores to mean much."""
    songs = eval_report.num_songs
    if songs == 0:
        return None
    per_class = {}
    if task.level == SEQUENCE:
        for source in task.eval:
            per_class[str(source.label)] = per_class.get(str(source.label), 0) + 1
    thin = sorted(label for label in task.labels if per_class.get(label, 0) < 2) if task.level == SEQUENCE else []
    if songs >= 10 and not thin:
        return None
    detail = f"; classes with fewer than 2 dev songs: {', '.join(thin[:6])}" if thin else ""
    return (f"The dev set holds only {songs} song(s){detail}: its scores are noisy (one song can swing them by "
            f"{1 / songs:.0%}); hold out more (--eval_fraction) or give your own dev data (--eval_data).")


def _split_record(task: TaskData) -> dict:
    def side(sources):
        return [{"song_id": s.song_id, **({"group": s.group} if s.group not in (None, "") else {}),
                 **({"label": s.label} if s.label is not None else {})} for s in sources]
    return {"train": side(task.train), "eval": side(task.eval)}


def main(argv: list[str] | None = None) -> dict:
    """Run a fine-tuning job; returns what `finetune_results.json` holds.

    Example:

    ```python
    >>> from adversarial_midibert.finetune import main
    >>> results = main(["--model", "preset:tiny", "--data", "my_set", "--output_dir", "runs/my_task"])  # doctest: +SKIP
    >>> results["metrics"]["song_macro_f1"], results["baselines"]["note_statistics"]["song_macro_f1"]  # doctest: +SKIP
    ```
    """
    started = time.time()
    argv = sys.argv[1:] if argv is None else list(argv)
    args, training_args = parse_args(argv)
    if args.class_weighting not in ("balanced", "none"):
        raise ValueError(f"--class_weighting must be 'balanced' or 'none', got {args.class_weighting!r}")
    check_model_name(args.model)
    task = resolve_task(args)
    task.train = subsample_groups(task.train, args.max_train_songs, args.split_seed)
    task.eval = subsample_groups(task.eval, args.max_eval_songs, args.split_seed)
    model, tokenizer = load_model_and_tokenizer(args, task)

    train_ds, train_report, _ = build_split(task.train, tokenizer, task, args, stride=args.stride)
    eval_ds, eval_report, eval_song_ids = build_split(task.eval, tokenizer, task, args, stride=0)
    if len(train_ds) == 0:
        raise ValueError(f"no training windows: every training file was skipped\n{train_report}")
    has_eval = len(eval_ds) > 0
    pretrained = not args.model.startswith(PRESET_PREFIX)
    recipe = fit_recipe(training_args, argv, model, pretrained, len(train_ds), has_eval, args.early_stopping_patience)
    counts = label_counts(train_ds, task.level, len(task.labels))
    class_weights = class_weights_from_counts(counts) if args.class_weighting == "balanced" else None
    recipe["class_weighting"] = args.class_weighting
    if class_weights is not None:
        recipe["class_weights"] = [round(float(w), 4) for w in class_weights]
    warnings = [w for w in [dev_set_warning(task, eval_report)] if w]

    metrics_fn = ClassificationMetrics(task.level, song_ids=eval_song_ids) if has_eval else None
    transpose = args.transpose if args.transpose is not None else task.transpose
    callbacks = []
    if recipe["early_stopping_patience"] > 0:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=recipe["early_stopping_patience"]))
    trainer = FinetuneTrainer(
        model=model,
        args=training_args,
        train_dataset=train_ds,
        eval_dataset=eval_ds if has_eval else None,
        data_collator=OctupleDataCollator(tokenizer),
        processing_class=tokenizer,
        compute_metrics=metrics_fn,
        preprocess_logits_for_metrics=None if task.level == SEQUENCE else argmax_logits,
        transpose_semitones=args.transpose_semitones if transpose else 0,
        class_weights=class_weights,
        progress_metric="macro_f1",
        callbacks=callbacks,
    )
    main_process = trainer.is_world_process_zero()
    baselines = None
    if has_eval and args.baselines and main_process:
        baselines = fit_baselines(train_ds, eval_ds, eval_song_ids, task.level, len(task.labels),
                                  hidden_attributes=model.config.hidden_attributes, seed=args.split_seed)
        baselines["majority_class"] = task.labels[baselines["majority_class"]]
    if main_process:
        for warning in warnings:
            print(f"WARNING: {warning}")
        print(f"recipe: learning rate {recipe['learning_rate']:.3g} ({'pre-trained' if pretrained else 'from scratch'}, "
              f"hidden size {model.config.hidden_size}), warm-up {recipe['warmup']}, up to "
              f"{recipe['num_train_epochs']:g} epochs of {recipe['steps_per_epoch']} steps, class weighting "
              f"{args.class_weighting}" + (f", early stopping after {recipe['early_stopping_patience']} epochs without "
                                          "a better dev macro-F1" if recipe["early_stopping_patience"] else ""))
    train_output = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    eval_metrics = trainer.evaluate() if has_eval else {}
    metrics = {key.removeprefix("eval_"): value for key, value in eval_metrics.items()}
    warning = baseline_warning(metrics, baselines, task.level, pretrained) if has_eval else None
    if warning:
        warnings.append(warning)

    # Hub pipeline: config.custom_pipelines names this head's task, and its code is copied beside the weights, so
    # `transformers.pipeline(model=output_dir, trust_remote_code=True)` runs the checkpoint on MIDI files.
    register_pipelines(model, training_args.output_dir if main_process else None)
    trainer.save_model(training_args.output_dir)
    trainer.save_state()
    best_epoch = None
    if trainer.state.best_model_checkpoint:
        best_step = int(Path(trainer.state.best_model_checkpoint).name.rsplit("-", 1)[-1])
        best_epoch = next((round(e["epoch"], 2) for e in trainer.state.log_history
                           if e.get("step") == best_step and "epoch" in e), None)
    results = {
        "task": task.name,
        "level": task.level,
        "labels": task.labels,
        "description": task.description,
        "model": args.model,
        "headline_metric": HEADLINE[task.level],
        "metrics": metrics,
        "baselines": baselines,
        "warnings": warnings,
        "train_metrics": train_output.metrics,
        "train_loss_curve": _loss_curve(trainer.state.log_history),
        "epochs_run": round(trainer.state.epoch or 0, 2),
        "best_epoch": best_epoch,
        "recipe": recipe,
        "data": {"train": _report_dict(train_report), "eval": _report_dict(eval_report)},
        "split": _split_record(task),
        "settings": {
            "max_length": tokenizer.max_length,
            "train_stride": args.stride,
            "finetune_mask_percent": model.config.finetune_mask_percent,
            "hidden_attributes": list(model.config.hidden_attributes),
            "transpose_semitones": args.transpose_semitones if transpose else 0,
            "ignore_time_signatures": tokenizer.ignore_time_signatures,
            "split_seed": args.split_seed,
            "max_train_songs": args.max_train_songs,
            "max_eval_songs": args.max_eval_songs,
        },
        "command": "accelerate launch train/finetune.py " + " ".join(argv),
    }
    if main_process:
        output_dir = Path(training_args.output_dir)
        if has_eval and metrics_fn.references is not None:
            matrix = confusion_matrix(metrics_fn.references, metrics_fn.predictions, len(task.labels))
            results["confusion_matrix"] = matrix.tolist()
            try:
                level = "windows" if task.level == SEQUENCE else "notes"
                save_confusion_matrix(matrix, task.labels, output_dir / "confusion_matrix.png",
                                      title=f"{task.name}: dev {level}")
            except ImportError as err:  # matplotlib is an optional extra
                print(f"confusion matrix PNG not drawn: {err}")
        results["wall_seconds"] = round(time.time() - started, 1)
        (output_dir / "finetune_results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
        print(f"train: {train_report}\ndev: {eval_report}")
        if metrics:
            print(results_table(metrics, baselines, task.level))
        for line in warnings[len(warnings) - (1 if warning else 0):]:
            print(f"WARNING: {line}")
    trainer.model_card_facts = card_facts(task, args, training_args, results, tokenizer=tokenizer)
    trainer.create_model_card()
    if training_args.push_to_hub:
        trainer.push_to_hub(commit_message=f"Fine-tuned Adversarial-MidiBERT: {task.name}")
    if main_process:
        print(f"model saved to {training_args.output_dir} (with finetune_results.json and README.md)")
    return results


def card_facts(task: TaskData, args: FinetuneArguments, training_args, results: dict, tokenizer=None) -> dict:
    """Keyword arguments of `write_model_card` for this run: the real data (the counts used), the tokenizer that
    cut the windows, the settings and the dev metrics."""
    data = results["data"]
    # The counts this run used (after --max_train_songs / --max_eval_songs), never the corpus's size.
    subset = [f"{flag} {value}" for flag, value in (("--max_train_songs", args.max_train_songs),
                                                    ("--max_eval_songs", args.max_eval_songs)) if value is not None]
    used = (f"{data['train']['files']} training and {data['eval']['files']} dev files used"
            + (f" (seeded subset: {', '.join(subset)})" if subset else ""))
    summary = {
        "data": f"{task.description}; {used}" if task.description else used,
        "train songs (kept / files)": f"{data['train']['songs']} / {data['train']['files']}",
        "train windows": data["train"]["windows"],
        "train notes": data["train"]["notes"],
        "dev songs (kept / files)": f"{data['eval']['songs']} / {data['eval']['files']}",
        "dev windows": data["eval"]["windows"],
        "skipped files": len(data["train"]["skipped"]) + len(data["eval"]["skipped"]),
    }
    settings = {
        "base model": args.model,
        **results["settings"],
        "epochs (cap / run / best)": f"{training_args.num_train_epochs:g} / {results.get('epochs_run')} / "
                                     f"{results.get('best_epoch')}",
        "max steps": training_args.max_steps,
        "learning rate": training_args.learning_rate,
        "warm-up": training_args.warmup_steps,
        "class weighting": results.get("recipe", {}).get("class_weighting"),
        "best checkpoint by": results.get("recipe", {}).get("best_model_metric"),
        "batch size per device": training_args.per_device_train_batch_size,
        "seed": training_args.seed,
    }
    metrics = {k: v for k, v in results["metrics"].items()
               if k in ("accuracy", "macro_f1", "song_accuracy", "song_macro_f1")}
    named_after = args.recipe or Path(str(args.data or args.manifest or args.hf_dataset).rstrip("/")).stem
    facts = {"base_model": args.model, "datasets": [named_after], "data_summary": summary, "settings": settings,
             "metrics": metrics, "task": task.name, "task_level": task.level, "labels": task.labels,
             "eval_split": "dev", "command": results["command"], "tokenizer": tokenizer}
    if results.get("metrics"):
        baselines = results.get("baselines")
        table = results_table(results["metrics"], baselines, task.level, markdown=True)
        facts["baselines"] = (
            "The same dev songs, scored without a network: the majority class of the training "
            f"{'windows' if task.level == SEQUENCE else 'notes'} and a logistic regression on note statistics "
            "(`adversarial_midibert.baselines`), fitted on the same training windows:\n\n" + table
            if baselines else table)
        if results.get("warnings"):
            facts["baselines"] += "\n\n" + "\n\n".join(f"**Warning:** {w}" for w in results["warnings"])
    return facts


def cli(argv: list[str] | None = None) -> int:
    """`main` for the command line: a mistake a user can fix (a missing folder, one class, a bad flag) ends in a
    one-line message and exit status 2, not a traceback (set ADVERSARIAL_MIDIBERT_DEBUG=1 to see it)."""
    try:
        main(argv)
    except (ValueError, OSError, KeyError) as err:
        if os.environ.get("ADVERSARIAL_MIDIBERT_DEBUG"):
            raise
        message = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
        print(f"finetune.py: error: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(cli())
