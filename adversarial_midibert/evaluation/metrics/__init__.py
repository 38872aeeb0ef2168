"""Evaluation for fine-tuning: the offline `evaluate` module, the Trainer `compute_metrics`, confusion matrices.

The metric lives in ``classification.py`` beside this file and is loaded with ``evaluate.load(<path>)``, which
works without network access. Matplotlib (the ``plots`` extra) is imported only when a PNG is drawn.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

METRIC_PATH = str(Path(__file__).resolve().parent / "classification.py")


def load_metric(config_name: str = "default"):
    """Load the shipped accuracy + macro-F1 metric (``"default"``: windows or notes; ``"song"``: song level).

    Example:

    ```python
    >>> from adversarial_midibert.evaluation.metrics import load_metric
    >>> load_metric("song").compute(predictions=[[2.0, 0.0], [0.0, 1.0]], references=[0, 0], song_ids=["a", "a"])
    {'song_accuracy': 1.0, 'song_macro_f1': 1.0, 'song_count': 1}
    ```
    """
    import evaluate

    # keep_in_memory: no Arrow cache files, so parallel runs and read-only home directories do not collide.
    return evaluate.load(METRIC_PATH, config_name, keep_in_memory=True)


def argmax_logits(logits, labels):
    """`preprocess_logits_for_metrics` for token tasks: keep class ids, not (windows, notes, classes) logits."""
    if isinstance(logits, tuple):
        logits = logits[0]
    return logits.argmax(dim=-1)


class ClassificationMetrics:
    """Trainer ``compute_metrics`` for a sequence task (window + song level) or a token task (note level).

    Evaluation in the Trainer walks the eval dataset in order, so window ``i`` of the predictions is row ``i``
    of the dataset and ``song_ids`` (that dataset's ``song_id`` column) groups windows into songs. The last
    call's scored references and predictions are kept for the confusion matrix.

    Args:
        level (`str`): ``"sequence"`` or ``"token"``.
        song_ids (`Sequence[str]`, *optional*): song of each eval window; required for ``"sequence"``.

    Example:

    ```python
    >>> import numpy as np
    >>> from transformers import EvalPrediction
    >>> metrics = ClassificationMetrics("sequence", song_ids=["a", "a", "b"])
    >>> out = metrics(EvalPrediction(predictions=np.array([[1.0, 0.0], [0.0, 3.0], [2.0, 0.0]]), label_ids=np.array([1, 1, 0])))
    >>> out["accuracy"], out["song_accuracy"]
    (0.6666666666666666, 1.0)
    ```
    """

    def __init__(self, level: str, song_ids: Sequence[str] | None = None):
        if level not in ("sequence", "token"):
            raise ValueError(f"level must be 'sequence' or 'token', got {level!r}")
        if level == "sequence" and song_ids is None:
            raise ValueError("a sequence task needs the eval windows' song_ids for song-level metrics")
        self.level = level
        self.song_ids = list(song_ids) if song_ids is not None else None
        self.window_metric = load_metric("default")
        self.song_metric = load_metric("song") if level == "sequence" else None
        self.references = self.predictions = None

    def __call__(self, eval_pred) -> dict:
        predictions = eval_pred.predictions
        if isinstance(predictions, tuple):
            predictions = predictions[0]
        predictions = np.asarray(predictions)
        references = np.asarray(eval_pred.label_ids)
        if self.level == "token":
            # Trainer pads batches of different lengths with -100 on both sides: the metric drops them.
            keep = references != -100
            self.references, self.predictions = references[keep], predictions[keep]
            return self.window_metric.compute(predictions=self.predictions, references=self.references)
        if len(self.song_ids) != len(references):
            raise ValueError(f"{len(references)} eval windows but {len(self.song_ids)} song ids")
        self.references, self.predictions = references, predictions.argmax(-1)
        result = self.window_metric.compute(predictions=self.predictions, references=references)
        result.update(self.song_metric.compute(predictions=predictions, references=references, song_ids=self.song_ids))
        return result


def confusion_matrix(references, predictions, num_labels: int) -> np.ndarray:
    """Counts ``[true, predicted]`` of shape ``(num_labels, num_labels)``.

    Example:

    ```python
    >>> confusion_matrix([0, 1, 1], [0, 0, 1], num_labels=2).tolist()
    [[1, 0], [1, 1]]
    ```
    """
    references = np.asarray(references, dtype=np.int64)
    predictions = np.asarray(predictions, dtype=np.int64)
    matrix = np.zeros((num_labels, num_labels), dtype=np.int64)
    np.add.at(matrix, (references, predictions), 1)
    return matrix


def save_confusion_matrix(matrix: np.ndarray, labels: Sequence[str], path: str | Path, title: str = "") -> Path:
    """Draw a confusion matrix (rows: true, columns: predicted; row-normalised colours, raw counts) as a PNG.

    Needs matplotlib (``pip install adversarial-midibert[plots]``).

    Example:

    ```python
    >>> save_confusion_matrix(np.array([[3, 1], [0, 4]]), ["bach", "chopin"], "cm.png", title="composer")
    PosixPath('cm.png')
    ```
    """
    try:
        import matplotlib
    except ImportError as err:
        raise ImportError("drawing a confusion matrix needs matplotlib: pip install 'adversarial-midibert[plots]'") from err
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = np.asarray(matrix)
    totals = matrix.sum(axis=1, keepdims=True)
    normalised = np.divide(matrix, totals, out=np.zeros(matrix.shape, dtype=float), where=totals > 0)
    size = max(4.0, 0.6 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(normalised, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(len(labels)), labels=labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels=labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center",
                    color="white" if normalised[i, j] > 0.5 else "black", fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
