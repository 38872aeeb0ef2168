"""Accuracy and macro-F1 for window-, token- and song-level classification, as an offline `evaluate` module.

Load it from its path so no network is needed (``evaluate.load("accuracy")`` fetches a script from the Hub):

    >>> import evaluate
    >>> from adversarial_midibert.evaluation.metrics import METRIC_PATH
    >>> metric = evaluate.load(METRIC_PATH)
    >>> metric.compute(predictions=[0, 1, 1], references=[0, 1, -100])
    {'accuracy': 1.0, 'macro_f1': 1.0, 'count': 2}

Two configurations:
- ``"default"``: integer predictions and references; references equal to ``ignore_index`` (-100: padding,
  BOS/EOS, notes masked during mask fine-tuning) are left out. Used for windows and for notes.
- ``"song"``: per-window logits, references and song ids; a song's prediction is the argmax of the mean of its
  windows' logits, so a long piece counts once, whatever its number of windows.
"""
# One import per line: evaluate's import scanner reads "import a, b" as a single module name.
import datasets
import evaluate
import numpy as np

_DESCRIPTION = """Accuracy and macro-F1 (unweighted mean of per-class F1 over the classes that occur in the
references or the predictions, as scikit-learn's f1_score(average="macro")). The "song" configuration averages
window logits per song before taking the argmax."""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[int]`, or `list[list[float]]` for "song"): predicted class ids, or window logits.
    references (`list[int]`): gold class ids; `ignore_index` entries are dropped ("default" only).
    song_ids (`list[str]`, "song" only): which song each window belongs to.
    ignore_index (`int`, *optional*, defaults to -100): reference value that marks an unscored item.
Returns:
    "default": `accuracy`, `macro_f1`, `count` (scored items).
    "song": `song_accuracy`, `song_macro_f1`, `song_count` (songs).
"""


def macro_f1(references: np.ndarray, predictions: np.ndarray) -> float:
    classes = np.union1d(references, predictions)
    if classes.size == 0:
        return 0.0
    scores = []
    for c in classes:
        true_pos = np.sum((predictions == c) & (references == c))
        predicted = np.sum(predictions == c)
        actual = np.sum(references == c)
        # F1 = 2TP / (predicted + actual); both are > 0 for at least one of them since c occurs somewhere.
        scores.append(2.0 * true_pos / (predicted + actual))
    return float(np.mean(scores))


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Classification(evaluate.Metric):
    def _info(self):
        if self.config_name == "song":
            features = datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("float32")),
                    "references": datasets.Value("int64"),
                    "song_ids": datasets.Value("string"),
                }
            )
        else:
            features = datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            )
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=features,
        )

    def _compute(self, predictions, references, song_ids=None, ignore_index=-100):
        references = np.asarray(references, dtype=np.int64)
        if self.config_name == "song":
            return self._compute_songs(predictions, references, song_ids)
        predictions = np.asarray(predictions, dtype=np.int64)
        keep = references != ignore_index
        references, predictions = references[keep], predictions[keep]
        accuracy = float(np.mean(predictions == references)) if references.size else 0.0
        return {"accuracy": accuracy, "macro_f1": macro_f1(references, predictions), "count": int(references.size)}

    @staticmethod
    def _compute_songs(window_logits, references, song_ids):
        order = {}
        for song in song_ids:
            order.setdefault(song, len(order))
        index = np.fromiter((order[s] for s in song_ids), dtype=np.int64, count=len(song_ids))
        logits = np.asarray(window_logits, dtype=np.float64)
        sums = np.zeros((len(order), logits.shape[1]))
        np.add.at(sums, index, logits)
        counts = np.bincount(index, minlength=len(order))[:, None]
        song_predictions = np.argmax(sums / counts, axis=1)
        song_references = np.full(len(order), -1, dtype=np.int64)
        song_references[index] = references
        if np.any(song_references[index] != references):
            raise ValueError("windows of the same song carry different labels")
        accuracy = float(np.mean(song_predictions == song_references)) if len(order) else 0.0
        return {
            "song_accuracy": accuracy,
            "song_macro_f1": macro_f1(song_references, song_predictions),
            "song_count": len(order),
        }
