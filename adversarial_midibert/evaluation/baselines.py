"""Non-neural baselines fitted on exactly the windows a fine-tuning run trains and scores on.

Every fine-tuning report carries two of them, so a user can tell whether the network learned anything a
histogram would not have:

- ``majority``: the most frequent class of the training windows (piece labels) or notes (note labels);
- ``note_statistics``: a logistic regression (scikit-learn, standardised features, ``class_weight="balanced"``
  like the network's default loss) on note statistics:
  piece labels, per window: pitch-class histogram, interval histogram, pitch range / mean / spread, note density
  (notes per bar, notes per onset), duration histogram and mean, mean velocity, tempo, drums present;
  note labels, per note: pitch, its rank from the top and bottom of its onset chord, chord size, pitch relative to
  the neighbouring notes, duration, position in the bar, instrument, local density.
  Attributes the model does not see (``config.hidden_attributes``: velocity for the velocity task, tempo for the
  melody task) are not read either, so both sides get the same information.

Both are scored with the same metric module as the model: ``accuracy`` / ``macro_f1`` / ``count`` per window or
note and, for piece labels, ``song_accuracy`` / ``song_macro_f1`` / ``song_count`` (mean of a song's window
decision values, like the model's mean of window logits). `scripts/baseline_note_stats.py` runs the same code on
the paper's recipes without training a network.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from adversarial_midibert.evaluation.metrics import load_metric

BAR, POSITION, INSTRUMENT, PITCH, DURATION, VELOCITY, TIME_SIGNATURE, TEMPO = range(8)
SEQUENCE = "sequence"


def window_features(ids: np.ndarray, hidden_attributes: Sequence[str] = ()) -> np.ndarray:
    """Note statistics of one window's notes, `(n_notes, 8)` ids (no BOS/EOS/PAD) -> a fixed-length vector."""
    ids = np.asarray(ids, dtype=np.int64)
    melodic = ids[ids[:, PITCH] < 128]
    pitch = melodic[:, PITCH].astype(float) if len(melodic) else np.zeros(1)
    pitch_classes = np.bincount(melodic[:, PITCH] % 12, minlength=12) / max(len(melodic), 1)
    intervals = np.clip(np.diff(melodic[:, PITCH]), -12, 12) + 12 if len(melodic) > 1 else np.zeros(0, int)
    interval_hist = np.bincount(intervals, minlength=25) / max(len(intervals), 1)
    duration_hist = np.bincount(np.minimum(ids[:, DURATION] // 16, 7), minlength=8) / len(ids)
    onsets = len(np.unique(ids[:, BAR] * 1024 + ids[:, POSITION]))
    bars = int(ids[:, BAR].max() - ids[:, BAR].min()) + 1
    scalars = [
        pitch.min() / 127, pitch.max() / 127, (pitch.max() - pitch.min()) / 127, pitch.mean() / 127, pitch.std() / 12,
        np.log(len(ids) / bars), np.log(len(ids) / onsets), ids[:, DURATION].mean() / 127,
        float(np.any(ids[:, INSTRUMENT] == 128)),
    ]
    if "velocity" not in hidden_attributes:
        scalars.append(ids[:, VELOCITY].mean() / 31)
    if "tempo" not in hidden_attributes:
        scalars.append(ids[:, TEMPO].mean() / 48)
    return np.concatenate([pitch_classes, interval_hist, duration_hist, scalars])


def note_features(ids: np.ndarray) -> np.ndarray:
    """Per-note statistics of sorted notes, `(n_notes, 8)` -> `(n_notes, 14)`.

    Velocity, time signature and tempo are never read (the velocity task's label; meter and tempo are dataset
    artefacts for track roles).
    """
    ids = np.asarray(ids, dtype=np.int64)
    n = len(ids)
    pitch = ids[:, PITCH].astype(float)
    onset_key = ids[:, BAR] * 1024 + ids[:, POSITION]
    _, onset_index, chord_size = np.unique(onset_key, return_inverse=True, return_counts=True)
    onset_index = onset_index.reshape(-1)
    # Rank inside the chord: notes are sorted by (bar, position, instrument, pitch), so sort each chord by pitch.
    order = np.lexsort((-pitch, onset_index))
    first = np.searchsorted(onset_index[order], onset_index[order])
    rank_from_top = np.empty(n)
    rank_from_top[order] = np.arange(n) - first
    rank_from_bottom = chord_size[onset_index] - 1 - rank_from_top
    kernel = np.ones(33) / 33
    padded = np.pad(pitch, 16, mode="edge")
    local_mean = np.convolve(padded, kernel, mode="valid")
    local_sq = np.convolve(padded ** 2, kernel, mode="valid")
    local_std = np.sqrt(np.maximum(local_sq - local_mean ** 2, 0)) + 1
    global_onset = ids[:, BAR] * 256 + ids[:, POSITION]  # monotone inside a window; only differences matter
    span = np.abs(np.roll(global_onset, -16) - np.roll(global_onset, 16))
    return np.column_stack([
        pitch / 127, (pitch - local_mean) / local_std, rank_from_top == 0, rank_from_bottom == 0,
        np.minimum(rank_from_top, 8) / 8, np.minimum(rank_from_bottom, 8) / 8, np.log(chord_size[onset_index]),
        ids[:, DURATION] / 127, (ids[:, DURATION] // 16) / 8, ids[:, POSITION] / 127,
        (ids[:, POSITION] % 16) == 0, ids[:, INSTRUMENT] / 128, ids[:, INSTRUMENT] == 128, np.log1p(span) / 10,
    ]).astype(float)


def window_table(windows, level: str, hidden_attributes: Sequence[str] = ()):
    """Features, labels and song ids of a window dataset as `build_split` returns it (columns ``input_ids`` and
    ``labels`` or ``note_labels``; ``song_ids`` is passed separately by the caller).

    Returns ``(x, y, row_window)``: for piece labels one row per window, for note labels one row per labelled
    note, with the index of the window it came from.
    """
    features, labels, row_window = [], [], []
    label_column = "labels" if level == SEQUENCE else "note_labels"
    for i, (ids, label) in enumerate(zip(windows["input_ids"], windows[label_column])):
        notes = np.asarray(ids, dtype=np.int64)[1:-1]  # BOS ... EOS, never padded in the dataset
        if len(notes) == 0:
            continue
        if level == SEQUENCE:
            features.append(window_features(notes, hidden_attributes))
            labels.append(int(label))
            row_window.append(i)
        else:
            note_labels = np.asarray(label, dtype=np.int64)[1:-1]
            keep = note_labels != -100
            if keep.any():
                features.append(note_features(notes)[keep])
                labels.append(note_labels[keep])
                row_window.extend([i] * int(keep.sum()))
    if level == SEQUENCE:
        return np.array(features, dtype=float), np.array(labels, dtype=np.int64), np.array(row_window, dtype=np.int64)
    if not features:
        return np.zeros((0, 14)), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(features), np.concatenate(labels), np.array(row_window, dtype=np.int64)


def score(level: str, predictions: np.ndarray, decision: np.ndarray, labels: np.ndarray, songs) -> dict:
    """The model's metric keys for one baseline's dev predictions."""
    out = dict(load_metric("default").compute(predictions=predictions, references=labels))
    if level == SEQUENCE:
        out.update(load_metric("song").compute(predictions=decision, references=labels, song_ids=list(songs)))
    return out


def fit_baselines(
    train_windows,
    eval_windows,
    eval_song_ids: Sequence[str],
    level: str,
    num_labels: int,
    hidden_attributes: Sequence[str] = (),
    max_train_items: int = 200_000,
    seed: int = 42,
    C: float = 1.0,
) -> dict:
    """Fit the majority class and the note-statistics logistic regression on `train_windows`, score them on
    `eval_windows` (the very datasets the model trains and is evaluated on).

    Args:
        train_windows, eval_windows (`datasets.Dataset`): windows with ``input_ids`` and ``labels`` (piece labels)
            or ``note_labels`` (note labels), as `adversarial_midibert.finetuning.inputs.build_split` makes them.
        eval_song_ids (`Sequence[str]`): the song of each eval window (song-level scores).
        level (`str`): ``"sequence"`` or ``"token"``.
        num_labels (`int`): number of classes.
        hidden_attributes (`Sequence[str]`, *optional*): attributes the model does not see; not read here either.
        max_train_items (`int`, *optional*, defaults to 200000): fit on a seeded subsample of at most this many
            training rows (notes of a large note-label set; adds little and costs minutes).

    Returns:
        `dict`: ``majority`` and ``note_statistics`` (each with the model's metric keys), ``majority_class`` (id),
        ``dev_songs`` (the scored songs, in order) and ``train_items`` / ``dev_items``.

    Example:

    ```python
    >>> baselines = fit_baselines(train_ds, eval_ds, eval_song_ids, "sequence", num_labels=4)  # doctest: +SKIP
    >>> baselines["majority"]["macro_f1"], baselines["note_statistics"]["song_accuracy"]        # doctest: +SKIP
    ```
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x_train, y_train, _ = window_table(train_windows, level, hidden_attributes)
    x_dev, y_dev, dev_rows = window_table(eval_windows, level, hidden_attributes)
    songs = [eval_song_ids[i] for i in dev_rows]
    if len(x_train) > max_train_items:
        keep = np.random.default_rng(seed).choice(len(x_train), max_train_items, replace=False)
        x_train, y_train = x_train[keep], y_train[keep]
    counts = np.bincount(y_train, minlength=num_labels)
    majority = int(counts.argmax())
    one_hot = np.eye(num_labels)[np.full(len(y_dev), majority)]
    result = {
        "majority_class": majority,
        "train_items": int(len(y_train)),
        "dev_items": int(len(y_dev)),
        "dev_songs": list(dict.fromkeys(songs)),
        "majority": score(level, np.full(len(y_dev), majority), one_hot, y_dev, songs),
    }
    present = np.flatnonzero(counts)
    if len(present) < 2:  # nothing to regress on: the regression is the majority class
        result["note_statistics"] = dict(result["majority"])
        return result
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, C=C, class_weight="balanced"))
    model.fit(x_train, y_train)
    decision = model.decision_function(x_dev)
    if decision.ndim == 1:  # two classes: scikit-learn returns one column
        decision = np.column_stack([-decision, decision])
    # A class absent from the training rows cannot be predicted: a very low score, not -inf (song means).
    full = np.full((len(x_dev), num_labels), -1e9)
    full[:, model.classes_] = decision
    result["note_statistics"] = score(level, full.argmax(1), full, y_dev, songs)
    return result
