"""Transformers pipelines for Adversarial-MidiBERT checkpoints: one label per piece or per note (fine-tuned
classifiers), and one vector per piece or per note (any checkpoint).

Hub code: imports only the standard library, numpy, torch and transformers, so that it can be copied beside the
weights (`register_pipelines`) and loaded from there with `trust_remote_code=True`:

    >>> from transformers import pipeline
    >>> classify = pipeline("midi-classification", model="runs/my_task", trust_remote_code=True)   # doctest: +SKIP
    >>> classify("song.mid")                                                                        # doctest: +SKIP
    {'label': 'Q1', 'score': 0.71, 'probabilities': {'Q1': 0.71, ...}, 'num_windows': 3}
    >>> notes = pipeline("midi-note-classification", model="runs/mel", trust_remote_code=True)     # doctest: +SKIP
    >>> notes("song.mid")[0]                                                                        # doctest: +SKIP
    {'index': 0, 'track_index': 0, 'note_index': 0, 'start_tick': 0, 'pitch': 67, 'label': 'melody', 'score': 0.9}
    >>> embed = pipeline("midi-feature-extraction", model="runs/pretrain", trust_remote_code=True)  # doctest: +SKIP
    >>> embed("song.mid")["embedding"].shape                                                        # doctest: +SKIP
    (128,)

The results are those of `adversarial_midibert.inference.MidiPredictor` (same windows, same batching, same
aggregation): a piece is cut into windows by the checkpoint's tokenizer; a sequence classifier's probabilities are
the softmax of the mean of its windows' logits; a note classifier's windows overlap by a quarter of a window by
default and a note seen by several windows gets the mean of their logits. Since each checkpoint records only the
task of its own head in `config.custom_pipelines`, `pipeline(model=folder, trust_remote_code=True)` also works
without naming the task.

Embeddings (`midi-feature-extraction`, `MidiPredictor.embed`) come from the backbone of whatever head the checkpoint
holds (a classifier's own pooling and classifier are not used): a note's vector is the backbone's last hidden state
at that note (the mean over the windows that hold it), a window's vector the mean over its notes (BOS/EOS excluded),
and a piece's vector the mean of its windows' vectors weighted by their notes. Attributes a fine-tuned checkpoint
hides from its input (`config.hidden_attributes`, e.g. velocity) are hidden here too. Pre-training checkpoints
record this task in `config.custom_pipelines` (`register_pipelines`); importing this module also registers it with
transformers, so that `pipeline("midi-feature-extraction", model=any_checkpoint, trust_remote_code=True)` works on
fine-tuned checkpoints too.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import torch
from transformers import Pipeline

SEQUENCE_TASK = "midi-classification"
NOTE_TASK = "midi-note-classification"
FEATURE_TASK = "midi-feature-extraction"
EMBEDDING_LEVELS = ("piece", "note")
DEFAULT_WINDOW_BATCH_SIZE = 16


def read_piece(tokenizer, midi, stride: int):
    """Parse a piece and cut it into windows: `(score, song, spans)` (`tokenizer.load_score`, `encode_song`,
    `window_spans`)."""
    score = tokenizer.load_score(midi)
    song = tokenizer.encode_song(score, name=str(midi) if isinstance(midi, (str, os.PathLike)) else None)
    return score, song, tokenizer.window_spans(song, stride=stride)


def _window_batches(tokenizer, song, spans, batch_size: int, device):
    """`(spans of the batch, input_ids, attention_mask)` for every `batch_size` windows of `song`, PAD rows after
    EOS as the training collator pads."""
    pad_ids = np.asarray(tokenizer.pad_ids, dtype=np.int64)
    for first in range(0, len(spans), batch_size):
        chunk = spans[first:first + batch_size]
        windows = [np.asarray(tokenizer.window_ids(song, s, e), dtype=np.int64) for s, e in chunk]
        length = max(len(w) for w in windows)
        input_ids = np.empty((len(windows), length, len(pad_ids)), dtype=np.int64)
        input_ids[:] = pad_ids
        attention_mask = np.zeros((len(windows), length), dtype=np.int64)
        for b, window in enumerate(windows):
            input_ids[b, :len(window)] = window
            attention_mask[b, :len(window)] = 1
        yield chunk, torch.from_numpy(input_ids).to(device), torch.from_numpy(attention_mask).to(device)


@torch.no_grad()
def window_logits(model, tokenizer, song, spans, note_level: bool, batch_size: int = DEFAULT_WINDOW_BATCH_SIZE,
                  device=None) -> list:
    """The model's logits on every window of `song`, `batch_size` windows per forward pass (PAD rows after EOS,
    as the training collator pads): one `(num_labels,)` row per window, or with `note_level` one
    `(notes in the window, num_labels)` array per window (BOS and EOS dropped)."""
    device = device if device is not None else next(model.parameters()).device
    out = []
    for chunk, input_ids, attention_mask in _window_batches(tokenizer, song, spans, batch_size, device):
        logits = model(input_ids=input_ids, attention_mask=attention_mask).logits.float().cpu().numpy()
        if note_level:
            # Row 0 is BOS; the window's notes follow in order.
            out.extend(logits[b, 1:1 + e - s] for b, (s, e) in enumerate(chunk))
        else:
            out.extend(logits)
    return out


@torch.no_grad()
def window_states(model, tokenizer, song, spans, batch_size: int = DEFAULT_WINDOW_BATCH_SIZE, device=None,
                  layer: int | None = None) -> list:
    """The backbone's last hidden state (or layer `layer`'s output: 0 = the embeddings, -1 = the last layer) at
    every note of every window of `song`: one `(notes in the window, hidden_size)` float32 array per window (BOS
    and EOS dropped).

    `model` may be any head (its `midibert` backbone is used) or the bare backbone; the attributes named in
    `config.hidden_attributes` are set to MASK on the notes, as the classification heads do."""
    device = device if device is not None else next(model.parameters()).device
    backbone = getattr(model, "midibert", model)
    config = model.config
    hidden = [tokenizer.ATTRIBUTES.index(name) for name in getattr(config, "hidden_attributes", None) or []]
    out = []
    for chunk, input_ids, attention_mask in _window_batches(tokenizer, song, spans, batch_size, device):
        for j in hidden:
            for b, (s, e) in enumerate(chunk):
                input_ids[b, 1:1 + e - s, j] = config.mask_token_ids[j]
        outputs = backbone(input_ids=input_ids, attention_mask=attention_mask, return_dict=True,
                           output_hidden_states=layer is not None)
        states = outputs.last_hidden_state if layer is None else outputs.hidden_states[layer]
        states = states.float().cpu().numpy()
        out.extend(states[b, 1:1 + e - s] for b, (s, e) in enumerate(chunk))
    return out


def embedding(song, spans, states_per_window: list, level: str = "piece") -> np.ndarray:
    """Vectors of a piece from its windows' note states (`window_states`), as float32.

    Args:
        song (`OctupleSong`): the tokenized piece.
        spans (`list[tuple[int, int]]`): its windows, as given to `window_states`.
        states_per_window (`list[np.ndarray]`): `window_states(...)`.
        level (`str`, *optional*, defaults to `"piece"`): `"piece"`: one `(hidden_size,)` vector, the mean of the
            windows' vectors (each the mean over its notes) weighted by the windows' notes; `"note"`: one
            `(n_notes, hidden_size)` row per note, the mean over the windows that hold it, in the order of the
            parsed score (`score.tracks[0].notes[0]`, `[0].notes[1]`, ..., then the next track).
    """
    if level == "piece":
        # The notes-weighted mean of per-window means is the mean over every (window, note) row.
        return np.concatenate(states_per_window).mean(0, dtype=np.float64).astype(np.float32)
    if level == "note":
        sorted_rows = note_mean_logits(len(song.track_index), spans, states_per_window)
        score_order = np.lexsort((song.note_index, song.track_index))
        return sorted_rows[score_order].astype(np.float32)
    raise ValueError(f"level must be one of {EMBEDDING_LEVELS}, got {level!r}")


def piece_result(logits_per_window: list, id2label: dict) -> dict:
    """One label for a piece: the softmax of the mean of its windows' logits, as a `dict` with `label`, `score`,
    `probabilities` (every label) and `num_windows`."""
    mean_logits = np.mean(np.stack(logits_per_window), axis=0)
    probabilities = torch.softmax(torch.from_numpy(mean_logits), dim=-1).numpy()
    best = int(probabilities.argmax())
    return {
        "label": id2label[best],
        "score": float(probabilities[best]),
        "probabilities": {id2label[i]: float(p) for i, p in enumerate(probabilities)},
        "num_windows": len(logits_per_window),
    }


def note_mean_logits(num_notes: int, spans, logits_per_window: list) -> np.ndarray:
    """`(num_notes, num_labels)`: each note's mean logits (or any per-note rows) over the overlapping windows that
    hold it."""
    sums = np.zeros((num_notes, logits_per_window[0].shape[-1]))
    counts = np.zeros((num_notes, 1))
    for (start, end), logits in zip(spans, logits_per_window):
        sums[start:end] += logits
        counts[start:end] += 1
    return sums / counts


class _MidiWindowsPipeline(Pipeline):
    """Shared part: parse a piece, cut it into windows, run the model on batches of windows.

    Call arguments (also accepted by `pipeline(...)`):
        stride (`int`, *optional*): notes shared by consecutive windows (default: the tokenizer's for a sequence
            classifier, a quarter of a window for a note classifier).
        window_batch_size (`int`, *optional*, defaults to 16): windows per forward pass.

    Inputs: a path (`str` / `os.PathLike`), MIDI `bytes`, a `pretty_midi.PrettyMIDI` or a `symusic.Score`, or a
    list of those (one result per piece).
    """

    _load_tokenizer = True
    _load_processor = False
    _load_image_processor = False
    _load_video_processor = False
    _load_feature_extractor = False
    is_token_task = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.tokenizer is None:
            raise ValueError("this pipeline needs the checkpoint's OctupleTokenizer (tokenizer_config.json beside "
                             "the weights)")
        self.model.eval()  # mask fine-tuning only acts in training mode
        self.id2label = {int(k): v for k, v in self.model.config.id2label.items()}

    def _sanitize_parameters(self, stride=None, window_batch_size=None, **kwargs):
        if kwargs:
            raise TypeError(f"unexpected arguments: {', '.join(sorted(kwargs))}")
        preprocess = {} if stride is None else {"stride": int(stride)}
        forward = {} if window_batch_size is None else {"window_batch_size": int(window_batch_size)}
        return preprocess, forward, {}

    def _default_stride(self) -> int:
        return (self.tokenizer.max_length - 2) // 4 if self.is_token_task else self.tokenizer.stride

    def preprocess(self, midi, stride=None):
        score, song, spans = read_piece(self.tokenizer, midi, self._default_stride() if stride is None else stride)
        return {"score": score, "song": song, "spans": spans}

    def _forward(self, model_inputs, window_batch_size=DEFAULT_WINDOW_BATCH_SIZE):
        logits = window_logits(self.model, self.tokenizer, model_inputs["song"], model_inputs["spans"],
                               self.is_token_task, window_batch_size, self.device)
        return {**model_inputs, "window_logits": logits}

    def get_iterator(self, inputs, num_workers, batch_size, preprocess_params, forward_params, postprocess_params):
        # One piece per step: its windows are batched inside `_forward` (`window_batch_size`), and the default
        # padding collator of lists of pieces does not know Octuple ids.
        return super().get_iterator(inputs, num_workers, 1, preprocess_params, forward_params, postprocess_params)

    def save_pretrained(self, save_directory, **kwargs):
        """Save the model and tokenizer, plus this file and `config.custom_pipelines`, so that the folder loads
        back with `pipeline(..., trust_remote_code=True)`."""
        register_pipelines(self.model)
        super().save_pretrained(save_directory, **kwargs)
        _copy_this_file(save_directory)


class MidiClassificationPipeline(_MidiWindowsPipeline):
    """One label for a whole piece: the argmax of the softmax of the mean of its windows' logits.

    Returns (per piece) a `dict` with `label` (`str`), `score` (its probability), `probabilities`
    (`dict[str, float]`, every label) and `num_windows` (`int`), as `MidiPredictor.classify`.
    """

    is_token_task = False

    def postprocess(self, model_outputs):
        return piece_result(model_outputs["window_logits"], self.id2label)


class MidiNoteClassificationPipeline(_MidiWindowsPipeline):
    """One label per note (melody / bridge / accompaniment, a velocity bin...), as `MidiPredictor.note_predictions`.

    Returns (per piece) a `list` with one `dict` per note in the tokenizer's sorted note order: `index` (position in
    that order), `track_index` / `note_index` (the note in the parsed score: `score.tracks[t].notes[n]`),
    `start_tick` and `pitch` (of that note), `label` (`str`) and `score` (its probability, from the mean logits).
    """

    is_token_task = True

    def postprocess(self, model_outputs):
        song = model_outputs["song"]
        n_notes = len(song.track_index)
        logits = note_mean_logits(n_notes, model_outputs["spans"], model_outputs["window_logits"])
        labels = logits.argmax(-1)
        probabilities = torch.softmax(torch.from_numpy(logits), dim=-1).numpy()
        score = model_outputs["score"]
        start_tick = np.zeros(n_notes, dtype=np.int64)
        pitch = np.zeros(n_notes, dtype=np.int64)
        for t in np.unique(song.track_index).tolist():
            here = song.track_index == t
            notes = score.tracks[t].notes.numpy()
            start_tick[here] = notes["time"][song.note_index[here]]
            pitch[here] = notes["pitch"][song.note_index[here]]
        return [
            {"index": i, "track_index": int(song.track_index[i]), "note_index": int(song.note_index[i]),
             "start_tick": int(start_tick[i]), "pitch": int(pitch[i]), "label": self.id2label[int(labels[i])],
             "score": float(probabilities[i, labels[i]])}
            for i in range(n_notes)
        ]


class MidiFeatureExtractionPipeline(_MidiWindowsPipeline):
    """One vector per piece, or one per note, from the backbone of any checkpoint (pre-trained or fine-tuned), as
    `MidiPredictor.embed`.

    Call arguments (also accepted by `pipeline(...)`), besides `stride` and `window_batch_size`:
        level (`str`, *optional*, defaults to `"piece"`): `"piece"` or `"note"` (see `embedding`).

    Returns (per piece) a `dict` with `embedding` (`np.ndarray` float32: `(hidden_size,)` for a piece, `(n_notes,
    hidden_size)` for notes, in the parsed score's note order), `num_windows` and `num_notes` (`int`).
    """

    is_token_task = False

    def _sanitize_parameters(self, level=None, **kwargs):
        preprocess, forward, postprocess = super()._sanitize_parameters(**kwargs)
        if level is not None:
            if level not in EMBEDDING_LEVELS:
                raise ValueError(f"level must be one of {EMBEDDING_LEVELS}, got {level!r}")
            postprocess["level"] = level
        return preprocess, forward, postprocess

    def _forward(self, model_inputs, window_batch_size=DEFAULT_WINDOW_BATCH_SIZE):
        states = window_states(self.model, self.tokenizer, model_inputs["song"], model_inputs["spans"],
                               window_batch_size, self.device)
        return {**model_inputs, "window_states": states}

    def postprocess(self, model_outputs, level="piece"):
        song, spans = model_outputs["song"], model_outputs["spans"]
        return {"embedding": embedding(song, spans, model_outputs["window_states"], level),
                "num_windows": len(spans), "num_notes": len(song.track_index)}


PIPELINES = {
    SEQUENCE_TASK: (MidiClassificationPipeline, "AutoModelForSequenceClassification"),
    NOTE_TASK: (MidiNoteClassificationPipeline, "AutoModelForTokenClassification"),
    FEATURE_TASK: (MidiFeatureExtractionPipeline, "AutoModel"),
}


def _copy_this_file(save_directory) -> str:
    os.makedirs(save_directory, exist_ok=True)
    target = os.path.join(save_directory, Path(__file__).name)
    if os.path.abspath(__file__) != os.path.abspath(target):
        shutil.copyfile(__file__, target)
    return target


def register_pipelines(model, save_directory: str | os.PathLike | None = None) -> str:
    """Record the pipeline of a model's head in `model.config.custom_pipelines` (saved with the config) and, with
    `save_directory`, copy this file there. Call it before `save_pretrained` / `save_model`.

    Args:
        model: an `AdversarialMidiBertForSequenceClassification` or `...ForTokenClassification` (their label
            pipeline), or an `...ForPreTraining` / bare `...Model` (`midi-feature-extraction`).
        save_directory (`str` or `os.PathLike`, *optional*): the checkpoint folder to copy this file into.

    Returns:
        `str`: the task name, "midi-classification", "midi-note-classification" or "midi-feature-extraction".

    Example:

    ```python
    >>> register_pipelines(model, "runs/my_task")          # doctest: +SKIP
    'midi-classification'
    >>> model.save_pretrained("runs/my_task")              # doctest: +SKIP
    ```
    """
    name = type(model).__name__
    if "TokenClassification" in name:
        task = NOTE_TASK
    elif "SequenceClassification" in name:
        task = SEQUENCE_TASK
    elif name.endswith(("ForPreTraining", "Model")):
        task = FEATURE_TASK
    else:
        raise ValueError(f"{name} is not a head with a MIDI pipeline")
    pipeline_class, auto_class = PIPELINES[task]
    # Only this head's task: `pipeline(model=folder)` then infers it, and no task loads the wrong head.
    model.config.custom_pipelines = {
        task: {"impl": f"{Path(__file__).stem}.{pipeline_class.__name__}", "pt": [auto_class]}
    }
    if save_directory is not None:
        _copy_this_file(save_directory)
    return task


def _register_feature_extraction() -> None:
    """Make `midi-feature-extraction` a task transformers knows in this process, for checkpoints whose config does
    not record it (fine-tuned ones record only their head's task, so that naming the task stays optional there)."""
    from transformers import AutoModel
    from transformers.pipelines import PIPELINE_REGISTRY

    if FEATURE_TASK not in PIPELINE_REGISTRY.supported_tasks:
        PIPELINE_REGISTRY.register_pipeline(FEATURE_TASK, pipeline_class=MidiFeatureExtractionPipeline, pt_model=AutoModel)


_register_feature_extraction()

__all__ = ["MidiClassificationPipeline", "MidiNoteClassificationPipeline", "MidiFeatureExtractionPipeline",
           "register_pipelines", "window_states", "embedding", "SEQUENCE_TASK", "NOTE_TASK", "FEATURE_TASK"]
