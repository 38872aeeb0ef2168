"""Representation benchmark: what a checkpoint's frozen piece embeddings know, with no fine-tuning at all.

Fine-tuning is a slow and noisy way to ask whether pre-training learned anything; a linear probe on frozen
features answers it in minutes (the SyMuRBench protocol: frozen features, a linear classifier on fixed splits,
score-to-performance retrieval on ASAP). For one checkpoint, `run_probe` reports three rows side by side:

- ``checkpoint``: its piece embeddings (`MidiPredictor.embed`: the backbone's last hidden state averaged over
  each window's notes, windows weighted by their notes);
- ``random_weights``: the same architecture and tokenizer with freshly initialised weights (torch seed `seed`),
  the control a pre-trained model has to beat;
- ``note_statistics``: the fine-tuning baseline's note-statistics features (`adversarial_midibert.evaluation.baselines`:
  pitch-class, interval and duration histograms, range, density, velocity, tempo), per window, averaged over the
  piece's windows with the same weights.

Probe: for each labelled set (EMOPIA quadrants, ASAP composers, Pianist8, music21 composers, the fine-tuning
recipes of `adversarial_midibert.data.tasks` with their fixed, seeded, song-grouped splits), a logistic regression
(standardised features, balanced class weights, C = 1, as the note-statistics baseline) is fitted on the training
pieces and scored on the held-out pieces: accuracy, macro-F1 and balanced accuracy, each with a 95 % bootstrap
interval over held-out groups (songs / ASAP pieces resampled with replacement, so performances of one piece move
together).

Retrieval: every ASAP performance is a query against all ASAP piece scores, ranked by cosine similarity of the
features (each dimension standardised over the ASAP items first, so that the direction shared by every embedding
does not decide the ranking): R@1, R@5, R@10, median rank of the performance's own score, and the mean cosine to
its own score and to the other scores.

Cost control, all recorded in the result: each piece is embedded from its first `max_windows` windows, ASAP keeps
`performances_per_piece` performances of each piece (all its scores), and a training split keeps at most
`max_train_groups` groups (seeded). With the tiny preset this runs in minutes on a CPU:

    >>> from adversarial_midibert.evaluation.representation import run_probe
    >>> result = run_probe("runs/pretrain", "runs/representation")            # doctest: +SKIP
    >>> result["rows"]["checkpoint"]["probe"]["emotion"]["accuracy"]            # doctest: +SKIP
    0.41
"""
from __future__ import annotations

import copy
import csv
import io
import json
import os
import platform
import subprocess
import time
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from pipeline_adversarial_midibert import embedding, read_piece, window_states

PROBE_TASKS = ("emotion", "composer", "composer_pianist8", "composer_music21")
ROWS = ("checkpoint", "random_weights", "note_statistics")
METRICS = ("accuracy", "macro_f1", "balanced_accuracy")
RECALL_AT = (1, 5, 10)


def _as_predictor(model, *, tokenizer=None, batch_size: int = 32, device=None, trust_remote_code: bool = False):
    from adversarial_midibert.inference.predictor import MidiPredictor

    if isinstance(model, MidiPredictor):
        return model
    if isinstance(model, (str, os.PathLike)):
        return MidiPredictor.from_pretrained(model, batch_size=batch_size, device=device,
                                             trust_remote_code=trust_remote_code)
    if tokenizer is None:
        raise ValueError("pass the tokenizer with a model object (or a checkpoint folder / MidiPredictor)")
    return MidiPredictor(model, tokenizer, batch_size=batch_size, device=device)


def random_weights_like(predictor, seed: int = 42):
    """The same backbone architecture (config, hidden attributes) and tokenizer with fresh weights."""
    from adversarial_midibert.inference.predictor import MidiPredictor

    backbone = getattr(predictor.model, "midibert", predictor.model)
    config = copy.deepcopy(predictor.model.config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = type(backbone)(config)
    return MidiPredictor(model, predictor.tokenizer, stride=predictor.stride, batch_size=predictor.batch_size,
                         device=predictor.device)


# ---------------------------------------------------------------------------------------------------------- data


def _asap_kinds(root: Path) -> dict[str, tuple[str, str, str]]:
    """`asap/<path>` -> (kind, piece_folder, composer) for every row of the ASAP manifest, in manifest order."""
    with open(root / "asap" / "manifest.csv", newline="", encoding="utf-8") as f:
        return {f"asap/{r['path']}": (r["kind"], r["piece_folder"], r["composer"]) for r in csv.DictReader(f)}


def _cap_performances(sources, kinds: dict, per_piece: int | None):
    """ASAP sources with at most `per_piece` performances of each piece (the first in manifest order); scores and
    other corpora's sources are all kept."""
    if per_piece is None:
        return list(sources)
    seen: dict[str, int] = defaultdict(int)
    kept = []
    for source in sources:
        kind = kinds.get(source.song_id)
        if kind is not None and kind[0] == "performance":
            seen[kind[1]] += 1
            if seen[kind[1]] > per_piece:
                continue
        kept.append(source)
    return kept


def _probe_sets(tasks, root: Path, seed: int, per_piece: int | None, max_train_groups: int | None, kinds: dict):
    from adversarial_midibert.data.tasks import load_recipe, subsample_groups

    sets = {}
    for name in tasks:
        task = load_recipe(name, root, seed=seed)
        train = subsample_groups(_cap_performances(task.train, kinds, per_piece), max_train_groups, seed)
        sets[name] = {"task": task, "train": train, "eval": _cap_performances(task.eval, kinds, per_piece)}
    return sets


def _retrieval_sources(root: Path, kinds: dict, per_piece: int | None):
    from adversarial_midibert.data.dataset import MidiSource

    sources = [MidiSource(song_id=key, path=str(root / key), group=f"asap/{piece}")
               for key, (_, piece, _) in kinds.items()]
    return _cap_performances(sources, kinds, per_piece)


# ---------------------------------------------------------------------------------------------------- features


def extract_features(files, predictors: dict, *, max_windows: int | None, note_statistics: bool = True,
                     progress: bool = True, layer: int | None = None):
    """Piece features of every file for every named predictor (and the note statistics).

    Each file is parsed once with the first predictor's tokenizer and stride (the predictors share them) and cut
    to its first `max_windows` windows; unreadable files are skipped and returned with their reason. `layer`: which
    hidden states are averaged (`window_states`; default the last layer's).

    Returns:
        `tuple(dict, dict, list)`: `{row: {file: vector}}`, `{row: seconds}` (time in that row's features) and
        the skipped files' messages.
    """
    from tqdm.auto import tqdm

    from tokenization_octuple import MidiError

    first = next(iter(predictors.values()))
    tokenizer, stride = first.tokenizer, first.stride
    from adversarial_midibert.evaluation.baselines import window_features
    features = {row: {} for row in [*predictors, *(["note_statistics"] if note_statistics else [])]}
    seconds = dict.fromkeys(features, 0.0)
    skipped = []
    for path in tqdm(files, desc="piece features", unit="file", disable=not progress):
        start = time.perf_counter()
        try:
            _, song, spans = read_piece(tokenizer, path, stride)
        except MidiError as err:
            skipped.append(str(err))
            continue
        spans = spans[:max_windows] if max_windows else spans
        parse = time.perf_counter() - start
        for row, predictor in predictors.items():
            start = time.perf_counter()
            states = window_states(predictor.model, tokenizer, song, spans, predictor.batch_size, predictor.device,
                                   layer)
            features[row][path] = embedding(song, spans, states, "piece")
            seconds[row] += time.perf_counter() - start + parse
        if note_statistics:
            start = time.perf_counter()
            per_window = [window_features(tokenizer.window_ids(song, s, e)[1:-1]) for s, e in spans]
            weights = np.array([e - s for s, e in spans], dtype=float)
            features["note_statistics"][path] = (weights @ np.stack(per_window) / weights.sum()).astype(np.float32)
            seconds["note_statistics"] += time.perf_counter() - start + parse
    return features, seconds, skipped


# ----------------------------------------------------------------------------------------------------- metrics


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> dict:
    """Accuracy, macro-F1 and balanced accuracy (scikit-learn's definitions: macro-F1 over the classes present in
    either array, balanced accuracy = mean recall over the classes present in `y_true`), from one confusion matrix."""
    cm = np.bincount(y_true * num_classes + y_pred, minlength=num_classes ** 2).reshape(num_classes, num_classes)
    diag, support, predicted = np.diag(cm).astype(float), cm.sum(1), cm.sum(0)
    present = (support + predicted) > 0
    f1 = 2 * diag[present] / (support + predicted)[present]
    return {"accuracy": float(diag.sum() / cm.sum()), "macro_f1": float(f1.mean()),
            "balanced_accuracy": float((diag[support > 0] / support[support > 0]).mean())}


def bootstrap_intervals(y_true, y_pred, groups, num_classes: int, resamples: int = 1000, seed: int = 42,
                        level: float = 0.95) -> dict:
    """`{metric: [low, high]}`: percentile intervals over `resamples` resamplings of the groups with replacement."""
    if resamples <= 0:
        return {}
    members = defaultdict(list)
    for i, group in enumerate(groups):
        members[group].append(i)
    blocks = [np.asarray(v) for v in members.values()]
    rng = np.random.default_rng(seed)
    draws = {metric: [] for metric in METRICS}
    for _ in range(resamples):
        picked = np.concatenate([blocks[k] for k in rng.integers(0, len(blocks), len(blocks))])
        for metric, value in classification_metrics(y_true[picked], y_pred[picked], num_classes).items():
            draws[metric].append(value)
    tail = (1 - level) / 2 * 100
    return {metric: [float(np.percentile(v, tail)), float(np.percentile(v, 100 - tail))] for metric, v in draws.items()}


def linear_probe(x_train, y_train, x_eval, y_eval, eval_groups, num_classes: int, *, resamples: int = 1000,
                 seed: int = 42) -> dict:
    """Fit the probe (standardised features, logistic regression with balanced class weights, C = 1) on the
    training pieces and score it on the held-out ones, with bootstrap intervals (`<metric>_ci`)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, C=1.0, class_weight="balanced"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter on random-weight features; the score says enough
        probe.fit(x_train, y_train)
    predicted = probe.predict(x_eval)
    result = classification_metrics(y_eval, predicted, num_classes)
    for metric, interval in bootstrap_intervals(y_eval, predicted, eval_groups, num_classes, resamples, seed).items():
        result[f"{metric}_ci"] = interval
    return result


def retrieval_metrics(queries: np.ndarray, query_keys, candidates: np.ndarray, candidate_keys) -> dict:
    """Rank every candidate for every query by cosine similarity (dimensions standardised over queries and
    candidates together); the right candidate is the one with the query's key."""
    pool = np.concatenate([queries, candidates]).astype(np.float64)
    mean, std = pool.mean(0), pool.std(0)
    std[std == 0] = 1.0

    def unit(x):
        x = (x - mean) / std
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    similarity = unit(queries) @ unit(candidates).T
    position = {key: j for j, key in enumerate(candidate_keys)}
    target = np.array([position[key] for key in query_keys])
    own = similarity[np.arange(len(target)), target]
    ranks = 1 + (similarity > own[:, None]).sum(1)
    others = (similarity.sum(1) - own) / max(similarity.shape[1] - 1, 1)
    result = {f"recall_at_{k}": float((ranks <= k).mean()) for k in RECALL_AT}
    result.update(median_rank=float(np.median(ranks)), mean_cosine_own=float(own.mean()),
                  mean_cosine_others=float(others.mean()), queries=int(len(target)), candidates=int(len(candidate_keys)))
    return result


# ----------------------------------------------------------------------------------------------------- the run


def _git_commit() -> str | None:
    try:
        done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).resolve().parent,
                              capture_output=True, text=True, timeout=10)
        return done.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def run_probe(model, out_dir: str | os.PathLike | None = None, *, tokenizer=None, data_root=None,
              tasks=PROBE_TASKS, retrieval: bool = True, controls: bool = True, seed: int = 42,
              max_windows: int | None = 4, performances_per_piece: int | None = 2, max_train_groups: int | None = 800,
              bootstrap: int = 1000, batch_size: int = 32, device=None, num_threads: int | None = None,
              trust_remote_code: bool = False, plot: bool = True, progress: bool = True,
              layer: int | None = None) -> dict:
    """Linear probes and ASAP retrieval on frozen piece embeddings of one checkpoint (and, with `controls`, of the
    same architecture with random weights and of note statistics).

    Args:
        model (`str`, `os.PathLike`, `MidiPredictor` or a model): a checkpoint folder or Hub id (pre-trained or
            fine-tuned: its backbone is used), `preset:<name>`, a `MidiPredictor`, or a model object with `tokenizer`.
        out_dir (`str` or `os.PathLike`, *optional*): writes `representation.json`, `representation.md` (the tables)
            and, with `plot` and matplotlib installed, `pca_<task>.png` there.
        tokenizer (`OctupleTokenizer`, *optional*): only with a model object.
        data_root (*optional*): the shared corpora (default: `adversarial_midibert.data.tasks.default_shared_data()`).
        tasks (`Sequence[str]`, *optional*): labelled sets, recipes of `adversarial_midibert.data.tasks`.
        retrieval (`bool`, *optional*, defaults to `True`): ASAP score-performance retrieval.
        controls (`bool`, *optional*, defaults to `True`): also the `random_weights` and `note_statistics` rows
            (a study comparing several checkpoints of one architecture needs them once, not per checkpoint).
        seed (`int`, *optional*, defaults to 42): splits, training subsample, random weights, bootstrap.
        max_windows (`int`, *optional*, defaults to 4): windows embedded per piece, from its start (`None`: all).
        performances_per_piece (`int`, *optional*, defaults to 2): ASAP performances kept per piece (`None`: all).
        max_train_groups (`int`, *optional*, defaults to 800): training groups kept per set (`None`: all).
        bootstrap (`int`, *optional*, defaults to 1000): resamples for the intervals (0: none).
        batch_size (`int`, *optional*, defaults to 32): windows per forward pass.
        device (*optional*): torch device (default: CUDA when available).
        num_threads (`int`, *optional*): torch CPU threads during the run (restored after); on a shared machine 1
            thread can be several times faster than 2 contended ones.
        trust_remote_code (`bool`, *optional*): load the checkpoint with its own code.
        plot, progress (`bool`, *optional*): the PCA picture; progress bars.
        layer (`int`, *optional*): embed this layer's output instead of the last hidden state (0 = the embeddings,
            the number of layers or -1 = the last layer), for the checkpoint and the random-weight row alike.

    Returns:
        `dict`: `rows` (`{row: {"probe": {task: metrics}, "retrieval": metrics, "seconds": float}}`, rows
        `checkpoint` and with `controls` `random_weights`, `note_statistics`), `tasks` (labels, piece counts),
        `settings`, `machine`, `commit`, `skipped_files`, `seconds`, `files` (what was written).

    Example:

    ```python
    >>> result = run_probe("runs/pretrain", "runs/representation")                         # doctest: +SKIP
    >>> {row: r["retrieval"]["recall_at_10"] for row, r in result["rows"].items()}           # doctest: +SKIP
    {'checkpoint': 0.21, 'random_weights': 0.12, 'note_statistics': 0.35}
    ```
    """
    threads = torch.get_num_threads()
    if num_threads:
        torch.set_num_threads(num_threads)
    try:
        return _run_probe(model, out_dir, tokenizer, data_root, tasks, retrieval, controls, seed, max_windows,
                          performances_per_piece, max_train_groups, bootstrap, batch_size, device, trust_remote_code,
                          plot, progress, layer)
    finally:
        torch.set_num_threads(threads)


def _run_probe(model, out_dir, tokenizer, data_root, tasks, retrieval, controls, seed, max_windows,
               performances_per_piece, max_train_groups, bootstrap, batch_size, device, trust_remote_code, plot,
               progress, layer) -> dict:
    from adversarial_midibert.data.tasks import default_shared_data

    started = time.time()
    root = Path(data_root) if data_root else default_shared_data()
    predictor = _as_predictor(model, tokenizer=tokenizer, batch_size=batch_size, device=device,
                              trust_remote_code=trust_remote_code)
    predictors = {"checkpoint": predictor}
    if controls:
        predictors["random_weights"] = random_weights_like(predictor, seed)

    needs_asap = retrieval or "composer" in tasks
    kinds = _asap_kinds(root) if needs_asap else {}
    sets = _probe_sets(tasks, root, seed, performances_per_piece, max_train_groups, kinds)
    queries = _retrieval_sources(root, kinds, performances_per_piece) if retrieval else []
    files = list(dict.fromkeys([s.path for split in sets.values() for s in split["train"] + split["eval"]]
                               + [s.path for s in queries]))
    features, seconds, skipped = extract_features(files, predictors, max_windows=max_windows,
                                                  note_statistics=controls, progress=progress, layer=layer)

    rows = {row: {"probe": {}, "retrieval": None, "seconds": round(seconds[row], 1)} for row in features}
    task_info = {}
    for name, split in sets.items():
        task = split["task"]
        label2id = task.label2id
        train = [s for s in split["train"] if s.path in features["checkpoint"]]
        held_out = [s for s in split["eval"] if s.path in features["checkpoint"]]
        y_train = np.array([label2id[str(s.label)] for s in train])
        y_eval = np.array([label2id[str(s.label)] for s in held_out])
        groups = [s.group or s.song_id for s in held_out]
        task_info[name] = {"labels": task.labels, "train_pieces": len(train), "eval_pieces": len(held_out),
                           "eval_groups": len(set(groups)), "description": task.description}
        for row, vectors in features.items():
            x_train = np.stack([vectors[s.path] for s in train])
            x_eval = np.stack([vectors[s.path] for s in held_out])
            rows[row]["probe"][name] = linear_probe(x_train, y_train, x_eval, y_eval, groups, len(task.labels),
                                                    resamples=bootstrap, seed=seed)
    if retrieval:
        readable = [s for s in queries if s.path in features["checkpoint"]]
        scores = [s for s in readable if kinds[s.song_id][0] == "score"]
        performances = [s for s in readable if kinds[s.song_id][0] == "performance"]
        for row, vectors in features.items():
            rows[row]["retrieval"] = retrieval_metrics(
                np.stack([vectors[s.path] for s in performances]), [s.group for s in performances],
                np.stack([vectors[s.path] for s in scores]), [s.group for s in scores])

    result = {
        "model": str(model) if isinstance(model, (str, os.PathLike)) else type(predictor.model).__name__,
        "backbone": type(getattr(predictor.model, "midibert", predictor.model)).__name__,
        "commit": _git_commit(),
        "settings": {"tasks": list(tasks), "retrieval": retrieval, "controls": controls, "seed": seed,
                     "max_windows": max_windows, "layer": layer, "performances_per_piece": performances_per_piece,
                     "max_train_groups": max_train_groups, "bootstrap": bootstrap, "batch_size": batch_size,
                     "window_length": predictor.tokenizer.max_length, "stride": predictor.stride,
                     "device": str(predictor.device), "data_root": str(root)},
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "torch": torch.__version__,
                    "cuda": torch.cuda.get_device_name(0) if predictor.device.type == "cuda" else None},
        "tasks": task_info,
        "rows": rows,
        "pieces_embedded": len(features["checkpoint"]),
        "skipped_files": skipped,
        "files": {},
    }
    result["seconds"] = round(time.time() - started, 1)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        if plot and tasks:
            pca_task = "emotion" if "emotion" in sets else tasks[0]
            split = sets[pca_task]
            pieces = [s for s in split["train"] + split["eval"] if s.path in features["checkpoint"]]
            title = f"{pca_task} ({len(pieces)} pieces), first two principal components: {result['model']}"
            png = plot_pca(features, pieces, out / f"pca_{pca_task}.png", title=title)
            if png is not None:
                result["files"]["pca_png"] = str(png)
        result["files"]["json"] = str(out / "representation.json")
        result["files"]["markdown"] = str(out / "representation.md")
        (out / "representation.md").write_text(format_markdown(result))
        (out / "representation.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def plot_pca(features: dict, pieces, path, title: str = "") -> Path | None:
    """First two principal components of each row's standardised piece features, one panel per row, coloured by
    label; `None` (and a warning) without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        warnings.warn("matplotlib is not installed (pip install -e '.[plots]'): no PCA picture")
        return None
    labels = np.array([str(s.label) for s in pieces])
    names = sorted(set(labels))
    fig, axes = plt.subplots(1, len(features), figsize=(3.6 * len(features), 3.4), squeeze=False)
    for ax, (row, vectors) in zip(axes[0], features.items()):
        x = np.stack([vectors[s.path] for s in pieces]).astype(np.float64)
        x = (x - x.mean(0)) / np.where(x.std(0) > 0, x.std(0), 1)
        u, s, _ = np.linalg.svd(x, full_matrices=False)
        explained = s ** 2 / (s ** 2).sum()
        for name in names:
            here = labels == name
            ax.scatter(u[here, 0] * s[0], u[here, 1] * s[1], s=6, alpha=0.6, label=name)
        ax.set_title(row.replace("_", " "), fontsize=10)
        ax.set_xlabel(f"PC1 ({explained[0]:.0%})", fontsize=8)
        ax.set_ylabel(f"PC2 ({explained[1]:.0%})", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0][-1].legend(fontsize=7, markerscale=2, loc="best")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    plt.close(fig)
    from PIL import Image  # a matplotlib dependency

    # A 64-colour palette: a third of the bytes, small enough to commit.
    Image.open(buffer).convert("RGB").quantize(colors=64).save(path, optimize=True)
    return Path(path)


def _cell(metrics: dict, key: str) -> str:
    interval = metrics.get(f"{key}_ci")
    value = f"{metrics[key]:.3f}"
    return f"{value} [{interval[0]:.2f}, {interval[1]:.2f}]" if interval else value


def format_markdown(result: dict) -> str:
    """The probe and retrieval tables of a `run_probe` result, as Markdown."""
    settings = result["settings"]
    layer = settings.get("layer")
    states = "the last hidden state" if layer is None else f"layer {layer}'s output (0 = the embeddings)"
    commit = result["commit"] or "unknown"
    lines = [f"Model `{result['model']}` (backbone {result['backbone']}, commit {commit}); {states} averaged over "
             f"notes; windows of {settings['window_length']} tokens, first {settings['max_windows'] or 'all'} per "
             f"piece; seed {settings['seed']}; {result['pieces_embedded']} pieces in {result['seconds']:.0f} s.", ""]
    if result["tasks"]:
        lines += ["| set (classes; train / held-out pieces) | features | accuracy | macro-F1 | balanced accuracy |",
                  "|---|---|---|---|---|"]
        for name, info in result["tasks"].items():
            for row, values in result["rows"].items():
                metrics = values["probe"][name]
                lines.append(f"| {name} ({len(info['labels'])}; {info['train_pieces']} / {info['eval_pieces']}) | "
                             f"{row} | " + " | ".join(_cell(metrics, m) for m in METRICS) + " |")
        lines += ["", "Brackets: 95 % bootstrap interval over held-out groups.", ""]
    first = next(iter(result["rows"].values()))
    if first["retrieval"]:
        r = first["retrieval"]
        lines += [f"ASAP retrieval: {r['queries']} performances against {r['candidates']} scores.", "",
                  "| features | R@1 | R@5 | R@10 | median rank | cosine to own score | cosine to other scores |",
                  "|---|---|---|---|---|---|---|"]
        for row, values in result["rows"].items():
            r = values["retrieval"]
            lines.append(f"| {row} | {r['recall_at_1']:.3f} | {r['recall_at_5']:.3f} | {r['recall_at_10']:.3f} | "
                         f"{r['median_rank']:g} | {r['mean_cosine_own']:.3f} | {r['mean_cosine_others']:.3f} |")
    return "\n".join(lines) + "\n"


__all__ = ["run_probe", "format_markdown", "extract_features", "linear_probe", "retrieval_metrics",
           "classification_metrics", "bootstrap_intervals", "random_weights_like", "plot_pca", "PROBE_TASKS"]
