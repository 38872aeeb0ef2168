"""Pre-training as a command: read the flags over a preset, build the model and the window datasets, train with
`AdversarialTrainer`, then save the checkpoint with its masker report and model card (and push it).

`train/pretrain.py` is the script users launch (`accelerate launch train/pretrain.py`); it calls `run` here.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
from transformers import set_seed

from adversarial_midibert.data.compatibility import (
    check_tokenizer_fits_model,
    check_windows_train_the_masker,
    min_notes_for_masker_targets,
    short_window_share,
)
from adversarial_midibert.data.dataset import (
    build_window_dataset,
    default_cache_dir,
    find_midi_files,
    sources_from_dataset,
    sources_from_manifest,
    split_by_song,
)
from adversarial_midibert.hub.model_card import launch_command
from adversarial_midibert.pretraining.arguments import DataArguments, ModelArguments, parse_pretraining_args
from adversarial_midibert.pretraining.trainer import AdversarialTrainer


def collect_sources(data_args: DataArguments):
    """All MIDI sources named by --data / --manifest / --hf_dataset, in a fixed order."""
    sources = []
    if data_args.hf_dataset:
        import datasets

        sources += sources_from_dataset(datasets.load_from_disk(data_args.hf_dataset), data_args.midi_column)
    if data_args.manifest:
        sources += sources_from_manifest(data_args.manifest)
    if not data_args.hf_dataset and not data_args.manifest:
        for root in data_args.data:
            found = find_midi_files(root)
            if len(data_args.data) > 1:  # keep ids unique across folders
                for s in found:
                    s.song_id = f"{Path(root).name}/{s.song_id}"
            sources += found
    if data_args.max_songs:
        sources = sources[: data_args.max_songs]
    if not sources:
        raise ValueError("no MIDI files found: check --data / --manifest / --hf_dataset")
    return sources


def build_model(model_args: ModelArguments, data_args: DataArguments):
    from configuration_adversarial_midibert import AdversarialMidiBertConfig
    from modeling_adversarial_midibert import AdversarialMidiBertForPreTraining

    flags = {
        key: value
        for key, value in (
            ("masking", model_args.masking),
            ("masker_updates_backbone", model_args.masker_updates_backbone),
            ("freeze_every_epochs", model_args.freeze_every_epochs),
            ("freeze_rank_momentum", model_args.freeze_rank_momentum),
            ("masker_random_share", model_args.masker_random_share),
            ("masker_lr_scale", model_args.masker_lr_scale),
            ("masker_feature_layer", model_args.masker_feature_layer),
        )
        if value is not None
    }
    if model_args.model_name_or_path:
        model = AdversarialMidiBertForPreTraining.from_pretrained(model_args.model_name_or_path, **flags)
    else:
        overrides = dict(model_args.config_overrides)
        preset = overrides.pop("config_preset", "tiny")
        config = AdversarialMidiBertConfig.from_preset(preset, **{**overrides, **flags})
        model = AdversarialMidiBertForPreTraining(config)
    if model.config.max_position_embeddings < data_args.max_length:
        raise ValueError(f"--max_length {data_args.max_length} exceeds the model's max_position_embeddings "
                         f"({model.config.max_position_embeddings})")
    return model


def check_run_fits_model(tokenizer, config, model_args: ModelArguments) -> None:
    """Refuse, before any data is read, a run that would fail or learn nothing: ids the model's tables cannot
    hold (an `IndexError` thousands of steps in) or windows too short for any masker target (a masker loss of
    exactly 0 all run long)."""
    check_tokenizer_fits_model(tokenizer, config, model_name=model_args.model_name_or_path or "the model")
    if config.masking == "adversarial":
        check_windows_train_the_masker(tokenizer.max_length, config.mask_percent, config.masker_target_percent)


def warn_about_short_windows(train_ds, config) -> None:
    """Say when most training windows are too short for masker targets (short songs), which a max_length check
    cannot see: the masker then learns from the few long windows only."""
    from adversarial_midibert.data.dataset import window_lengths

    if config.masking != "adversarial" or not len(train_ds):
        return
    share = short_window_share(window_lengths(train_ds) - 2, config.mask_percent)
    if share > 0.5:
        print(f"warning: {share:.0%} of the training windows hold fewer than "
              f"{min_notes_for_masker_targets(config.mask_percent)} notes and give the masker no target "
              f"(eq. 3 needs 2 chosen notes); its loss comes from the other windows only", file=sys.stderr, flush=True)


def _data_as_given(data_args: DataArguments) -> list[str]:
    """The training data the way the command line named it (the card makes local paths relative)."""
    if data_args.streaming_dir:
        return [str(data_args.streaming_dir)]
    named = [str(source) for source in (data_args.hf_dataset, data_args.manifest) if source]
    return named or [str(root) for root in data_args.data]  # collect_sources reads --data only without them


def split_windows(windows, train_songs: list[int], valid_songs: list[int]):
    song_index = np.asarray(windows["song_index"], dtype=np.int64)
    valid = np.isin(song_index, np.asarray(valid_songs, dtype=np.int64))
    train_ds = windows.select(np.flatnonzero(~valid).tolist())
    eval_ds = windows.select(np.flatnonzero(valid).tolist()) if valid.any() else None
    return train_ds, eval_ds


def tokenized_song_split(data_args: DataArguments, training_args, tokenizer):
    """The sources of a run read from files (not `--streaming_dir`), their split into training and validation songs
    (indices into the sources) and their tokenized windows with the tokenizing report: what `main` trains and
    evaluates on, and what scripts/recovery_by_corpus.py rebuilds to score the same validation songs."""
    sources = collect_sources(data_args)
    # Not the training seed: a run continued from a checkpoint with another --seed would otherwise hold out songs
    # the checkpoint was trained on, and its held-out recovery would be recovery of training songs.
    train_songs, valid_songs = split_by_song(sources, data_args.validation_fraction, data_args.split_seed)
    # Process 0 tokenizes and fills the cache; the others then read it back instead of racing it.
    with training_args.main_process_first(desc="tokenizing MIDI"):
        windows, report = build_window_dataset(sources, tokenizer, num_proc=data_args.num_proc,
                                               cache_dir=data_args.cache_dir or default_cache_dir())
    return sources, train_songs, valid_songs, windows, report


def main(argv: list[str] | None = None) -> AdversarialTrainer:
    """Pre-train; returns the trainer (its `state.log_history` holds every logged number).

    Example:

    >>> from adversarial_midibert.pretraining.run import main
    >>> trainer = main(["--max_steps", "2", "--output_dir", "/tmp/pretrain-doctest"])  # doctest: +SKIP
    """
    from tokenization_octuple import OctupleTokenizer

    model_args, data_args, training_args = parse_pretraining_args(argv)
    if data_args.streaming_dir:  # the shards were cut with their own settings
        from adversarial_midibert.pretraining.streaming import read_index

        tokenizer = OctupleTokenizer(**read_index(data_args.streaming_dir)["tokenizer"])
        data_args.max_length, data_args.stride = tokenizer.max_length, tokenizer.stride
    else:
        tokenizer = OctupleTokenizer(max_length=data_args.max_length, stride=data_args.stride,
                                     max_bars=data_args.max_bars)
    # Seeded before the model is built: its initial weights are part of a reproducible run.
    set_seed(training_args.seed)
    model = build_model(model_args, data_args)
    check_run_fits_model(tokenizer, model.config, model_args)

    if data_args.streaming_dir:
        from adversarial_midibert.pretraining.streaming import streaming_training_inputs

        train_ds, eval_ds, extra = streaming_training_inputs(data_args.streaming_dir, training_args)
        data_summary = extra.pop("data_summary")
    else:
        sources, train_songs, valid_songs, windows, report = tokenized_song_split(data_args, training_args, tokenizer)
        if training_args.process_index == 0:
            print(report, flush=True)
        train_ds, eval_ds = split_windows(windows, train_songs, valid_songs)
        if training_args.process_index == 0:
            warn_about_short_windows(train_ds, model.config)
        skipped = {song_id for song_id, _ in report.skipped}
        n_train = sum(sources[i].song_id not in skipped for i in train_songs)
        n_valid = sum(sources[i].song_id not in skipped for i in valid_songs)
        data_summary = {
            "MIDI files": report.num_files,
            "songs tokenized": report.num_songs,
            "skipped files": len(report.skipped),
            "training songs / windows": f"{n_train} / {len(train_ds)}",
            "validation songs / windows": f"{n_valid} / {0 if eval_ds is None else len(eval_ds)}",
            "notes": report.num_notes,
        }
        extra = {}
    import torch

    if not torch.cuda.is_available():  # pinning needs an accelerator; on CPU it only prints a warning per loader
        training_args.dataloader_pin_memory = False
    if eval_ds is None and training_args.eval_strategy != "no":
        training_args.eval_strategy = "no"

    trainer = AdversarialTrainer(
        model=model,
        args=training_args,
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        processing_class=tokenizer,
        transpose_semitones=data_args.transpose_semitones,
        # The held-out notes the recovery probe masks follow the split, not the training seed: two seeds of one
        # recipe are scored on the same notes (with --seed they differed by 0.006 in pitch on the same weights).
        eval_seed=data_args.split_seed,
        **extra,
    )
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    from pipeline_adversarial_midibert import register_pipelines

    # The midi-feature-extraction pipeline travels with the model (recorded in its config, its file copied).
    register_pipelines(model, training_args.output_dir if trainer.is_world_process_zero() else None)
    trainer.save_model(training_args.output_dir)
    metrics = trainer.evaluate() if eval_ds is not None else {}
    if trainer.is_world_process_zero():
        from adversarial_midibert.pretraining.masker_report import write_masker_report

        written = write_masker_report(trainer, training_args.output_dir)
        print("masker report: " + ", ".join(os.path.basename(p) for p in written), flush=True)

    config = model.config
    data_given = _data_as_given(data_args)
    trainer.model_card_facts = {
        # As typed (write_model_card makes paths relative and keeps only Hub ids in the `datasets` metadata).
        "datasets": data_given,
        "data_summary": {"data": ", ".join(data_given), **data_summary},
        "base_model": model_args.model_name_or_path,
        "tokenizer": tokenizer,
        "settings": {
            "preset": model_args.preset,
            "initialised from": model_args.model_name_or_path or f"random weights (seed {training_args.seed})",
            "masking": trainer.masking,
            "layers x hidden": f"{config.num_hidden_layers} x {config.hidden_size}",
            "position embedding": config.position_embedding_type,
            "(p, q, a, b, k)": f"({config.mask_percent}, {config.masker_target_percent}, {config.freeze_percent}, "
                               f"{config.unfreeze_percent}, {config.freeze_every_epochs})",
            "freeze rank momentum": config.freeze_rank_momentum,
            "masker updates backbone": config.masker_updates_backbone,
            "window length (tokens)": tokenizer.max_length,
            "transposition (semitones)": data_args.transpose_semitones,
            "epochs": training_args.num_train_epochs if training_args.max_steps <= 0 else f"{trainer.state.epoch:.2f}",
            "optimizer steps": trainer.state.global_step,
            "batch size per device": training_args.per_device_train_batch_size,
            "gradient accumulation": training_args.gradient_accumulation_steps,
            "processes": training_args.world_size,
            "mixed precision": "bf16" if training_args.bf16 else "fp16" if training_args.fp16 else "no (fp32)",
            "learning rate": training_args.learning_rate,
            "seed": training_args.seed,
            "validation split seed": data_args.split_seed,
            "frozen fraction": None if trainer.freeze_book is None else round(trainer.freeze_book.frozen_fraction(), 4),
            "attribute weights": ", ".join(f"{w:.3f}" for w in trainer.attribute_weights.tolist()),
        },
        "metrics": {k.removeprefix("eval_"): v for k, v in metrics.items()
                    if "accuracy" in k or k in ("eval_loss", "eval_masker_auc")},
        "command": launch_command("train/pretrain.py", sys.argv[1:] if argv is None else argv, training_args),
    }
    trainer.create_model_card()
    if training_args.push_to_hub:
        trainer.push_to_hub(commit_message="Adversarial-MidiBERT pre-training")

    if data_args.dump_process_state:
        path = Path(training_args.output_dir) / f"process_state-{training_args.process_index}.json"
        path.write_text(json.dumps(trainer.process_state(), indent=1))

    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        # Without it one rank in three aborted at exit (FACTS.md).
        dist.destroy_process_group()
    return trainer


def run(argv: list[str] | None = None) -> int:
    """The script's entry point: `main`, with a user's mistake (a bad flag value, missing data, a checkpoint that
    does not fit) reported as ONE line on stderr and exit status 1, not a traceback.

    `accelerate launch -q` then ends with that line too (without `-q` the launcher adds its own
    `CalledProcessError` traceback). Set `ADVERSARIAL_MIDIBERT_TRACEBACK=1` to see the full traceback.
    """
    try:
        main(argv)
    except (ValueError, OSError) as error:  # MidiError and the argument checks are ValueErrors
        if os.environ.get("ADVERSARIAL_MIDIBERT_TRACEBACK"):
            raise
        print(f"pretrain.py: error: {error}", file=sys.stderr, flush=True)
        return 1
    return 0
