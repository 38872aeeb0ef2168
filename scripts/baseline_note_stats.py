"""Non-neural baselines for the four fine-tuning tasks, on exactly the songs and windows fine-tuning uses.

Two baselines per task, fitted on the task's training split and scored on its dev split:
- the majority class of the training windows (sequence tasks) or notes (token tasks);
- a logistic regression on note statistics (no network):
  sequence tasks, per window: pitch-class histogram, interval histogram, pitch range / mean / spread, note
  density (notes per bar, notes per onset), duration histogram and mean, mean velocity, tempo;
  token tasks, per note: pitch, its rank from the top and bottom of its onset chord, chord size, pitch relative
  to the neighbouring notes, duration, position in the bar, instrument, local density (never the velocity
  for the velocity task: that is the label).
Sequence tasks are scored per window and per song (mean of the song's window decision values), like the model.

Run (the windows are cut as fine-tuning cuts them: same max_length, stride 0; subsets as in finetune.py):

    python scripts/baseline_note_stats.py --recipe emotion --max_length 512
    python scripts/baseline_note_stats.py --recipe melody --max_train_songs 200 --output runs/baseline_melody.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from adversarial_midibert.metrics import load_metric
from adversarial_midibert.tasks import SEQUENCE, TaskData, load_recipe, subsample_groups
from tokenization_octuple import MidiError, OctupleTokenizer

BAR, POSITION, INSTRUMENT, PITCH, DURATION, VELOCITY, TIME_SIGNATURE, TEMPO = range(8)


def window_features(ids: np.ndarray) -> np.ndarray:
    """Note statistics of one window's notes, `(n_notes, 8)` ids -> a fixed-length vector."""
    melodic = ids[ids[:, PITCH] < 128]
    pitch = melodic[:, PITCH].astype(float) if len(melodic) else np.zeros(1)
    pitch_classes = np.bincount(melodic[:, PITCH] % 12, minlength=12) / max(len(melodic), 1)
    intervals = np.clip(np.diff(melodic[:, PITCH]), -12, 12) + 12 if len(melodic) > 1 else np.zeros(0, int)
    interval_hist = np.bincount(intervals, minlength=25) / max(len(intervals), 1)
    duration_group = ids[:, DURATION] // 16
    duration_hist = np.bincount(duration_group, minlength=8) / len(ids)
    onsets = len(np.unique(ids[:, BAR] * 1024 + ids[:, POSITION]))
    bars = int(ids[:, BAR].max() - ids[:, BAR].min()) + 1
    scalars = [
        pitch.min() / 127, pitch.max() / 127, (pitch.max() - pitch.min()) / 127, pitch.mean() / 127, pitch.std() / 12,
        np.log(len(ids) / bars), np.log(len(ids) / onsets), ids[:, DURATION].mean() / 127,
        ids[:, VELOCITY].mean() / 31, ids[:, TEMPO].mean() / 48, float(np.any(ids[:, INSTRUMENT] == 128)),
    ]
    return np.concatenate([pitch_classes, interval_hist, duration_hist, scalars])


def note_features(ids: np.ndarray) -> np.ndarray:
    """Per-note statistics of a whole song's sorted notes, `(n_notes, 8)` -> `(n_notes, n_features)`.

    The velocity column is never read: it is the velocity task's label.
    """
    n = len(ids)
    pitch = ids[:, PITCH].astype(float)
    onset_key = ids[:, BAR] * 1024 + ids[:, POSITION]
    _, onset_index, chord_size = np.unique(onset_key, return_inverse=True, return_counts=True)
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
    global_onset = ids[:, BAR] * 256 + ids[:, POSITION]  # monotone; only differences within a window matter
    span = np.abs(np.roll(global_onset, -16) - np.roll(global_onset, 16))[:, None]
    return np.column_stack([
        pitch / 127, (pitch - local_mean) / local_std, rank_from_top == 0, rank_from_bottom == 0,
        np.minimum(rank_from_top, 8) / 8, np.minimum(rank_from_bottom, 8) / 8, np.log(chord_size[onset_index]),
        ids[:, DURATION] / 127, (ids[:, DURATION] // 16) / 8, ids[:, POSITION] / 127,
        (ids[:, POSITION] % 16) == 0, ids[:, INSTRUMENT] / 128, ids[:, INSTRUMENT] == 128,
        np.log1p(span[:, 0]) / 10,
    ]).astype(float)


def encode(task: TaskData, sources, tokenizer: OctupleTokenizer, label2id: dict):
    """Features, labels and song ids for one split; unreadable files are counted, not fatal."""
    features, labels, songs, skipped = [], [], [], []
    for source in sources:
        try:
            song = tokenizer.encode_song(source.path if source.path else source.data, name=source.song_id)
        except MidiError as err:
            skipped.append(str(err))
            continue
        if task.level == SEQUENCE:
            for start, end in tokenizer.window_spans(song):
                window = tokenizer.window_ids(song, start, end)[1:-1]
                features.append(window_features(window))
                labels.append(label2id[str(source.label)])
                songs.append(source.song_id)
        else:
            note_labels = task.note_labeler(song, source)
            keep = note_labels != -100
            features.append(note_features(song.ids)[keep])
            labels.append(note_labels[keep])
            songs.extend([source.song_id] * int(keep.sum()))
    if task.level == SEQUENCE:
        return np.array(features), np.array(labels), songs, skipped
    return np.concatenate(features), np.concatenate(labels), songs, skipped


def score(task: TaskData, predictions: np.ndarray, decision: np.ndarray | None, labels, songs) -> dict:
    out = dict(load_metric("default").compute(predictions=predictions, references=labels))
    if task.level == SEQUENCE:
        logits = decision if decision is not None else np.eye(len(task.labels))[predictions]
        out.update(load_metric("song").compute(predictions=logits, references=labels, song_ids=songs))
    return out


def run(args) -> dict:
    task = load_recipe(args.recipe, args.data_root, seed=args.seed)
    train_sources = subsample_groups(task.train, args.max_train_songs, args.seed)
    eval_sources = subsample_groups(task.eval, args.max_eval_songs, args.seed)
    tokenizer = OctupleTokenizer(max_length=args.max_length)
    label2id = task.label2id
    start = time.time()
    x_train, y_train, _, skipped_train = encode(task, train_sources, tokenizer, label2id)
    x_dev, y_dev, dev_songs, skipped_dev = encode(task, eval_sources, tokenizer, label2id)
    if task.level != SEQUENCE and len(x_train) > args.max_train_notes:
        # Logistic regression on a million notes adds little over a seeded subsample of them.
        keep = np.random.default_rng(args.seed).choice(len(x_train), args.max_train_notes, replace=False)
        x_train, y_train = x_train[keep], y_train[keep]
    majority = int(np.bincount(y_train, minlength=len(task.labels)).argmax())
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=args.C))
    model.fit(x_train, y_train)
    decision = model.decision_function(x_dev)
    if decision.ndim == 1:  # two classes: scikit-learn returns one column
        decision = np.column_stack([-decision, decision])
    # A class absent from the training items cannot be predicted: a very low score, not -inf (song means).
    full = np.full((len(x_dev), len(task.labels)), -1e9)
    full[:, model.classes_] = decision
    result = {
        "recipe": args.recipe,
        "level": task.level,
        "labels": task.labels,
        "train_songs": len(train_sources) - len(skipped_train),
        "dev_songs": len(eval_sources) - len(skipped_dev),
        "train_items": int(len(y_train)),
        "dev_items": int(len(y_dev)),
        "skipped_files": skipped_train + skipped_dev,
        "max_length": args.max_length,
        "seed": args.seed,
        "majority_class": task.labels[majority],
        "majority": score(task, np.full(len(y_dev), majority), None, y_dev, dev_songs),
        "note_stats_logreg": score(task, full.argmax(1), full, y_dev, dev_songs),
        "seconds": round(time.time() - start, 1),
    }
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", required=True, help="composer, composer_music21, composer_pianist8, emotion, melody, velocity")
    parser.add_argument("--data_root", default=None, help="the shared corpora (default ../shared/data)")
    parser.add_argument("--max_length", type=int, default=512, help="tokens per window, BOS/EOS included")
    parser.add_argument("--max_train_songs", type=int, default=None)
    parser.add_argument("--max_eval_songs", type=int, default=None)
    parser.add_argument("--max_train_notes", type=int, default=300_000, help="token tasks: notes used to fit")
    parser.add_argument("--C", type=float, default=1.0, help="inverse L2 strength of the logistic regression")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--output", default=None, help="also write the result as JSON here")
    args = parser.parse_args(argv)
    result = run(args)
    text = json.dumps(result, indent=2)
    print(text)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
