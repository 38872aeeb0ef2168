"""Model cards: fill the templates in `hub/model_cards/` with a run's real data, settings and metrics.

`write_model_card` writes `README.md` into a checkpoint folder, with the YAML front matter the Hub reads
(`library_name`, `tags`, `datasets`, `license`, `pipeline_tag`, `base_model` and, for fine-tuned models, a
`model-index` with the measured metrics) and a body from `model_cards/pretrained.md` or `model_cards/finetuned.md`
(plain `str.format` templates). `Trainer.push_to_hub` and `save_pretrained` + `push_to_hub` upload it with the
weights.
"""
from __future__ import annotations

import math
import os
import re
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

# Package data beside this file (`hub/model_cards/`), in a checkout and in an installed wheel alike.
TEMPLATES = Path(__file__).resolve().parent / "model_cards"
KINDS = ("pretrained", "finetuned")
BASE_TAGS = ["adversarial-midibert", "midi", "symbolic-music", "music", "octuple", "bert", "custom_code"]
# A Hub repo id (`owner/name`); a local path as `base_model` would fail the Hub's metadata validation.
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# Known metric keys -> (model-index type, readable name). Others keep their key as both.
_METRIC_NAMES = {
    "accuracy": ("accuracy", "Accuracy"),
    "window_accuracy": ("accuracy", "Window accuracy"),
    "song_accuracy": ("accuracy", "Song accuracy"),
    "macro_f1": ("f1", "Macro-F1"),
    "window_macro_f1": ("f1", "Window macro-F1"),
    "song_macro_f1": ("f1", "Song macro-F1"),
    "f1": ("f1", "F1"),
    "loss": ("loss", "Loss"),
}
_TASKS = {
    "composer": ("composer classification", "it names the composer of a piece of music."),
    "emotion": ("emotion classification", "it places a piece in one of four quadrants of valence and arousal "
                                          "(Q1 happy, Q2 tense, Q3 sad, Q4 calm)."),
    "melody": ("melody extraction", "it labels every note as melody, bridge (secondary melody) or accompaniment."),
    "velocity": ("velocity prediction", "it predicts a loudness class for every note from the score alone "
                                        "(the input velocities are hidden from the model)."),
}


def write_model_card(
    output_dir,
    kind: str,
    *,
    model_name: str | None = None,
    repo_id: str | None = None,
    base_model: str | None = None,
    datasets: Sequence[str] = (),
    data_summary: Mapping[str, Any] | str | None = None,
    settings: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
    task: str | None = None,
    task_level: str | None = None,
    labels: Sequence[str] | None = None,
    eval_split: str = "test",
    eval_dataset: str | None = None,
    command: str | None = None,
    tokenizer: Any = None,
    license: str = "mit",
    tags: Sequence[str] = (),
    notes: str | None = None,
    baselines: str | None = None,
) -> Path:
    """
    Write `README.md` (the Hub model card) into `output_dir`, filled with a run's real facts.

    Args:
        output_dir (`str` or `os.PathLike`): the checkpoint folder; created if missing.
        kind (`str`): `"pretrained"` (a pre-trained backbone) or `"finetuned"` (a classification model).
        model_name (`str`, *optional*): the card's title; defaults to the last part of `repo_id` or the folder name.
        repo_id (`str`, *optional*): the Hub repo the card is pushed to; the usage code loads it from there
            (otherwise from `output_dir`).
        base_model (`str`, *optional*): the checkpoint a fine-tuned model started from; a Hub id also goes into
            the `base_model` metadata.
        datasets (`Sequence[str]`, *optional*): names or Hub ids of the training corpora (`datasets` metadata).
        data_summary (`Mapping` or `str`, *optional*): counts of the training data (songs, windows, notes,
            skipped files, splits...), shown as a table.
        settings (`Mapping`, *optional*): model and training settings (preset, sizes, masking, epochs, batch
            size, learning rate, seed...), shown as a table.
        metrics (`Mapping[str, float]`, *optional*): measured results, e.g. `{"window_accuracy": 0.81,
            "song_accuracy": 0.9, "macro_f1": 0.78}`; for `"finetuned"` they form the `model-index`.
        task (`str`, *optional*): fine-tuning task, one of the paper's (`composer`, `emotion`, `melody`,
            `velocity`) or any name.
        task_level (`str`, *optional*): `"sequence"` or `"token"`; defaults to `"token"` for melody and velocity
            and `"sequence"` otherwise.
        labels (`Sequence[str]`, *optional*): the class names in id order.
        eval_split (`str`, *optional*, defaults to `"test"`): the split the metrics were measured on.
        eval_dataset (`str`, *optional*): the dataset the metrics were measured on; defaults to the first of
            `datasets`.
        command (`str`, *optional*): the command line that produced the checkpoint.
        tokenizer (`OctupleTokenizer` or `Mapping`, *optional*): the run's tokenizer (or its settings
            `max_length`, `stride`, `max_bars`, `ignore_time_signatures`); the card states its window length and
            whether files are read as 4/4. Defaults to the tokenizer saved in `output_dir`
            (`octuple_tokenizer.json`), if any.
        license (`str`, *optional*, defaults to `"mit"`): the weights' licence (a Hub licence id).
        tags (`Sequence[str]`, *optional*): extra tags.
        notes (`str`, *optional*): a paragraph placed under the introduction (e.g. how the weights were made).
        baselines (`str`, *optional*): fine-tuned cards: the model beside the majority-class and note-statistics
            baselines on the same dev songs (markdown), placed under the evaluation table.

    Returns:
        `pathlib.Path`: the written `README.md`.

    Example:

    ```python
    >>> from adversarial_midibert.hub.model_card import write_model_card
    >>> path = write_model_card(
    ...     "runs/emotion", "finetuned", task="emotion", labels=["Q1", "Q2", "Q3", "Q4"],
    ...     datasets=["emopia"], metrics={"window_accuracy": 0.62, "song_accuracy": 0.7},
    ...     settings={"epochs": 10, "learning_rate": 2e-5})                      # doctest: +SKIP
    >>> path.read_text().startswith("---")                                    # doctest: +SKIP
    True
    ```
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    model_name = model_name or (repo_id.split("/")[-1] if repo_id else output_dir.resolve().name)
    model_ref = repo_id or str(output_dir)
    metrics = {key: _plain(value) for key, value in (metrics or {}).items()}
    datasets = [str(name) for name in datasets]

    if kind == "finetuned":
        if task is None:
            raise ValueError("a fine-tuned model card needs `task` (e.g. 'composer' or your own task name)")
        task_level = task_level or ("token" if task in ("melody", "velocity") else "sequence")
        if task_level not in ("sequence", "token"):
            raise ValueError(f"task_level must be 'sequence' or 'token', got {task_level!r}")
        # No Hub task covers symbolic music, and every classification tag names a modality (text, audio, image)
        # this model does not read: a classifier's card sets none rather than claim one. The model-index names
        # the task itself (e.g. "emotion-classification").
        pipeline_tag = None
    else:
        # The backbone's output is one hidden vector per note: "feature extraction" is what it does, whatever
        # the input modality (the Hub lists the tag under "multimodal").
        pipeline_tag = "feature-extraction"

    metadata: dict[str, Any] = {"library_name": "transformers", "license": license,
                                "tags": _unique(BASE_TAGS + [str(tag) for tag in tags]
                                                + ([task] if kind == "finetuned" else ["pretraining"]))}
    # Hub ids only: a local folder's name in `datasets` would link the card to an unrelated Hub dataset (or none);
    # local data is described in the card's body instead.
    hub_datasets = [name for name in datasets if _is_hub_id(name)]
    if hub_datasets:
        metadata["datasets"] = hub_datasets
    if base_model and _is_hub_id(base_model):
        metadata["base_model"] = base_model
    if pipeline_tag:
        metadata["pipeline_tag"] = pipeline_tag
    if kind == "finetuned":
        metadata["metrics"] = _unique(_METRIC_NAMES.get(key, (key, key))[0] for key in metrics)
        metadata["model-index"] = [_model_index(model_name, task, _task_type(task), metrics, eval_split,
                                                eval_dataset or (datasets[0] if datasets else task))]
        if not metadata["metrics"]:
            del metadata["metrics"]

    fields = {
        "model_name": model_name,
        "model_ref": model_ref,
        "notes": notes or "",
        "data_section": _table(data_summary, "Training data") if data_summary else
                        (", ".join(datasets) if datasets else "Not recorded for this run."),
        "settings_section": _table(settings, "Setting") if settings else "Not recorded for this run.",
        "metrics_section": _metrics_section(metrics, eval_split, kind),
        "baselines_section": baselines or "",
        "command_section": f"```bash\n{command}\n```" if command else "The command line was not recorded.",
        **_window_fields(_tokenizer_settings(tokenizer, output_dir)),
    }
    if kind == "pretrained":
        masking = str((settings or {}).get("masking", "adversarial"))
        fields["masking_description"] = (
            "plain random masked modelling (the paper's ablation baseline)" if masking == "random" else
            "adversarial masked modelling: a masker network chooses which notes to mask, avoiding notes that "
            "cannot be inferred from their context")
    else:
        title, description = _TASKS.get(task, (task.replace("_", " "), f"a {task_level}-level task."))
        fields.update(
            task_title=title,
            task_description=description,
            auto_class=("AutoModelForTokenClassification" if task_level == "token"
                        else "AutoModelForSequenceClassification"),
            usage_tail=("labels = logits.argmax(-1)   # one class id per note: model.config.id2label"
                        if task_level == "token" else
                        "probs = logits.softmax(-1).mean(0)   # average the windows of the piece\n"
                        "print(model.config.id2label[int(probs.argmax())])"),
            cli_example=(f"adversarial-midibert {task} {model_ref} song.mid -o song.{task}.mid"
                         if task in ("melody", "velocity") else
                         f"adversarial-midibert classify {model_ref} song.mid"),
            labels_section=(", ".join(f"`{i}`: {label}" for i, label in enumerate(labels))
                            if labels else "Stored in `config.json` (`id2label`)."),
        )
    template = TEMPLATES / f"{kind}.md"
    if not template.is_file():
        raise FileNotFoundError(f"model-card template {template} not found: the installed package is incomplete; "
                                "reinstall it")
    body = template.read_text(encoding="utf-8").format(**fields)
    body = re.sub(r"\n{3,}", "\n\n", body)
    front = yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True)
    path = output_dir / "README.md"
    path.write_text(_without_local_paths(f"---\n{front}---\n\n{body}"), encoding="utf-8")
    return path


def launch_command(script: str, argv: Sequence[str], training_args: Any) -> str:
    """The command line that reproduces a run, for its card and results file: `accelerate launch <script> <flags>`,
    with the launcher's own flags when the run had several processes, since a per-device batch size means nothing
    without the process count.

    Args:
        script (`str`): the training script, e.g. `"train/pretrain.py"`.
        argv (`Sequence[str]`): the script's flags as given.
        training_args (`transformers.TrainingArguments`): the run's arguments (process count, precision, device).
    """
    launcher = ["accelerate", "launch"]
    processes = training_args.world_size
    if processes > 1:
        per_machine = int(os.environ.get("LOCAL_WORLD_SIZE", processes))
        precision = "bf16" if training_args.bf16 else "fp16" if training_args.fp16 else "no"
        launcher += ["--multi_gpu", "--num_processes", str(processes), "--num_machines", str(processes // per_machine),
                     "--mixed_precision", precision]
        if training_args.device.type == "cpu":
            # Without CPU mode, `--multi_gpu` on a machine without GPUs runs separate trainings (FACTS.md).
            launcher = ["ACCELERATE_USE_CPU=1", *launcher, "--dynamo_backend", "no"]
    return shlex.join([*launcher, script, *argv])


def _is_hub_id(name: str) -> bool:
    return bool(_HUB_ID.match(name)) and not Path(name).exists()


def _task_type(task: str) -> str:
    """The model-index task type: the task's own name (no Hub task id describes MIDI classification)."""
    return re.sub(r"[^a-z0-9]+", "-", _TASKS.get(task, (task.replace("_", " "),))[0].lower()).strip("-")


def _tokenizer_settings(tokenizer: Any, output_dir: Path) -> dict[str, int]:
    """Window settings of the run's tokenizer: the one given, else the one saved in the checkpoint folder."""
    if tokenizer is None:
        saved = output_dir / "octuple_tokenizer.json"
        if not saved.is_file():
            return {}
        import json

        tokenizer = json.loads(saved.read_text(encoding="utf-8"))
    get = tokenizer.get if isinstance(tokenizer, Mapping) else lambda key: getattr(tokenizer, key, None)
    settings = {key: int(get(key)) for key in ("max_length", "stride", "max_bars") if get(key) is not None}
    if get("ignore_time_signatures"):
        settings["ignore_time_signatures"] = 1
    return settings


def _window_fields(window: Mapping[str, int]) -> dict[str, str]:
    """Template text on the windows this model was trained on, from its tokenizer (never a fixed number)."""
    meter = (" Every file is read as 4/4 (the tokenizer's `ignore_time_signatures`): bars and positions do not "
             "follow the file's time signatures." if window.get("ignore_time_signatures") else "")
    if "max_length" not in window:
        return {"window_description": "windows (as long as the saved tokenizer's `max_length` allows)",
                "window_limit": "A window holds at most the saved tokenizer's `max_length` - 2 notes." + meter}
    notes, bars = window["max_length"] - 2, window.get("max_bars")
    span = f" and {bars} bars" if bars else ""
    shared = f", consecutive windows sharing {window['stride']} notes" if window.get("stride") else ""
    return {"window_description": f"windows of at most {notes} notes ({window['max_length']} tokens with BOS and "
                                  f"EOS){span}{shared}, as in training",
            "window_limit": f"A window holds at most {notes} notes{span} (the tokenizer this model was trained "
                            f"with); longer pieces are read window by window." + meter}


def _without_local_paths(text: str) -> str:
    """The card is published: paths under the working directory become relative, the home folder `~`."""
    cwd, home = os.getcwd(), os.path.expanduser("~")
    outside = r"(?<![\w./~-])"  # the start of a path, not the middle of a longer one
    if cwd != os.sep:
        text = re.sub(outside + re.escape(cwd + os.sep), "", text)
    if home != os.sep:
        text = re.sub(outside + re.escape(home) + r"(?![\w.-])", "~", text)
    return text


def _model_index(name, task, task_type, metrics, split, dataset) -> dict:
    title = _TASKS.get(task, (task.replace("_", " "),))[0]
    entries = []
    for key, value in metrics.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            continue
        metric_type, metric_name = _METRIC_NAMES.get(key, (key, key))
        entries.append({"type": metric_type, "value": value, "name": metric_name})
    result = {"task": {"type": task_type, "name": title.capitalize()},
              "dataset": {"name": str(dataset), "type": str(dataset), "split": split},
              "metrics": entries}
    return {"name": name, "results": [result] if entries else []}


def _metrics_section(metrics: Mapping[str, Any], split: str, kind: str) -> str:
    if not metrics:
        return "No evaluation was recorded for this run."
    rows = "\n".join(f"| {_METRIC_NAMES.get(key, (key, key))[1]} | {_format(value)} |"
                     for key, value in metrics.items())
    if kind == "finetuned":
        where = f"on the **{split}** split (evaluation never masks or augments its input)"
    else:  # recovery accuracy needs masked notes: a fixed masking seed keeps it deterministic
        where = "on held-out songs with a fixed masking seed (deterministic), no augmentation"
    return f"Measured {where}:\n\n| metric | value |\n|---|---|\n{rows}"


def _table(values: Mapping[str, Any] | str, header: str) -> str:
    if isinstance(values, str):
        return values
    rows = "\n".join(f"| {key} | {_format(value)} |" for key, value in values.items())
    return f"| {header.lower()} | value |\n|---|---|\n{rows}"


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_format(v) for v in value)
    return str(value).replace("|", "\\|")


def _plain(value: Any) -> Any:
    """numpy / torch scalars -> Python numbers, so the YAML stays plain."""
    if hasattr(value, "item") and callable(value.item):
        try:
            return value.item()
        except (ValueError, RuntimeError):
            pass
    return value


def _unique(items) -> list:
    return list(dict.fromkeys(items))


__all__ = ["write_model_card"]
