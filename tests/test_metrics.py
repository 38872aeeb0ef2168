"""The shipped evaluate module (accuracy, macro-F1, song level), the Trainer compute_metrics, confusion matrices."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import accuracy_score, f1_score
from transformers import EvalPrediction

from adversarial_midibert.evaluation.metrics import (
    ClassificationMetrics,
    confusion_matrix,
    load_metric,
    save_confusion_matrix,
)


@pytest.fixture(scope="module")
def metric():
    return load_metric("default")


@pytest.fixture(scope="module")
def song_metric():
    return load_metric("song")


pairs = st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4)), min_size=1, max_size=60)


@settings(max_examples=40, deadline=None)
@given(pairs)
def test_matches_scikit_learn(metric, items):
    refs, preds = zip(*items)
    out = metric.compute(predictions=list(preds), references=list(refs))
    assert out["accuracy"] == pytest.approx(accuracy_score(refs, preds))
    assert out["macro_f1"] == pytest.approx(f1_score(refs, preds, average="macro"))
    assert out["count"] == len(refs)


def test_ignore_index_is_not_scored(metric):
    # Padding / masked notes carry -100: whatever is predicted there must not change the numbers.
    out = metric.compute(predictions=[1, 0, 2, 2], references=[1, -100, -100, 0])
    assert out == {"accuracy": 0.5, "macro_f1": pytest.approx(f1_score([1, 0], [1, 2], average="macro")), "count": 2}


def test_song_level_averages_logits_not_votes(song_metric):
    # Two weak windows vote class 0, one confident window says class 1: the mean of the logits picks 1.
    logits = [[0.6, 0.4], [0.6, 0.4], [0.0, 5.0], [3.0, 0.0]]
    out = song_metric.compute(predictions=logits, references=[1, 1, 1, 0], song_ids=["a", "a", "a", "b"])
    assert out == {"song_accuracy": 1.0, "song_macro_f1": 1.0, "song_count": 2}


def test_song_level_rejects_inconsistent_labels(song_metric):
    with pytest.raises(ValueError, match="different labels"):
        song_metric.compute(predictions=[[1.0, 0.0], [0.0, 1.0]], references=[0, 1], song_ids=["a", "a"])


def test_compute_metrics_sequence_reports_windows_and_songs():
    metrics = ClassificationMetrics("sequence", song_ids=["a", "a", "b", "c"])
    logits = np.array([[1.0, 0.0], [0.0, 3.0], [2.0, 0.0], [0.0, 1.0]])
    out = metrics(EvalPrediction(predictions=logits, label_ids=np.array([1, 1, 0, 0])))
    assert out["accuracy"] == 0.5 and out["count"] == 4
    assert out["song_accuracy"] == pytest.approx(2 / 3) and out["song_count"] == 3
    assert metrics.predictions.tolist() == [0, 1, 0, 1]


def test_compute_metrics_sequence_checks_alignment():
    metrics = ClassificationMetrics("sequence", song_ids=["a"])
    with pytest.raises(ValueError, match="song ids"):
        metrics(EvalPrediction(predictions=np.zeros((2, 2)), label_ids=np.array([0, 1])))


def test_compute_metrics_token_drops_padding():
    # Trainer pads token predictions and labels with -100 across batches of different lengths.
    predictions = np.array([[2, 1, -100], [0, 0, 0]])
    labels = np.array([[-100, 1, -100], [0, -100, 2]])
    metrics = ClassificationMetrics("token")
    out = metrics(EvalPrediction(predictions=predictions, label_ids=labels))
    assert out["count"] == 3 and out["accuracy"] == pytest.approx(2 / 3)
    assert metrics.references.tolist() == [1, 0, 2]


def test_confusion_matrix_counts():
    matrix = confusion_matrix([0, 1, 1, 2, 2, 2], [0, 0, 1, 2, 2, 1], num_labels=3)
    assert matrix.tolist() == [[1, 0, 0], [1, 1, 0], [0, 1, 2]]


def test_confusion_matrix_png(tmp_path):
    pytest.importorskip("matplotlib")
    path = save_confusion_matrix(np.array([[3, 1], [0, 0]]), ["bach", "chopin"], tmp_path / "cm.png", title="t")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
