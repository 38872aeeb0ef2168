"""Inference with Adversarial-MidiBERT models, from a local folder or a Hub id.

- `classify`: one label for a whole piece, with probabilities from the mean of its windows' logits (a long piece
  is covered whole, window by window).
- `extract_melody`: a MIDI file whose tracks are the predicted note roles (melody / bridge / accompaniment).
- `predict_velocities`: a MIDI file whose velocities are predicted from the score (input velocities hidden).
- `embed`: one vector per piece or per note from the backbone of any checkpoint, pre-trained or fine-tuned, or of
  `preset:<name>` (random weights, the control of a representation benchmark).

Outputs are written into the same `symusic.Score` the tokenizer read (`tokenizer.load_score`), through each
token's `track_index` / `note_index`, so every note keeps its exact ticks, pitch and duration; only the predicted
attribute or the track assignment changes. Windows may overlap (`stride`); a note seen by several windows gets
the mean of their logits.

    >>> from adversarial_midibert.inference.predictor import MidiPredictor
    >>> predictor = MidiPredictor.from_pretrained("runs/emotion")            # doctest: +SKIP
    >>> predictor.classify("song.mid")["label"]                            # doctest: +SKIP
    'Q1'
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import symusic
import torch

from adversarial_midibert.data.tasks import VelocityBinLabeler, labeler_from_dict
from adversarial_midibert.presets import resolve_model_name
from pipeline_adversarial_midibert import (
    embedding,
    note_mean_logits,
    piece_result,
    read_piece,
    window_logits,
    window_states,
)

PRESET_PREFIX = "preset:"


@dataclass
class NotePredictions:
    """Per-note predictions of a token-classification model for one piece.

    Attributes:
        score (`symusic.Score`): the parsed input (ticks); `song.track_index` / `song.note_index` point into it.
        song (`OctupleSong`): the tokenized piece, notes sorted.
        logits (`np.ndarray` of shape `(n_notes, num_labels)`): mean logits over the windows holding each note.
        labels (`np.ndarray` of shape `(n_notes,)`): predicted label ids.
    """

    score: symusic.Score
    song: object
    logits: np.ndarray
    labels: np.ndarray


class MidiPredictor:
    """A model and its tokenizer, ready to label MIDI files (fine-tuned classifiers) or embed them (any model).

    Args:
        model (`AdversarialMidiBertForSequenceClassification` or `...ForTokenClassification`): the fine-tuned model;
            any other head or the bare `AdversarialMidiBertModel` serves `embed` only.
        tokenizer (`OctupleTokenizer`): its tokenizer (window length).
        stride (`int`, *optional*): notes shared by consecutive windows. Defaults to the tokenizer's stride for
            classification and to a quarter of a window for note tasks (every note then gets context on both
            sides from some window).
        batch_size (`int`, *optional*, defaults to 16): windows per forward pass.
        device (`str` or `torch.device`, *optional*): defaults to CUDA when available.

    Example:

    ```python
    >>> predictor = MidiPredictor.from_pretrained("runs/mel")                      # doctest: +SKIP
    >>> score = predictor.extract_melody("song.mid", "song.melody.mid")            # doctest: +SKIP
    >>> [track.name for track in score.tracks]                                     # doctest: +SKIP
    ['melody', 'bridge', 'accompaniment']
    ```
    """

    def __init__(self, model, tokenizer, *, stride: int | None = None, batch_size: int = 16, device=None):
        self.device = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.is_token_task = "TokenClassification" in type(model).__name__
        self.is_classifier = "Classification" in type(model).__name__
        capacity = tokenizer.max_length - 2
        self.stride = stride if stride is not None else (capacity // 4 if self.is_token_task else tokenizer.stride)
        self.batch_size = batch_size
        config = model.config
        self.id2label = {int(k): v for k, v in config.id2label.items()}
        spec = getattr(config, "note_labeler", None)
        self.note_labeler = labeler_from_dict(spec) if spec else None

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, *, stride: int | None = None, batch_size: int = 16,
                        device=None, trust_remote_code: bool = False, **hub_kwargs) -> "MidiPredictor":
        """Load a fine-tuned model (folder or Hub id) and its tokenizer.

        By default this package's own classes load it and no Python file of the checkpoint runs, whatever its
        `config.json` `auto_map` names. With `trust_remote_code=True` the Auto classes load it with the code saved
        beside the weights (for a checkpoint whose code differs from this package's): only for sources you trust.

        Example:

        ```python
        >>> predictor = MidiPredictor.from_pretrained("me/adversarial-midibert-emotion")   # doctest: +SKIP
        ```
        """
        load = _load_with_checkpoint_code if trust_remote_code else _load_with_package_classes
        if str(name_or_path).startswith(PRESET_PREFIX):
            load = _load_preset
        model, tokenizer = load(resolve_model_name(name_or_path), **hub_kwargs)
        return cls(model, tokenizer, stride=stride, batch_size=batch_size, device=device)

    # ------------------------------------------------------------------ windows

    def _windows(self, midi):
        return read_piece(self.tokenizer, midi, self.stride)

    def _logits(self, song, spans):
        """Logits of every window: `(n_windows, num_labels)` or a list of `(n_notes_w, num_labels)`."""
        if not self.is_classifier:
            raise ValueError(f"{type(self.model).__name__} is not a fine-tuned classifier: fine-tune it first with "
                             "train/finetune.py (embed works on any checkpoint)")
        return window_logits(self.model, self.tokenizer, song, spans, self.is_token_task, self.batch_size, self.device)

    # ------------------------------------------------------------------ embeddings

    def embed_piece(self, midi, level: str = "piece") -> dict:
        """A piece's vector(s) with its window and note counts, as the `midi-feature-extraction` pipeline returns.

        Returns:
            `dict` with `embedding` (`np.ndarray`, see `embed`), `num_windows` and `num_notes` (`int`).
        """
        _, song, spans = self._windows(midi)
        states = window_states(self.model, self.tokenizer, song, spans, self.batch_size, self.device)
        return {"embedding": embedding(song, spans, states, level), "num_windows": len(spans),
                "num_notes": len(song.track_index)}

    def embed(self, inputs, level: str = "piece"):
        """Vectors from the checkpoint's backbone (a classifier's pooling and classifier are not used).

        Piece level: the mean of the last hidden state over each window's notes (BOS/EOS excluded), averaged over
        the piece's windows weighted by their notes. Note level: each note's last hidden state, the mean over the
        overlapping windows that hold it, in the order of the parsed score (track by track, each track's notes in
        order: row `k` is `symusic.Score(path).tracks[t].notes[i]` counted that way).

        Args:
            inputs: a piece (`str`, `os.PathLike`, `bytes`, `pretty_midi.PrettyMIDI` or `symusic.Score`) or a list.
            level (`str`, *optional*, defaults to `"piece"`): `"piece"` or `"note"`.

        Returns:
            float32 `np.ndarray`: for one piece `(hidden_size,)` (piece) or `(n_notes, hidden_size)` (note); for a
            list, `(n_pieces, hidden_size)` (piece) or a list of `(n_notes, hidden_size)` arrays (note).

        Example:

        ```python
        >>> predictor = MidiPredictor.from_pretrained("runs/pretrain")                  # doctest: +SKIP
        >>> predictor.embed(["a.mid", "b.mid"]).shape                                     # doctest: +SKIP
        (2, 128)
        >>> predictor.embed("a.mid", level="note").shape                                 # doctest: +SKIP
        (1744, 128)
        ```
        """
        if not isinstance(inputs, (list, tuple)):
            return self.embed_piece(inputs, level)["embedding"]
        vectors = [self.embed_piece(midi, level)["embedding"] for midi in inputs]
        return np.stack(vectors) if level == "piece" else vectors

    # ------------------------------------------------------------------ sequence tasks

    def classify(self, midi) -> dict:
        """Label a whole piece: the argmax of the mean of its windows' logits.

        Args:
            midi (`str`, `os.PathLike`, `bytes`, `pretty_midi.PrettyMIDI` or `symusic.Score`): the piece.

        Returns:
            `dict` with `label` (`str`), `score` (its probability), `probabilities` (`dict[str, float]`, all labels)
            and `num_windows` (`int`).

        Example:

        ```python
        >>> MidiPredictor.from_pretrained("runs/emotion").classify("song.mid")     # doctest: +SKIP
        {'label': 'Q1', 'score': 0.71, 'probabilities': {'Q1': 0.71, ...}, 'num_windows': 3}
        ```
        """
        if self.is_token_task:
            raise ValueError("this model labels notes; use extract_melody / predict_velocities / note_predictions")
        _, song, spans = self._windows(midi)
        return piece_result(self._logits(song, spans), self.id2label)

    # ------------------------------------------------------------------ token tasks

    def note_predictions(self, midi) -> NotePredictions:
        """Label every note of a piece (mean logits over the overlapping windows that hold it).

        Example:

        ```python
        >>> pred = MidiPredictor.from_pretrained("runs/mel").note_predictions("song.mid")   # doctest: +SKIP
        >>> pred.labels.shape == (len(pred.song),)                                          # doctest: +SKIP
        True
        ```
        """
        if not self.is_token_task:
            raise ValueError("this model labels whole pieces; use classify")
        score, song, spans = self._windows(midi)
        logits = note_mean_logits(len(song), spans, self._logits(song, spans))
        return NotePredictions(score=score, song=song, logits=logits, labels=logits.argmax(-1))

    def extract_melody(self, midi, output: str | os.PathLike | None = None) -> symusic.Score:
        """Rewrite a piece with its notes regrouped into tracks by predicted role (e.g. melody / bridge /
        accompaniment), in label-id order, each named after its label.

        Every non-drum note moves unchanged (ticks, pitch, duration, velocity) to a track of its predicted label.
        A label's notes that come from several source tracks stay in one output track per source track (named
        ``"<label>: <source track name>"``): merged, two same-pitch notes from different sources could overlap
        in one track, which a MIDI file cannot store without re-pairing their note-offs. A single-track piano
        file therefore gives exactly one track per label. Each source track's controllers, pedals and pitch
        bends go with its largest share of notes; drum tracks are kept as they are; labels with no note get no
        track.

        Args:
            midi: the piece (path, bytes, `pretty_midi.PrettyMIDI` or `symusic.Score`).
            output (`str` or `os.PathLike`, *optional*): also write the result to this MIDI file.

        Returns:
            `symusic.Score` (ticks).

        Example:

        ```python
        >>> extract_melody("runs/mel", "song.mid", "song.melody.mid")        # doctest: +SKIP
        ```
        """
        pred = self.note_predictions(midi)
        score, song = pred.score, pred.song
        melodic = ~np.asarray(song.track_is_drum, dtype=bool)[song.track_index]
        out_tracks, main_share = [], {}
        for k in range(len(self.id2label)):
            sources = np.unique(song.track_index[melodic & (pred.labels == k)])
            for t in sources.tolist():
                chosen = melodic & (pred.labels == k) & (song.track_index == t)
                source = score.tracks[t]
                name = str(self.id2label[k]) if len(sources) == 1 else f"{self.id2label[k]}: {source.name}"
                track = symusic.Track(name, int(source.program), False)
                track.notes = _gather_notes(score, song.track_index[chosen], song.note_index[chosen])
                out_tracks.append(track)
                count = int(chosen.sum())
                if count > main_share.get(t, (0, None))[0]:
                    main_share[t] = (count, track)
        for t, (_, track) in main_share.items():
            source = score.tracks[t]
            track.controls, track.pedals, track.pitch_bends = source.controls, source.pedals, source.pitch_bends
        out = score.copy()
        out.tracks = out_tracks + [track for track in out.tracks if track.is_drum]
        if output is not None:
            out.dump_midi(str(output))
        return out

    def predict_velocities(self, midi, output: str | os.PathLike | None = None) -> symusic.Score:
        """Rewrite a piece with predicted velocities: each note gets its predicted bin's representative velocity
        (the middle of the bin: 16, 40, 56, 72, 88, 112 for the paper's bins <32, <48, <64, <80, <96, <=127).

        Everything else (tracks, ticks, pitches, durations, tempo, controllers) is unchanged.

        Example:

        ```python
        >>> predict_velocities("runs/vel", "score.mid", "score.humanized.mid")   # doctest: +SKIP
        ```
        """
        if not isinstance(self.note_labeler, VelocityBinLabeler):
            raise ValueError("this model does not predict velocity bins (config.note_labeler is "
                             f"{getattr(self.model.config, 'note_labeler', None)!r})")
        pred = self.note_predictions(midi)
        velocities = np.asarray(self.note_labeler.representative_velocities(), dtype=np.int64)[pred.labels]
        out = pred.score.copy()
        for t, track in enumerate(out.tracks):
            here = pred.song.track_index == t
            if not here.any():
                continue
            arr = track.notes.numpy()
            new_velocity = arr["velocity"].astype(np.int64)
            new_velocity[pred.song.note_index[here]] = velocities[here]
            track.notes = symusic.Note.from_numpy(arr["time"], arr["duration"], arr["pitch"],
                                                  new_velocity.astype(arr["velocity"].dtype))
        if output is not None:
            out.dump_midi(str(output))
        return out


def _classifier_kind(name_or_path, config) -> str:
    """`"token"` or `"sequence"`, from the architectures the checkpoint was saved with; `"backbone"` for any
    other head (a pre-training checkpoint): only its backbone is loaded, for embeddings."""
    architectures = " ".join(config.architectures or [])
    if "TokenClassification" in architectures:
        return "token"
    if "SequenceClassification" in architectures:
        return "sequence"
    return "backbone"


def _load_with_package_classes(name_or_path, **hub_kwargs):
    """Model and tokenizer through this package's classes: the checkpoint's own `.py` files are never imported."""
    from configuration_adversarial_midibert import AdversarialMidiBertConfig
    from modeling_adversarial_midibert import (
        AdversarialMidiBertForSequenceClassification,
        AdversarialMidiBertForTokenClassification,
        AdversarialMidiBertModel,
    )

    from adversarial_midibert.data.compatibility import load_tokenizer_or_default

    config_dict, _ = AdversarialMidiBertConfig.get_config_dict(name_or_path, **hub_kwargs)
    if config_dict.get("model_type") != AdversarialMidiBertConfig.model_type:
        raise ValueError(f"{name_or_path} is not an Adversarial-MidiBERT checkpoint (model_type "
                         f"{config_dict.get('model_type')!r}); pass --trust_remote_code to run its own code")
    config = AdversarialMidiBertConfig.from_pretrained(name_or_path, **hub_kwargs)
    model_class = {"token": AdversarialMidiBertForTokenClassification,
                   "sequence": AdversarialMidiBertForSequenceClassification,
                   "backbone": AdversarialMidiBertModel}[_classifier_kind(name_or_path, config)]
    model = model_class.from_pretrained(name_or_path, config=config, **hub_kwargs)
    return model, load_tokenizer_or_default(name_or_path, config, **hub_kwargs)


def _load_with_checkpoint_code(name_or_path, **hub_kwargs):
    """Model and tokenizer through the Auto classes, running the code the checkpoint ships (`trust_remote_code`)."""
    from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, AutoModelForTokenClassification
    from transformers import AutoTokenizer

    from adversarial_midibert.data.compatibility import has_tokenizer_files, load_tokenizer_or_default

    config = AutoConfig.from_pretrained(name_or_path, trust_remote_code=True, **hub_kwargs)
    auto_class = {"token": AutoModelForTokenClassification,
                  "sequence": AutoModelForSequenceClassification,
                  "backbone": AutoModel}[_classifier_kind(name_or_path, config)]
    model = auto_class.from_pretrained(name_or_path, trust_remote_code=True, **hub_kwargs)
    if has_tokenizer_files(name_or_path, **hub_kwargs):
        return model, AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=True, **hub_kwargs)
    return model, load_tokenizer_or_default(name_or_path, config, **hub_kwargs)


def _load_preset(name: str, seed: int = 0, **_):
    """`preset:<name>`: the preset's backbone with random weights (torch seed `seed`, the global RNG untouched) and
    a tokenizer with the preset's window length."""
    from configuration_adversarial_midibert import AdversarialMidiBertConfig
    from modeling_adversarial_midibert import AdversarialMidiBertModel
    from tokenization_octuple import OctupleTokenizer

    from adversarial_midibert.presets import load_preset

    preset = load_preset(name[len(PRESET_PREFIX):])
    overrides = dict(preset["model"])
    config = AdversarialMidiBertConfig.from_preset(overrides.pop("config_preset", name[len(PRESET_PREFIX):]), **overrides)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AdversarialMidiBertModel(config)
    return model, OctupleTokenizer(max_length=preset["data"].get("max_length", 1024))


def _gather_notes(score: symusic.Score, track_index: np.ndarray, note_index: np.ndarray):
    """The given notes of `score` (by track and note index), as one note list sorted by onset."""
    columns = {key: [] for key in ("time", "duration", "pitch", "velocity")}
    for t in np.unique(track_index):
        arr = score.tracks[int(t)].notes.numpy()
        picked = note_index[track_index == t]
        for key in columns:
            columns[key].append(arr[key][picked])
    if not columns["time"]:
        return symusic.Note.from_numpy(np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0, np.int8), np.zeros(0, np.int8))
    merged = {key: np.concatenate(value) for key, value in columns.items()}
    order = np.lexsort((merged["pitch"], merged["time"]))
    return symusic.Note.from_numpy(*(merged[key][order] for key in ("time", "duration", "pitch", "velocity")))


def _predictor(model) -> MidiPredictor:
    return model if isinstance(model, MidiPredictor) else MidiPredictor.from_pretrained(model)


def classify(model, midi) -> dict:
    """Label a piece with a sequence classifier (folder, Hub id or `MidiPredictor`); see `MidiPredictor.classify`.

    Example:

    ```python
    >>> classify("runs/my_task", "song.mid")["label"]        # doctest: +SKIP
    'chopin'
    ```
    """
    return _predictor(model).classify(midi)


def extract_melody(model, midi, output=None) -> symusic.Score:
    """Melody / bridge / accompaniment tracks; see `MidiPredictor.extract_melody`."""
    return _predictor(model).extract_melody(midi, output)


def predict_velocities(model, midi, output=None) -> symusic.Score:
    """Predicted velocities; see `MidiPredictor.predict_velocities`."""
    return _predictor(model).predict_velocities(midi, output)


__all__ = ["MidiPredictor", "NotePredictions", "classify", "extract_melody", "predict_velocities", "PRESET_PREFIX"]
