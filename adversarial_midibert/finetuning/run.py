"""Fine-tuning as a command: resolve the task, load the model, fit the recipe, train with `FinetuneTrainer`, then
save the model with its tokenizer, `finetune_results.json`, the confusion matrix and the model card (and push).

`train/finetune.py` is the script users launch (`accelerate launch train/finetune.py`); it calls `cli` here.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from adversarial_midibert.data.collator import OctupleDataCollator
from adversarial_midibert.data.tasks import SEQUENCE, subsample_groups
from adversarial_midibert.evaluation.baselines import fit_baselines
from adversarial_midibert.evaluation.metrics import (
    ClassificationMetrics,
    argmax_logits,
    confusion_matrix,
    save_confusion_matrix,
)
from adversarial_midibert.finetuning.arguments import parse_args
from adversarial_midibert.finetuning.inputs import (
    PRESET_PREFIX,
    build_split,
    check_model_name,
    load_model_and_tokenizer,
    resolve_task,
)
from adversarial_midibert.finetuning.recipe import fit_recipe, label_counts
from adversarial_midibert.finetuning.report import (
    HEADLINE,
    baseline_warning,
    card_facts,
    dev_set_warning,
    loss_curve,
    report_dict,
    results_table,
    split_record,
)
from adversarial_midibert.finetuning.trainer import (
    EarlyStoppingAfterWarmup,
    FinetuneTrainer,
    TrainingTimeBudget,
    class_weights_from_counts,
    stopped_by,
)
from adversarial_midibert.hub.model_card import launch_command
from pipeline_adversarial_midibert import register_pipelines


def main(argv: list[str] | None = None) -> dict:
    """Run a fine-tuning job; returns what `finetune_results.json` holds.

    Example:

    ```python
    >>> from adversarial_midibert.finetuning.run import main
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
    if args.max_train_minutes < 0:
        raise ValueError(f"--max_train_minutes must be >= 0, got {args.max_train_minutes}")
    budget = TrainingTimeBudget(args.max_train_minutes) if args.max_train_minutes > 0 else None
    recipe["max_train_minutes"] = args.max_train_minutes or None
    callbacks = []
    if recipe["early_stopping_patience"] > 0:
        callbacks.append(EarlyStoppingAfterWarmup(recipe["early_stopping_patience"], budget=budget))
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
        time_budget=budget,
    )
    main_process = trainer.is_world_process_zero()
    baselines = None
    if has_eval and args.baselines and main_process:
        baselines = fit_baselines(train_ds, eval_ds, eval_song_ids, task.level, len(task.labels),
                                  hidden_attributes=model.config.hidden_attributes, seed=args.split_seed)
        baselines["majority_class"] = task.labels[baselines["majority_class"]]
    if main_process:
        for line in warnings:
            print(f"WARNING: {line}")
        print(f"recipe: learning rate {recipe['learning_rate']:.3g} ({'pre-trained' if pretrained else 'from scratch'}, "
              f"hidden size {model.config.hidden_size}), warm-up {recipe['warmup']}, up to "
              f"{recipe['num_train_epochs']:g} epochs of {recipe['steps_per_epoch']} steps"
              + (f" or {args.max_train_minutes:g} minutes" if budget is not None else "") + ", class weighting "
              f"{args.class_weighting}" + (f", early stopping after {recipe['early_stopping_patience']} epochs without "
                                          "a better dev macro-F1 once warm-up is over"
                                          if recipe["early_stopping_patience"] else ""))
    train_output = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    eval_metrics = trainer.evaluate() if has_eval else {}
    metrics = {key.removeprefix("eval_"): value for key, value in eval_metrics.items()}
    printed = len(warnings)  # shown before training; the end of the run shows only the ones found after it
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
        "train_loss_curve": loss_curve(trainer.state.log_history),
        "epochs_run": round(trainer.state.epoch or 0, 2),
        "best_epoch": best_epoch,
        "stopped_by": stopped_by(budget, trainer.state, training_args),
        "recipe": recipe,
        "data": {"train": report_dict(train_report), "eval": report_dict(eval_report)},
        "split": split_record(task),
        "settings": {
            "max_length": tokenizer.max_length,
            "train_stride": args.stride,
            "finetune_mask_percent": model.config.finetune_mask_percent,
            "dropout": model.config.hidden_dropout_prob,
            "hidden_attributes": list(model.config.hidden_attributes),
            "transpose_semitones": args.transpose_semitones if transpose else 0,
            "ignore_time_signatures": tokenizer.ignore_time_signatures,
            "split_seed": args.split_seed,
            "max_train_songs": args.max_train_songs,
            "max_eval_songs": args.max_eval_songs,
        },
        "command": launch_command("train/finetune.py", argv, training_args),
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
        for line in warnings[printed:]:
            print(f"WARNING: {line}")
    trainer.model_card_facts = card_facts(task, args, training_args, results, tokenizer=tokenizer)
    trainer.create_model_card()
    if training_args.push_to_hub:
        trainer.push_to_hub(commit_message=f"Fine-tuned Adversarial-MidiBERT: {task.name}")
    if main_process:
        print(f"model saved to {training_args.output_dir} (with finetune_results.json and README.md)")
    return results


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
