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

Any `TrainingArguments` flag works too (`--num_train_epochs`, `--learning_rate`, `--bf16`, `--push_to_hub`...).
Without a given split, songs are split by song / group with `--split_seed`, never by window. Mask fine-tuning
(`--finetune_mask_percent`, 0 turns it off) and transposition (`--transpose`) act on training batches only;
evaluation is deterministic and reports accuracy and macro-F1 (window and song level for sequence tasks, note
level for note tasks). The run leaves in `output_dir`: the model (loadable with `AutoModelFor...Classification`
and `trust_remote_code=True`, labels in `config.json`), the tokenizer, `finetune_results.json` (metrics, data,
skipped files with reasons), `confusion_matrix.png` and a model card (`README.md`).
"""
from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from transformers import HfArgumentParser, TrainingArguments

from adversarial_midibert.arguments import load_preset
from adversarial_midibert.collator import OctupleDataCollator
from adversarial_midibert.data import build_window_dataset, find_midi_files, sources_from_dataset, sources_from_manifest
from adversarial_midibert.finetune_trainer import FinetuneTrainer
from adversarial_midibert.metrics import ClassificationMetrics, argmax_logits, confusion_matrix, save_confusion_matrix
from adversarial_midibert.tasks import (
    SEQUENCE,
    TaskData,
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
# Fine-tuning defaults (any flag overrides them). The paper fine-tunes at 1e-5 for up to 500 epochs with early
# stopping; these suit the short runs a CPU allows.
TRAINING_DEFAULTS = {
    "output_dir": "runs/finetune",
    "num_train_epochs": 10,
    "per_device_train_batch_size": 16,
    "per_device_eval_batch_size": 32,
    "learning_rate": 5e-5,
    "weight_decay": 0.01,
    "warmup_steps": 0.05,  # a float below 1 is a share of the total steps
    "eval_strategy": "epoch",
    "save_strategy": "epoch",
    "save_total_limit": 1,
    "logging_steps": 10,
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
        return sources_from_manifest(manifest, args.path_column, label_column, args.group_column)
    if data:
        return sources_from_class_folders(data) if level_is_sequence else find_midi_files(data)
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
        return load_recipe(args.recipe, args.data_root, seed=args.split_seed)
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
    named_after = args.data or args.manifest or args.hf_dataset
    if args.task_name:
        task.name = args.task_name
    elif is_sequence and named_after:
        task.name = Path(named_after.rstrip("/")).stem
    return task


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
        try:
            tokenizer = OctupleTokenizer.from_pretrained(args.model)
        except OSError:
            tokenizer = OctupleTokenizer()
        if args.max_length:
            tokenizer = OctupleTokenizer(max_length=args.max_length, max_bars=tokenizer.max_bars)
    if tokenizer.max_length > model.config.max_position_embeddings:
        raise ValueError(f"windows of {tokenizer.max_length} tokens exceed the model's "
                         f"max_position_embeddings={model.config.max_position_embeddings}")
    return model, tokenizer


def build_split(sources, tokenizer, task: TaskData, args: FinetuneArguments, stride: int):
    """Windows of one split with the columns the collator needs, plus the build report and the song ids."""
    windows_tokenizer = OctupleTokenizer(max_length=tokenizer.max_length, stride=stride, max_bars=tokenizer.max_bars)
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


def main(argv: list[str] | None = None) -> dict:
    """Run a fine-tuning job; returns what `finetune_results.json` holds.

    Example:

    ```python
    >>> from adversarial_midibert.finetune import main
    >>> results = main(["--model", "preset:tiny", "--data", "my_set", "--output_dir", "runs/my_task",
    ...                 "--num_train_epochs", "1"])          # doctest: +SKIP
    >>> results["metrics"]["accuracy"], results["data"]["train"]["skipped"]      # doctest: +SKIP
    ```
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    args, training_args = parse_args(argv)
    task = resolve_task(args)
    task.train = subsample_groups(task.train, args.max_train_songs, args.split_seed)
    task.eval = subsample_groups(task.eval, args.max_eval_songs, args.split_seed)
    model, tokenizer = load_model_and_tokenizer(args, task)

    train_ds, train_report, _ = build_split(task.train, tokenizer, task, args, stride=args.stride)
    eval_ds, eval_report, eval_song_ids = build_split(task.eval, tokenizer, task, args, stride=0)
    if len(train_ds) == 0:
        raise ValueError(f"no training windows: every training file was skipped\n{train_report}")
    has_eval = len(eval_ds) > 0
    if not has_eval:
        training_args.eval_strategy = "no"

    metrics_fn = ClassificationMetrics(task.level, song_ids=eval_song_ids) if has_eval else None
    transpose = args.transpose if args.transpose is not None else task.transpose
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
    )
    train_output = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    eval_metrics = trainer.evaluate() if has_eval else {}
    metrics = {key.removeprefix("eval_"): value for key, value in eval_metrics.items()}

    # Hub pipeline: config.custom_pipelines names this head's task, and its code is copied beside the weights, so
    # `transformers.pipeline(model=output_dir, trust_remote_code=True)` runs the checkpoint on MIDI files.
    register_pipelines(model, training_args.output_dir if trainer.is_world_process_zero() else None)
    trainer.save_model(training_args.output_dir)
    trainer.save_state()
    results = {
        "task": task.name,
        "level": task.level,
        "labels": task.labels,
        "description": task.description,
        "model": args.model,
        "metrics": metrics,
        "train_metrics": train_output.metrics,
        "train_loss_curve": _loss_curve(trainer.state.log_history),
        "data": {"train": _report_dict(train_report), "eval": _report_dict(eval_report)},
        "settings": {
            "max_length": tokenizer.max_length,
            "train_stride": args.stride,
            "finetune_mask_percent": model.config.finetune_mask_percent,
            "hidden_attributes": list(model.config.hidden_attributes),
            "transpose_semitones": args.transpose_semitones if transpose else 0,
            "split_seed": args.split_seed,
            "max_train_songs": args.max_train_songs,
            "max_eval_songs": args.max_eval_songs,
        },
        "command": "accelerate launch train/finetune.py " + " ".join(argv),
    }
    if trainer.is_world_process_zero():
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
        (output_dir / "finetune_results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
        print(f"train: {train_report}\ndev: {eval_report}")
        if metrics:
            print("dev metrics: " + ", ".join(f"{k}={v:.4f}" for k, v in metrics.items()
                                              if k in ("accuracy", "macro_f1", "song_accuracy", "song_macro_f1")))
    trainer.model_card_facts = card_facts(task, args, training_args, results)
    trainer.create_model_card()
    if training_args.push_to_hub:
        trainer.push_to_hub(commit_message=f"Fine-tuned Adversarial-MidiBERT: {task.name}")
    return results


def card_facts(task: TaskData, args: FinetuneArguments, training_args, results: dict) -> dict:
    """Keyword arguments of `write_model_card` for this run: the real data, settings and dev metrics."""
    data = results["data"]
    summary = {
        "data": task.description,
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
        "epochs": training_args.num_train_epochs,
        "max steps": training_args.max_steps,
        "learning rate": training_args.learning_rate,
        "batch size per device": training_args.per_device_train_batch_size,
        "seed": training_args.seed,
    }
    metrics = {k: v for k, v in results["metrics"].items()
               if k in ("accuracy", "macro_f1", "song_accuracy", "song_macro_f1")}
    named_after = args.recipe or Path(str(args.data or args.manifest or args.hf_dataset).rstrip("/")).stem
    return {"base_model": args.model, "datasets": [named_after], "data_summary": summary, "settings": settings,
            "metrics": metrics, "task": task.name, "task_level": task.level, "labels": task.labels,
            "eval_split": "dev", "command": results["command"]}


if __name__ == "__main__":
    main()
