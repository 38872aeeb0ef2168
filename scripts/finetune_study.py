"""Fine-tuning with nothing but the default command, on folder-per-class sets built from ../shared/data.

Builds five sets the way a user would lay out their own MIDI (symbolic links, nothing copied), then runs

    accelerate launch train/finetune.py --model MODEL --data SET --seed SEED --output_dir RUN   (+ --task melody for POP909)

for each set, model (`--models`: the shipped checkpoints by short name, checkpoint folders, `preset:<name>` for the
same network from scratch) and fine-tuning seed (`--seeds`; the song split is the same for all). Each cell's
`finetune_results.json` stays in its run folder; a finished cell is skipped when the script is run again
(resumable), and the summary (model vs majority vs note statistics, song and window level) is rewritten after
every cell to `--summary` (default: `scripts/finetune_study_results.json`); `--table` prints it as a markdown
table, the mean and range over seeds, and `--versus START [START ...]` as the README's comparison of starts with
the from-scratch one (`--baseline`, default `small_scratch`).

The sets (a group = a sub-folder of a class folder, so its files share a split):
- `asap_composers`: ASAP, composers with >= 4 pieces, <composer>/<piece>/<file>.mid, one file per piece (the
  score where there is one);
- `music21_composers`: music21 corpus by `composer_class`, <class>/<file>.mid, at most 60 files per class (the
  first by name);
- `emopia_quadrants`: EMOPIA, <quadrant>/<song>/<clip>.mid;
- `pianist8`: Pianist8 segments, <pianist>/<segment>.mid (segment-to-song mapping unknown: flat);
- `pop909_melody`: POP909, a flat folder of the first 120 songs by id, note labels from track names (`--task melody`).

    python scripts/finetune_study.py --work runs/finetune_study --finetune_flags "--max_train_minutes 5"
    python scripts/finetune_study.py --work runs/finetune_study --only pianist8 --models preset:tiny --seeds 1
"""
from __future__ import annotations

import argparse
import csv
import fcntl
import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SETS = ("pianist8", "emopia_quadrants", "pop909_melody", "music21_composers", "asap_composers")


def _rows(root: Path, corpus: str) -> list[dict]:
    with open(root / corpus / "manifest.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _link(target: Path, link: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    try:
        link.symlink_to(target.resolve())
    except FileExistsError:  # built before (or by another worker of the study)
        pass


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


def build_set(name: str, root: Path, out: Path) -> tuple[Path, list[str]]:
    """Make the folder of one set (idempotent); return it and the extra flags of its default command."""
    folder = out / name
    extra: list[str] = []
    if name == "asap_composers":
        rows = _rows(root, "asap")
        pieces = defaultdict(set)
        for r in rows:
            pieces[r["composer"]].add(r["piece_folder"])
        kept = {c for c, p in pieces.items() if len(p) >= 4}
        per_piece = defaultdict(list)
        for r in sorted(rows, key=lambda r: (r["kind"] != "score", r["path"])):  # the score first
            if r["composer"] in kept and len(per_piece[r["piece_folder"]]) < 1:
                per_piece[r["piece_folder"]].append(r)
        for r in (r for files in per_piece.values() for r in files):
            piece = _safe(r["piece_folder"].split("/", 1)[-1])
            _link(root / "asap" / r["path"], folder / r["composer"] / piece / _safe(Path(r["path"]).name))
    elif name == "music21_composers":
        taken = defaultdict(int)
        for r in sorted(_rows(root, "music21_corpus"), key=lambda r: r["path"]):
            taken[r["composer_class"]] += 1
            if taken[r["composer_class"]] > 60:
                continue
            _link(root / "music21_corpus" / r["path"], folder / r["composer_class"] / Path(r["path"]).name)
    elif name == "emopia_quadrants":
        for r in _rows(root, "emopia"):
            _link(root / "emopia" / r["path"], folder / r["emotion_quadrant"] / r["song_id"] / Path(r["path"]).name)
    elif name == "pianist8":
        for r in _rows(root, "pianist8_cp_segments"):
            _link(root / "pianist8_cp_segments" / r["path"], folder / r["composer"] / Path(r["path"]).name)
    elif name == "pop909_melody":
        for r in sorted(_rows(root, "pop909"), key=lambda r: r["song_id"])[:120]:
            _link(root / "pop909" / r["path"], folder / Path(r["path"]).name)
        extra = ["--task", "melody"]
    else:
        raise ValueError(f"unknown set {name!r}; choose from {SETS}")
    return folder, extra


def model_tag(model: str) -> str:
    """`preset:tiny` -> tiny_scratch, a shipped short name as is, a checkpoint folder -> pretrained_<folder name>."""
    from adversarial_midibert.presets import SHIPPED_MODELS

    if model.startswith("preset:"):
        return model.split(":", 1)[1] + "_scratch"
    return model if model in SHIPPED_MODELS else "pretrained_" + _safe(Path(model).name)


def cell_parts(key: str) -> tuple[str, str, int]:
    """`set/tag/seedN` -> (set, tag, N); keys written before seeds were a flag (`set/tag`) ran with seed 42."""
    name, tag, *seed = key.split("/")
    return name, tag, int(seed[0].removeprefix("seed")) if seed else 42


def summarize(results: dict, seconds: float, command: str) -> dict:
    pick = ("accuracy", "macro_f1", "song_accuracy", "song_macro_f1")
    baselines = results.get("baselines") or {}
    return {
        "model_metrics": {k: results["metrics"].get(k) for k in pick if k in results["metrics"]},
        "majority": {k: baselines["majority"].get(k) for k in pick if k in baselines.get("majority", {})},
        "note_statistics": {k: baselines["note_statistics"].get(k) for k in pick
                            if k in baselines.get("note_statistics", {})},
        "labels": results["labels"],
        "train_songs": results["data"]["train"]["songs"], "dev_songs": results["data"]["eval"]["songs"],
        "train_windows": results["data"]["train"]["windows"], "dev_windows": results["data"]["eval"]["windows"],
        "epochs_run": results.get("epochs_run"), "best_epoch": results.get("best_epoch"),
        "stopped_by": results.get("stopped_by"),
        "learning_rate": results.get("recipe", {}).get("learning_rate"),
        "warnings": results.get("warnings", []),
        "wall_seconds": round(seconds, 1),
        "command": command,
    }


def _groups(summary: dict) -> dict[tuple[str, str], list[dict]]:
    """(set, start) -> its cells, one per fine-tuning seed."""
    groups = defaultdict(list)
    for key, cell in summary["cells"].items():
        name, tag, _ = cell_parts(key)
        groups[name, tag].append(cell)
    return groups


def headline_metric(values: dict) -> str:
    """The study's score: song macro-F1 for piece labels, note macro-F1 for note labels (no songs)."""
    return "song_macro_f1" if "song_macro_f1" in values else "macro_f1"


def headline(values: dict) -> float:
    return values[headline_metric(values)]


def _mean_and_scores(cells: list[dict]) -> tuple[float, list[float]]:
    """The study's score of each seed's cell, and their mean."""
    scores = [headline(c["model_metrics"]) for c in cells]
    return sum(scores) / len(scores), scores


def markdown_table(summary: dict) -> str:
    """Dev macro-F1 (song level for piece labels, note level for melody), the mean over seeds with its range, for
    each start, beside both baselines (fitted on the same split, so one value per set)."""
    groups = _groups(summary)
    lines = ["| set (classes; train / dev songs) | start | seeds | dev macro-F1, mean (range) | majority "
             "| note statistics | reaches note statistics | epochs run (best) | wall per run |",
             "|---|---|---|---|---|---|---|---|---|"]
    for (name, tag), cells in groups.items():
        (mean, scores), first = _mean_and_scores(cells), cells[0]
        spread = f" ({min(scores):.3f}-{max(scores):.3f})" if len(scores) > 1 else ""
        stats = headline(first["note_statistics"])
        epochs = ", ".join(f"{c['epochs_run']:g} ({c['best_epoch']})" for c in cells)
        wall = sum(c["wall_seconds"] for c in cells) / len(cells) / 60
        lines.append(f"| {name} ({len(first['labels'])}; {first['train_songs']} / {first['dev_songs']}) | {tag} | "
                     f"{len(cells)} | {mean:.3f}{spread} | {headline(first['majority']):.3f} | {stats:.3f} | "
                     f"{'yes' if mean >= stats else 'no'} | {epochs} | {wall:.1f} min |")
    return "\n".join(lines)


def versus_table(summary: dict, starts: list[str], baseline: str) -> str:
    """One row per set: the mean over seeds from `baseline` (the from-scratch start's tag, e.g. `small_scratch`)
    and from each of `starts` (cell tags, e.g. the shipped short names) with its difference from the baseline in
    parentheses, then both baselines. Sets missing one of the starts are left out."""
    groups = _groups(summary)
    lines = [f"| set (classes) | from scratch (`{baseline}`) | "
             + " | ".join(f"from `{start}` (difference)" for start in starts) + " | note statistics | majority |",
             "|---|---|" + "---|" * len(starts) + "---|---|"]

    for name in sorted({name for name, _ in groups}):
        if any((name, tag) not in groups for tag in (baseline, *starts)):
            continue
        means = {tag: _mean_and_scores(groups[name, tag])[0] for tag in (baseline, *starts)}
        base, first = means[baseline], groups[name, baseline][0]
        cells = " | ".join(f"{means[tag]:.3f} ({means[tag] - base:+.3f})" for tag in starts)
        lines.append(f"| {name} ({len(first['labels'])}) | {base:.3f} | {cells} | "
                     f"{headline(first['note_statistics']):.3f} | {headline(first['majority']):.3f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data_root", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--work", default="runs/finetune_study", help="sets/ and runs/ go here")
    parser.add_argument("--models", nargs="+",
                        default=["adversarial-midibert-small", "adversarial-midibert-small-random", "preset:small"])
    parser.add_argument("--only", nargs="+", default=list(SETS), help=f"some of {SETS}")
    parser.add_argument("--seeds", nargs="+", type=int, default=[42, 43, 44],
                        help="fine-tuning seeds (--seed); the song split stays the same (--split_seed 42)")
    parser.add_argument("--finetune_flags", default="",
                        help="extra flags for every cell, e.g. '--max_train_minutes 6' (recorded in each command)")
    parser.add_argument("--summary", default=str(REPO / "scripts" / "finetune_study_results.json"))
    parser.add_argument("--table", action="store_true",
                        help="print the summary as the markdown table of docs/finetuning.md")
    parser.add_argument("--versus", nargs="+", metavar="START",
                        help="print the README's comparison of these starts (cell tags, e.g. "
                             "adversarial-midibert-small adversarial-midibert-small-random) with --baseline")
    parser.add_argument("--baseline", default="small_scratch",
                        help="the from-scratch start that --versus compares with (a cell tag)")
    args = parser.parse_args(argv)
    if args.table or args.versus:
        summary = json.loads(Path(args.summary).read_text())
        print(versus_table(summary, args.versus, args.baseline) if args.versus else markdown_table(summary))
        return 0
    root, work = Path(args.data_root), Path(args.work)
    summary_path = Path(args.summary)

    def save(key: str, cell: dict) -> None:
        # Several workers (e.g. one per --only, with the same or another --work) may share the summary: re-read
        # it under a lock on the summary file itself, so that workers of different work folders also wait.
        with open(summary_path, "a+") as locked:
            fcntl.flock(locked, fcntl.LOCK_EX)
            text = summary_path.read_text()
            summary = json.loads(text) if text.strip() else {}
            summary["machine"] = f"{os.cpu_count()} CPU cores"
            cell["load_average_at_end"] = round(os.getloadavg()[0], 1)  # other jobs slow the wall time
            summary.setdefault("cells", {})[key] = cell
            summary["cells"] = dict(sorted(summary["cells"].items()))
            summary_path.write_text(json.dumps(summary, indent=2) + "\n")

    for name in args.only:
        folder, extra = build_set(name, root, work / "sets")
        for model, seed in ((m, s) for s in args.seeds for m in args.models):
            key = f"{name}/{model_tag(model)}/seed{seed}"
            out = work / "runs" / name / model_tag(model) / f"seed{seed}"
            if (out / "finetune_results.json").is_file():
                print(f"{key}: done, skipped")
                continue
            cmd = ["accelerate", "launch", "train/finetune.py", "--model", model, "--data", str(folder), *extra,
                   "--seed", str(seed), *args.finetune_flags.split(), "--output_dir", str(out)]
            print(f"{key}: {' '.join(cmd)}", flush=True)
            start = time.time()
            out.mkdir(parents=True, exist_ok=True)
            with open(out / "log.txt", "w") as log:
                run = subprocess.run(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
            seconds = time.time() - start
            if run.returncode != 0:
                print(f"{key}: failed ({run.returncode}), see {out / 'log.txt'}", flush=True)
                continue
            results = json.loads((out / "finetune_results.json").read_text())
            cell = summarize(results, seconds, " ".join(cmd))
            save(key, cell)
            m, b = cell["model_metrics"], cell
            metric = headline_metric(m)
            print(f"{key}: {seconds / 60:.1f} min, dev {metric} model {m[metric]:.3f} | majority "
                  f"{b['majority'][metric]:.3f} | note statistics {b['note_statistics'][metric]:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
