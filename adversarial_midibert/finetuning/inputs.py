"""What a fine-tuning run starts from: the task and its song-disjoint split (from a recipe, a folder, a manifest
or a `datasets` dataset), the classification model and its tokenizer, and the window datasets of each split.
"""
from __future__ import annotations

import difflib
import os
from pathlib import Path

from adversarial_midibert.data.compatibility import check_tokenizer_fits_model, load_tokenizer_or_default
from adversarial_midibert.data.dataset import (
    build_window_dataset,
    find_midi_files,
    sources_from_dataset,
    sources_from_manifest,
)
from adversarial_midibert.data.tasks import SEQUENCE, TaskData, check_labels, load_recipe, make_task, sources_from_class_folders
from adversarial_midibert.finetuning.arguments import FinetuneArguments
from adversarial_midibert.presets import load_preset, resolve_model_name
from configuration_adversarial_midibert import AdversarialMidiBertConfig
from modeling_adversarial_midibert import (
    AdversarialMidiBertForSequenceClassification,
    AdversarialMidiBertForTokenClassification,
)
from tokenization_octuple import OctupleTokenizer

PRESET_PREFIX = "preset:"


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
    name = resolve_model_name(name)
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
    if args.dropout is not None:
        if not 0 <= args.dropout < 1:
            raise ValueError(f"--dropout must lie in [0, 1), got {args.dropout}")
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob", "classifier_dropout"):
            updates[name] = args.dropout
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
        source = resolve_model_name(args.model)
        config = AdversarialMidiBertConfig.from_pretrained(source)
        for key, value in updates.items():
            setattr(config, key, value)
        # ignore_mismatched_sizes: a fine-tuned checkpoint may be fine-tuned again with another label set.
        model = model_class.from_pretrained(source, config=config, ignore_mismatched_sizes=True)
        # A checkpoint without tokenizer files gets a default one, with a warning naming its settings.
        tokenizer = load_tokenizer_or_default(source, config)
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


