"""What a fine-tuning run reports: the model beside the majority-class and note-statistics baselines, the plain
warnings (a model not clearly above the majority class or below note statistics, a dev set too small), the
record of the data and the split in `finetune_results.json`, and the facts of its model card.
"""
from __future__ import annotations

from pathlib import Path

from adversarial_midibert.data.tasks import SEQUENCE, TaskData
from adversarial_midibert.finetuning.arguments import FinetuneArguments

# A model whose dev macro-F1 is less than this above the majority class's has not clearly learned anything.
CLEAR_MARGIN = 0.1
HEADLINE = {SEQUENCE: "song_macro_f1", "token": "macro_f1"}


def report_dict(report) -> dict:
    return {"files": report.num_files, "songs": report.num_songs, "windows": report.num_windows,
            "notes": report.num_notes, "skipped": [{"song_id": s, "reason": r} for s, r in report.skipped]}


def loss_curve(log_history: list[dict]) -> list[float]:
    return [round(entry["loss"], 5) for entry in log_history if "loss" in entry]


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


def split_record(task: TaskData) -> dict:
    def side(sources):
        return [{"song_id": s.song_id, **({"group": s.group} if s.group not in (None, "") else {}),
                 **({"label": s.label} if s.label is not None else {})} for s in sources]
    return {"train": side(task.train), "eval": side(task.eval)}


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


