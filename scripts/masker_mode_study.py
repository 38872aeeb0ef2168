"""What the masker contributes: pre-train the same small model five ways, probe and fine-tune each, compare.

SPEC leaves open whether the masker loss (eq. 3) also trains the shared backbone (the authors' code: one
combined backward) or only the masker head (the clean pass then needs no backward through the backbone). This
script measures both for downstream accuracy, beside the `random` ablation (plain MLM) and no pre-training:

1. `train/pretrain.py --preset tiny` on the same Pop1K7 songs (in no fine-tuning dev set), same seed, same
   number of steps, in five arms: `backbone` (adversarial, masker loss trains the backbone: the authors' mode, the default),
   `head` (adversarial, masker loss trains the masker head only), `random` (plain MLM),
   `random_freeze` (random choice with the same freeze schedule fed random scores) and `no_freeze` (adversarial
   in the authors' mode without the freeze book);
2. `train/finetune.py` from each checkpoint and from scratch (`preset:tiny`) on the tasks below, with several
   fine-tuning seeds (the splits stay fixed: `--split_seed` is not varied);
3. probes of each checkpoint on the last --probe_songs Pop1K7 songs, which no pre-training run saw: recovery
   accuracy under a fixed uniformly RANDOM masking (the same notes for every checkpoint) and, for the adversarial
   arms, the masker's AUC on those notes (`eval_random_recovery_accuracy`, `eval_masker_auc`); and, with
   --representation, the frozen-embedding linear probes of `adversarial_midibert.evaluation.representation`;
4. a markdown table of dev accuracy / macro-F1 (mean and spread over the seeds) and pre-training wall time.

Every run's log and results stay under --out, and finished runs are skipped when the script is run again:

    python scripts/masker_mode_study.py --out runs/masker_study --songs 600 --epochs 6 --seeds 1 2 3
    python scripts/masker_mode_study.py --out runs/masker_study --tasks --representation   # probes only
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PRETRAIN_MODES = {
    "backbone": ["--masking", "adversarial", "--masker_updates_backbone", "true"],
    "head": ["--masking", "adversarial", "--masker_updates_backbone", "false"],
    "random": ["--masking", "random"],
    "random_freeze": ["--masking", "random_freeze"],
    "no_freeze": ["--masking", "adversarial", "--masker_updates_backbone", "true", "--freeze_every_epochs", "0"],
}
# Subsets sized so that one fine-tuning run takes about a minute on 2 CPU cores (the dev-split runs of
# docs/finetuning.md).
TASKS = {
    "melody": ["--recipe", "melody", "--max_train_songs", "100", "--num_train_epochs", "4"],
    "velocity": ["--recipe", "velocity", "--max_train_songs", "60", "--max_eval_songs", "40", "--max_steps", "120"],
    "emotion": ["--recipe", "emotion", "--num_train_epochs", "2"],
    "composer_pianist8": ["--recipe", "composer_pianist8", "--num_train_epochs", "6"],
    "composer_asap": ["--recipe", "composer", "--max_train_songs", "40", "--num_train_epochs", "1"],
}
FINETUNE_COMMON = ["--max_length", "256", "--learning_rate", "3e-4", "--per_device_train_batch_size", "16",
                   "--eval_strategy", "no", "--save_strategy", "no", "--logging_steps", "10"]


def run_logged(command: list[str], log: Path) -> float:
    """Run `command` with its output in `log`; the wall time in seconds. A failed run stops the study."""
    start = time.perf_counter()
    with log.open("w") as out:
        done = subprocess.run(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        sys.exit(f"failed ({done.returncode}): {' '.join(command)}; see {log}")
    return time.perf_counter() - start


def pretrain(mode: str, args: argparse.Namespace) -> Path:
    out = args.out / f"pretrain_{mode}"
    if (out / "model.safetensors").is_file():
        return out
    command = [sys.executable, "train/pretrain.py", "--preset", "tiny", "--data", str(args.data),
               "--max_songs", str(args.songs), "--num_train_epochs", str(args.epochs),
               "--freeze_every_epochs", str(args.freeze_every), "--validation_fraction", "0.05",
               "--save_total_limit", "1",
               "--seed", "42", "--cache_dir", str(args.out / "cache"), "--output_dir", str(out),
               *PRETRAIN_MODES[mode]]
    seconds = run_logged(command, args.out / f"pretrain_{mode}.log")
    (args.out / f"pretrain_{mode}.seconds").write_text(f"{seconds:.0f}\n")
    return out


def recovery_probe(mode: str, checkpoint: Path, args: argparse.Namespace) -> dict:
    """The trainer's evaluation of `checkpoint` on held-out songs: recovery under the fixed random masking and,
    for an adversarial checkpoint, the masker's AUC; plus the curves of its own training log."""
    results = args.out / f"probe_{mode}.json"
    if results.is_file():
        metrics = json.loads(results.read_text())
        if args.representation and "representation" not in metrics:  # a later run asked for the probes too
            metrics["representation"] = representation_probe(checkpoint)
            results.write_text(json.dumps(metrics, indent=1))
        return metrics
    from transformers import TrainingArguments

    from adversarial_midibert.data.dataset import build_window_dataset, find_midi_files
    from adversarial_midibert.pretraining.trainer import AdversarialTrainer
    from modeling_adversarial_midibert import AdversarialMidiBertForPreTraining
    from tokenization_octuple import OctupleTokenizer

    songs = find_midi_files(args.data)
    if len(songs) < args.songs + args.probe_songs:
        sys.exit(f"{args.data}: {len(songs)} songs, fewer than --songs + --probe_songs")
    tokenizer = OctupleTokenizer.from_pretrained(checkpoint)
    windows, _ = build_window_dataset(songs[-args.probe_songs :], tokenizer, cache_dir=args.out / "cache")
    training_args = TrainingArguments(output_dir=str(args.out / "probe_run"), use_cpu=True, report_to="none",
                                      disable_tqdm=True, per_device_eval_batch_size=32)
    model = AdversarialMidiBertForPreTraining.from_pretrained(checkpoint)
    trainer = AdversarialTrainer(model=model, args=training_args, eval_dataset=windows, processing_class=tokenizer)
    metrics = {k.removeprefix("eval_"): v for k, v in trainer.evaluate().items()
               if "random_recovery" in k or "masker_auc" in k or "windows" in k}
    curves = json.loads((checkpoint / "training_curves.json").read_text()) if (checkpoint / "training_curves.json").is_file() else {}
    metrics["final_frozen_fraction"] = curves.get("frozen_fraction", [[None, None]])[-1][1] if curves.get("frozen_fraction") else None
    metrics["final_masker_spread"] = curves.get("masker_spread", [[None, None]])[-1][1] if curves.get("masker_spread") else None
    if args.representation:
        metrics["representation"] = representation_probe(checkpoint)
    results.write_text(json.dumps(metrics, indent=1))
    return metrics


def representation_probe(checkpoint: Path) -> dict:
    """Frozen piece embeddings + logistic regression on the labelled sets (accuracy, macro-F1, balanced accuracy)."""
    from adversarial_midibert.evaluation.representation import run_probe

    rows = run_probe(str(checkpoint), controls=False, retrieval=False, plot=False, progress=False,
                     num_threads=1)["rows"]["checkpoint"]["probe"]
    return {task: {k: v for k, v in values.items() if not k.endswith("_ci")} for task, values in rows.items()}


def finetune(model: str, name: str, task: str, seed: int, args: argparse.Namespace) -> dict:
    """One fine-tuning run's `finetune_results.json` (dev metrics and the same split's baselines)."""
    out = args.out / f"ft_{name}_{task}_s{seed}"
    results = out / "finetune_results.json"
    if not results.is_file():
        command = [sys.executable, "train/finetune.py", "--model", model, *TASKS[task], *FINETUNE_COMMON,
                   "--seed", str(seed), "--cache_dir", str(args.out / "cache"), "--output_dir", str(out)]
        run_logged(command, args.out / f"ft_{name}_{task}_s{seed}.log")
    return json.loads(results.read_text())


def summarise(values: list[float]) -> str:
    mean = statistics.fmean(values)
    if len(values) < 2:
        return f"{mean:.3f}"
    return f"{mean:.3f}±{(max(values) - min(values)) / 2:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "masker_study")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "pop1k7")
    parser.add_argument("--songs", type=int, default=600, help="Pop1K7 songs to pre-train on")
    parser.add_argument("--epochs", type=int, default=6, help="pre-training epochs")
    parser.add_argument("--probe_songs", type=int, default=100, help="last Pop1K7 songs for the recovery probe")
    parser.add_argument("--freeze_every", type=int, default=2, help="k: freeze-book update every k epochs")
    parser.add_argument("--modes", nargs="+", default=list(PRETRAIN_MODES), choices=list(PRETRAIN_MODES))
    parser.add_argument("--tasks", nargs="*", default=list(TASKS), choices=list(TASKS),
                        help="fine-tuning tasks; none (a bare --tasks) skips fine-tuning")
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3], help="fine-tuning seeds")
    parser.add_argument("--representation", action="store_true", help="also run the frozen-embedding probes")
    parser.add_argument("--no_scratch", action="store_true", help="skip the no-pre-training column")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    models = {mode: str(pretrain(mode, args)) for mode in args.modes}
    probes = {mode: recovery_probe(mode, Path(model), args) for mode, model in models.items()}
    if not args.no_scratch and args.tasks:
        models["scratch"] = "preset:tiny"
    table = {name: {task: [finetune(model, name, task, seed, args) for seed in args.seeds] for task in args.tasks}
             for name, model in models.items()}

    # The split is the same for every run (--split_seed is not varied), so one run's baselines stand for all.
    baselines = ("majority", "note_statistics")
    lines = [f"Pre-training: tiny preset, {args.songs} Pop1K7 songs, {args.epochs} epochs, freeze book every "
             f"{args.freeze_every}; fine-tuning seeds {args.seeds} (mean ± half range). Accuracy / macro-F1 on dev, "
             "beside the majority class and note-statistics logistic regression on the same split.",
             "", "| task | " + " | ".join([*models, *baselines]) + " |", "|---" * (len(models) + 3) + "|"]
    for task in args.tasks:
        cells = []
        for name in models:
            runs = [r["metrics"] for r in table[name][task]]
            cells.append(summarise([r["accuracy"] for r in runs]) + " / " + summarise([r["macro_f1"] for r in runs]))
        first = next(iter(table.values()))[task][0].get("baselines", {})
        for baseline in baselines:
            values = first.get(baseline)
            cells.append(f"{values['accuracy']:.3f} / {values['macro_f1']:.3f}" if values else "–")
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    lines += ["", f"Held-out probes ({args.probe_songs} Pop1K7 songs no run saw): recovery under one fixed random "
              "masking (8 attributes / pitch / duration / position), the masker's AUC on those notes, and the end of "
              "training's frozen fraction and masker spread:", "",
              "| arm | random recovery | pitch | duration | position | masker AUC | frozen | spread |",
              "|---|---|---|---|---|---|---|---|"]
    for mode, probe in probes.items():
        cells = [probe.get(k) for k in ("random_recovery_accuracy", "random_recovery_accuracy_pitch",
                                        "random_recovery_accuracy_duration", "random_recovery_accuracy_position",
                                        "masker_auc", "final_frozen_fraction", "final_masker_spread")]
        lines.append(f"| {mode} | " + " | ".join("–" if v is None else f"{v:.3f}" for v in cells) + " |")
    if args.representation:
        tasks = sorted({task for probe in probes.values() for task in probe.get("representation", {})})
        lines += ["", "Frozen piece embeddings + logistic regression (`adversarial_midibert.evaluation.representation`), "
                  "accuracy / macro-F1:", "", "| arm | " + " | ".join(tasks) + " |", "|---" * (len(tasks) + 1) + "|"]
        for mode, probe in probes.items():
            rep_rows = probe.get("representation", {})
            lines.append(f"| {mode} | " + " | ".join(
                f"{rep_rows[t]['accuracy']:.3f} / {rep_rows[t]['macro_f1']:.3f}" if t in rep_rows else "–"
                for t in tasks) + " |")
    timing = [f"{mode} {(args.out / f'pretrain_{mode}.seconds').read_text().strip()} s"
              for mode in args.modes if (args.out / f"pretrain_{mode}.seconds").is_file()]
    if timing:
        lines += ["", "Pre-training wall time: " + ", ".join(timing)]
    report = "\n".join(lines) + "\n"
    (args.out / "summary.md").write_text(report)
    (args.out / "summary.json").write_text(json.dumps(
        {name: {task: [{"seed": seed, "metrics": r["metrics"], "baselines": {b: r.get("baselines", {}).get(b)
                                                                            for b in baselines}}
                       for seed, r in zip(args.seeds, runs)] for task, runs in tasks.items()}
         for name, tasks in table.items()}, indent=1))
    print(report)


if __name__ == "__main__":
    main()
