"""Fine-tuning tasks: where labels come from, how songs are split, and the paper's four recipes.

A task is a `TaskData`: training and evaluation `MidiSource` lists (split by song or group, never by window),
the label names in id order, and for note-level tasks a note labeler that gives each note of a parsed song a
label id. Label sources:

- a folder per class (`sources_from_class_folders`), a CSV/JSON manifest or a `datasets.Dataset` column (through
  `adversarial_midibert.data.dataset`): one label per song, a sequence task;
- note labels from track names (POP909's MELODY / BRIDGE / PIANO), from General MIDI instrument families, or
  from velocity bins (`TrackNameLabeler`, `InstrumentLabeler`, `VelocityBinLabeler`): a token task.

Label ids are stable: sequence labels are sorted, note labels keep the labeler's declared order, and both are
written into the model config (`id2label`, `label2id`) together with the labeler's settings, so inference can
rebuild them.
"""
from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from adversarial_midibert.data.dataset import MidiSource, find_midi_files, split_by_song

SEQUENCE = "sequence"
TOKEN = "token"
IGNORE_INDEX = -100

# The attribute columns of Octuple ids (docs/architecture.md).
INSTRUMENT_COLUMN = 2
VELOCITY_COLUMN = 5
DRUM_PROGRAM = 128


def default_shared_data() -> Path:
    """Where the shared corpora live: ``$ADVERSARIAL_MIDIBERT_SHARED_DATA`` or ``../shared/data`` beside the repo."""
    env = os.environ.get("ADVERSARIAL_MIDIBERT_SHARED_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "shared" / "data"


# --------------------------------------------------------------------------------------------------------------
# Note labelers: (OctupleSong, MidiSource) -> (n_notes,) int64 label ids, IGNORE_INDEX for unlabelled notes.
# --------------------------------------------------------------------------------------------------------------


@dataclass
class TrackNameLabeler:
    """Label each note by the name of its track, e.g. POP909's ``MELODY`` / ``BRIDGE`` / ``PIANO``.

    Args:
        mapping (`dict[str, str]`): track name (matched case-insensitively, surrounding spaces ignored) -> label.
        labels (`Sequence[str]`, *optional*): label names in id order; defaults to the mapping's values in order
            of first appearance.
        default (`str`, *optional*): label of notes in tracks the mapping does not name; by default such notes
            are ignored (-100) in the loss and the metrics.

    Example:

    ```python
    >>> labeler = TrackNameLabeler.pop909()
    >>> labeler.labels
    ('melody', 'bridge', 'accompaniment')
    ```
    """

    mapping: dict[str, str]
    labels: tuple[str, ...] = ()
    default: str | None = None
    kind: str = field(default="track_names", init=False)

    def __post_init__(self):
        self.mapping = {name.strip().upper(): label for name, label in self.mapping.items()}
        if not self.labels:
            names = list(dict.fromkeys(self.mapping.values()))
            if self.default is not None and self.default not in names:
                names.append(self.default)
            self.labels = tuple(names)
        self.labels = tuple(self.labels)
        unknown = set(self.mapping.values()) - set(self.labels)
        if unknown:
            raise ValueError(f"track mapping uses labels {sorted(unknown)} that are not in labels={self.labels}")

    @classmethod
    def pop909(cls) -> "TrackNameLabeler":
        """The paper's melody task: POP909 tracks MELODY, BRIDGE, PIANO -> melody, bridge, accompaniment."""
        return cls({"MELODY": "melody", "BRIDGE": "bridge", "PIANO": "accompaniment"})

    def __call__(self, song, source=None) -> np.ndarray:
        label_ids = {label: i for i, label in enumerate(self.labels)}
        fallback = label_ids[self.default] if self.default is not None else IGNORE_INDEX
        per_track = np.array(
            [label_ids.get(self.mapping.get(name.strip().upper(), ""), fallback) for name in song.track_names]
            or [fallback],
            dtype=np.int64,
        )
        return per_track[np.asarray(song.track_index, dtype=np.int64)]

    def to_dict(self) -> dict:
        return {"kind": self.kind, "mapping": dict(self.mapping), "labels": list(self.labels), "default": self.default}


GM_FAMILIES = (
    "piano", "chromatic_percussion", "organ", "guitar", "bass", "strings", "ensemble", "brass",
    "reed", "pipe", "synth_lead", "synth_pad", "synth_effects", "ethnic", "percussive", "sound_effects",
)


@dataclass
class InstrumentLabeler:
    """Label each note by its General MIDI instrument family (program // 8), drums as ``"drums"``.

    Example:

    ```python
    >>> InstrumentLabeler().labels[:3]
    ('piano', 'chromatic_percussion', 'organ')
    ```
    """

    labels: tuple[str, ...] = GM_FAMILIES + ("drums",)
    kind: str = field(default="instrument_families", init=False)

    def __call__(self, song, source=None) -> np.ndarray:
        program = np.asarray(song.ids)[:, INSTRUMENT_COLUMN].astype(np.int64)
        return np.where(program == DRUM_PROGRAM, len(GM_FAMILIES), program // 8)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "labels": list(self.labels)}


@dataclass
class VelocityBinLabeler:
    """Label each note by its velocity bin; the paper's six bins are ``<32, <48, <64, <80, <96, <=127``.

    The label is computed from the Octuple velocity id (``velocity // 4``), so every edge must be a multiple of
    4: then ``velocity < edge`` exactly when ``velocity_id < edge // 4`` and the bins are exact. Train with
    ``hidden_attributes=["velocity"]`` or the label leaks through the input.

    Args:
        edges (`Sequence[int]`, defaults to `(32, 48, 64, 80, 96)`): upper bounds (exclusive) of all bins but
            the last.
        labels (`Sequence[str]`, defaults to `("pp", "p", "mp", "mf", "f", "ff")`): one name per bin.

    Example:

    ```python
    >>> VelocityBinLabeler().representative_velocities()
    [16, 40, 56, 72, 88, 112]
    ```
    """

    edges: tuple[int, ...] = (32, 48, 64, 80, 96)
    labels: tuple[str, ...] = ("pp", "p", "mp", "mf", "f", "ff")
    kind: str = field(default="velocity_bins", init=False)

    def __post_init__(self):
        self.edges, self.labels = tuple(int(e) for e in self.edges), tuple(self.labels)
        if any(e % 4 for e in self.edges) or list(self.edges) != sorted(set(self.edges)):
            raise ValueError(f"velocity bin edges must be increasing multiples of 4, got {self.edges}")
        if len(self.labels) != len(self.edges) + 1:
            raise ValueError(f"{len(self.edges)} edges make {len(self.edges) + 1} bins, got {len(self.labels)} labels")

    def __call__(self, song, source=None) -> np.ndarray:
        velocity_id = np.asarray(song.ids)[:, VELOCITY_COLUMN].astype(np.int64)
        return np.searchsorted(np.array(self.edges) // 4, velocity_id, side="right").astype(np.int64)

    def representative_velocities(self) -> list[int]:
        """The velocity written for each predicted bin: the middle of the bin's range ``[low, high]``."""
        bounds = [0, *self.edges, 128]
        return [(low + high) // 2 for low, high in zip(bounds[:-1], bounds[1:])]

    def to_dict(self) -> dict:
        return {"kind": self.kind, "edges": list(self.edges), "labels": list(self.labels)}


NoteLabeler = TrackNameLabeler | InstrumentLabeler | VelocityBinLabeler


def labeler_from_dict(spec: dict) -> NoteLabeler:
    """Rebuild a note labeler from the dictionary stored in a fine-tuned model's config (``note_labeler``)."""
    spec = dict(spec)
    kind = spec.pop("kind")
    if kind == "track_names":
        return TrackNameLabeler(spec["mapping"], labels=tuple(spec["labels"]), default=spec.get("default"))
    if kind == "instrument_families":
        return InstrumentLabeler(labels=tuple(spec["labels"]))
    if kind == "velocity_bins":
        return VelocityBinLabeler(edges=tuple(spec["edges"]), labels=tuple(spec["labels"]))
    raise ValueError(f"unknown note labeler kind {kind!r}")


def parse_track_mapping(text: str) -> dict[str, str]:
    """``"MELODY=melody,BRIDGE=bridge,PIANO=accompaniment"`` -> a track-name mapping."""
    mapping = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, label = item.partition("=")
        if not sep or not name.strip() or not label.strip():
            raise ValueError(f"track mapping items look like NAME=label, got {item!r}")
        mapping[name.strip()] = label.strip()
    return mapping


# --------------------------------------------------------------------------------------------------------------
# Sources, splits, label ids
# --------------------------------------------------------------------------------------------------------------


def sources_from_class_folders(root: str | Path, group_regex: str | None = None) -> list[MidiSource]:
    """A folder per class: ``root/<label>/**/*.mid``; the label is the first folder under ``root``.

    Groups (files of one group always share a split, so movements of one work or performances of one piece never
    land on both sides): files in a sub-folder of a class folder (``root/<label>/<work>/*.mid``) form one group per
    sub-folder; files directly in a class folder are their own group, unless ``group_regex`` is given: then the
    group is the regex's first match in the file name (its first capture group if it has one), e.g.
    ``"^[^_]+_[^_]+"`` for ``Q1_songid_3.mid``. A file the regex does not match stays its own group. Files
    directly in ``root`` have no class and are rejected.

    Example:

    ```python
    >>> sources = sources_from_class_folders("my_set")          # my_set/bach/*.mid, my_set/chopin/*.mid
    >>> sorted({s.label for s in sources})
    ['bach', 'chopin']
    ```
    """
    if not Path(root).is_dir():
        raise FileNotFoundError(f"--data {root}: no such folder")
    pattern = re.compile(group_regex) if group_regex else None
    sources = find_midi_files(root)
    loose = [s.song_id for s in sources if len(Path(s.song_id).parts) < 2]
    if loose:
        raise ValueError(f"{root}: MIDI files outside a class folder ({', '.join(loose[:3])}...); expected root/<label>/*.mid")
    for source in sources:
        parts = Path(source.song_id).parts
        source.label = parts[0]
        if source.group not in (None, ""):
            continue
        match = pattern.search(Path(parts[-1]).stem) if pattern else None
        if match:
            source.group = f"{parts[0]}/{match.group(1) if match.groups() else match.group(0)}"
        elif len(parts) > 2:
            source.group = str(Path(*parts[:-1]))
    labels = {s.label for s in sources}
    if len(labels) < 2:
        found = f"only {sorted(labels)[0]!r}" if labels else "none"
        raise ValueError(f"{root}: a folder-per-class dataset needs at least two class folders holding MIDI files "
                         f"(found {found})")
    return sources


def check_labels(train: Sequence[MidiSource], dev: Sequence[MidiSource]) -> None:
    """Clear errors for label sets a classifier cannot learn: fewer than two classes in the training data, or a
    class that occurs only in the dev data (it would get an output that is never trained, and never be predicted)."""
    train_labels = {str(s.label) for s in train}
    if len(train_labels) < 2:
        found = f"only {sorted(train_labels)[0]!r}" if train_labels else "none"
        raise ValueError(f"a classifier needs at least two labels in the training data, found {found}")
    only_dev = sorted({str(s.label) for s in dev} - train_labels)
    if only_dev:
        examples = [s.song_id for s in dev if str(s.label) in only_dev][:3]
        raise ValueError(f"label(s) {only_dev} occur only in the dev data (e.g. {', '.join(examples)}): add training "
                         "files for them or leave them out of the dev data")


def sequence_label_names(sources: Sequence[MidiSource]) -> list[str]:
    """Sorted label names of a sequence task: stable ids whatever the file order."""
    missing = [s.song_id for s in sources if s.label is None or str(s.label) == ""]
    if missing:
        raise ValueError(f"{len(missing)} sources have no label, e.g. {missing[:3]}")
    return sorted({str(s.label) for s in sources})


def label_maps(labels: Sequence[str]) -> tuple[dict[int, str], dict[str, int]]:
    """``id2label`` and ``label2id`` for the model config."""
    return {i: label for i, label in enumerate(labels)}, {label: i for i, label in enumerate(labels)}


def split_sources(
    sources: Sequence[MidiSource], eval_fraction: float = 0.1, seed: int = 42, stratify: bool = True
) -> tuple[list[MidiSource], list[MidiSource]]:
    """Split songs into train and eval by group (``source.group``, else ``source.song_id``), reproducibly:
    `adversarial_midibert.data.dataset.split_by_song`, stratified by label by default, returning the sources themselves.

    Example:

    ```python
    >>> train, dev = split_sources(sources, eval_fraction=0.2, seed=0)
    >>> {s.group for s in train}.isdisjoint({s.group for s in dev})
    True
    ```
    """
    train, dev = split_by_song(sources, eval_fraction, seed, stratify=stratify)
    return [sources[i] for i in train], [sources[i] for i in dev]


def subsample_groups(sources: Sequence[MidiSource], max_groups: int | None, seed: int = 42) -> list[MidiSource]:
    """Keep the songs of at most ``max_groups`` groups, chosen reproducibly (for short runs on scarce CPU)."""
    group_of = [str(s.group) if s.group not in (None, "") else s.song_id for s in sources]
    groups = sorted(set(group_of))
    if max_groups is None or max_groups >= len(groups):
        return list(sources)
    rng = np.random.default_rng(seed)
    kept = {groups[i] for i in rng.choice(len(groups), size=max_groups, replace=False)}
    return [s for s, g in zip(sources, group_of) if g in kept]


# --------------------------------------------------------------------------------------------------------------
# Tasks
# --------------------------------------------------------------------------------------------------------------


@dataclass
class TaskData:
    """Everything fine-tuning needs to know about a task, independent of the model.

    Attributes:
        name (`str`): task name written to the config (``finetuning_task``) and the model card.
        level (`str`): ``"sequence"`` (one label per song) or ``"token"`` (one label per note).
        labels (`list[str]`): label names in id order.
        train, eval (`list[MidiSource]`): song-disjoint splits.
        note_labeler (*optional*): for token tasks, ``(song, source) -> (n_notes,)`` label ids.
        hidden_attributes (`list[str]`): attributes replaced by MASK in the classifier input (velocity task).
        transpose (`bool`): whether random transposition of training batches is allowed (labels key-independent).
        ignore_time_signatures (`bool`): tokenize every file as 4/4 (`OctupleTokenizer(ignore_time_signatures=True)`):
            bar and position ids then do not depend on the file's meter (track-role tasks, `METER_FREE_TASKS`).
        description (`str`): the data and split, in words, for the model card.
    """

    name: str
    level: str
    labels: list[str]
    train: list[MidiSource]
    eval: list[MidiSource]
    note_labeler: NoteLabeler | None = None
    hidden_attributes: list[str] = field(default_factory=list)
    transpose: bool = False
    ignore_time_signatures: bool = False
    description: str = ""

    @property
    def id2label(self) -> dict[int, str]:
        return label_maps(self.labels)[0]

    @property
    def label2id(self) -> dict[str, int]:
        return label_maps(self.labels)[1]

    def config_updates(self) -> dict:
        """The fields a fine-tuned model's config records about this task (read back by inference)."""
        updates = {
            "id2label": self.id2label,
            "label2id": self.label2id,
            "finetuning_task": self.name,
            "hidden_attributes": list(self.hidden_attributes),
        }
        if self.note_labeler is not None:
            updates["note_labeler"] = self.note_labeler.to_dict()
        return updates


NOTE_TASKS: dict[str, Callable[[], NoteLabeler]] = {
    "melody": TrackNameLabeler.pop909,
    "velocity": VelocityBinLabeler,
    "instrument": InstrumentLabeler,
}


# Track roles (melody / bridge / accompaniment, instrument families) do not depend on meter or tempo, but a corpus
# can tie them to its own quirks: POP909's files carry a spurious 1/4 time signature, and a melody model that sees
# it calls a merged one-track file without that event all accompaniment. These tasks never see the two attributes,
# and their files are tokenized as 4/4 (`ignore_time_signatures`): hiding the attribute alone leaves the meter in
# the bar and position ids, since bars are counted from the time signatures (a 1/4 bar holds 16 positions, not 64).
METER_FREE_HIDDEN = ["time_signature", "tempo"]
HIDDEN_ATTRIBUTES = {"velocity": ["velocity"], "melody": METER_FREE_HIDDEN, "tracks": METER_FREE_HIDDEN,
                     "instrument": METER_FREE_HIDDEN}
METER_FREE_TASKS = ("melody", "tracks", "instrument")


def note_task(name: str, track_mapping: str | None = None) -> tuple[NoteLabeler, list[str]]:
    """The labeler and hidden attributes of a note-level task: ``melody``, ``velocity``, ``instrument`` or
    ``tracks`` (with a ``NAME=label,...`` track mapping). Hidden attributes (`HIDDEN_ATTRIBUTES`): the velocity
    for the velocity task (its label), time signature and tempo for the track-role tasks (dataset artefacts)."""
    if name == "tracks":
        if not track_mapping:
            raise ValueError("--task tracks needs --track_labels NAME=label,NAME=label,...")
        return TrackNameLabeler(parse_track_mapping(track_mapping)), list(HIDDEN_ATTRIBUTES["tracks"])
    if name not in NOTE_TASKS:
        raise ValueError(f"unknown note task {name!r}; choose from {sorted(NOTE_TASKS) + ['tracks']} (or sequence)")
    labeler = NOTE_TASKS[name]()
    return labeler, list(HIDDEN_ATTRIBUTES.get(name, []))


def make_task(
    name: str,
    sources: Sequence[MidiSource],
    *,
    eval_sources: Sequence[MidiSource] | None = None,
    eval_fraction: float = 0.1,
    seed: int = 42,
    track_mapping: str | None = None,
    transpose: bool | None = None,
    description: str = "",
) -> TaskData:
    """Build a task from user sources: ``name="sequence"`` (song labels) or a note task (see `note_task`).

    Without ``eval_sources`` the songs are split by group with ``seed`` (`split_sources`).

    Example:

    ```python
    >>> task = make_task("sequence", sources_from_class_folders("my_set"), eval_fraction=0.2, seed=0)
    >>> task.level, task.labels
    ('sequence', ['bach', 'chopin'])
    ```
    """
    sources = list(sources)
    if eval_sources is None:
        train, dev = split_sources(sources, eval_fraction, seed, stratify=(name == SEQUENCE))
        split_text = f"split by song/group with seed {seed} ({eval_fraction:.0%} of groups held out)"
    else:
        train, dev = sources, list(eval_sources)
        split_text = "split given by the user"
    if name == SEQUENCE:
        labels = sequence_label_names(train + dev)
        check_labels(train, dev)
        return TaskData(
            name, SEQUENCE, labels, train, dev, transpose=bool(transpose),
            description=description or f"labelled songs, {split_text}",
        )
    labeler, hidden = note_task(name, track_mapping)
    return TaskData(
        name, TOKEN, list(labeler.labels), train, dev, note_labeler=labeler, hidden_attributes=hidden,
        transpose=True if transpose is None else transpose, ignore_time_signatures=name in METER_FREE_TASKS,
        # No song count here: a run may use a subset (--max_train_songs); the card states the counts it used.
        description=description or f"note labels from {labeler.kind}, {split_text}",
    )


# --------------------------------------------------------------------------------------------------------------
# The paper's four tasks on the shared corpora (../shared/data/<corpus>/manifest.csv)
# --------------------------------------------------------------------------------------------------------------


def _read_manifest(root: Path, corpus: str) -> list[dict]:
    path = root / corpus / "manifest.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: pass --data_root pointing at the shared corpora")
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _source(root: Path, corpus: str, row: dict, label: str | None, group: str | None) -> MidiSource:
    return MidiSource(song_id=f"{corpus}/{row['path']}", path=str(root / corpus / row["path"]), label=label,
                      group=f"{corpus}/{group}" if group else None)


def _by_split(rows, make, split_column, train_value="train", eval_value="valid"):
    train = [make(r) for r in rows if r[split_column] == train_value]
    dev = [make(r) for r in rows if r[split_column] == eval_value]
    return train, dev


def _asap_composer(root: Path, seed: int) -> TaskData:
    rows = _read_manifest(root, "asap")
    # Keep composers with >= 4 training pieces and at least one dev piece: 8 classes (Bach, Beethoven, Chopin,
    # Haydn, Liszt, Mozart, Schubert, Schumann), like Pianist8's 8. The rest have too few pieces to learn or score.
    pieces: dict[tuple[str, str], set] = {}
    for r in rows:
        pieces.setdefault((r["composer"], r["suggested_split_by_piece"]), set()).add(r["piece_folder"])
    kept = {c for (c, split) in pieces if split == "train" and len(pieces[(c, "train")]) >= 4 and (c, "valid") in pieces}
    rows = [r for r in rows if r["composer"] in kept]
    train, dev = _by_split(rows, lambda r: _source(root, "asap", r, r["composer"], r["piece_folder"]),
                           "suggested_split_by_piece")
    return TaskData("composer", SEQUENCE, sorted(kept), train, dev, transpose=False,
                    description="ASAP scores and performances, composers with >= 4 training pieces; "
                                "split by piece (manifest column suggested_split_by_piece)")


def _music21_composer(root: Path, seed: int) -> TaskData:
    rows = _read_manifest(root, "music21_corpus")
    sources = [_source(root, "music21_corpus", r, r["composer_class"], None) for r in rows]
    train, dev = split_sources(sources, 0.1, seed)
    return TaskData("composer_music21", SEQUENCE, sequence_label_names(sources), train, dev, transpose=False,
                    description=f"music21 corpus by composer_class; 10% of files held out per class, seed {seed}")


def _pianist8_composer(root: Path, seed: int) -> TaskData:
    rows = _read_manifest(root, "pianist8_cp_segments")
    sources = [_source(root, "pianist8_cp_segments", r, r["composer"], None) for r in rows]
    train, dev = split_sources(sources, 0.2, seed)
    return TaskData("composer_pianist8", SEQUENCE, sequence_label_names(sources), train, dev, transpose=False,
                    description="Pianist8 512-note segments (the MidiBERT split's valid part only; segment-to-song "
                                f"mapping unknown, so segments of one song may fall on both sides); 20% held out per class, seed {seed}")


def _emotion(root: Path, seed: int) -> TaskData:
    rows = _read_manifest(root, "emopia")
    train, dev = _by_split(rows, lambda r: _source(root, "emopia", r, r["emotion_quadrant"], r["song_id"]),
                           "emopia_split")
    return TaskData("emotion", SEQUENCE, ["Q1", "Q2", "Q3", "Q4"], train, dev, transpose=True,
                    description="EMOPIA clips, quadrants Q1..Q4; official song-disjoint split (emopia_split)")


def _melody(root: Path, seed: int) -> TaskData:
    rows = _read_manifest(root, "pop909")
    train, dev = _by_split(rows, lambda r: _source(root, "pop909", r, None, r["song_id"]), "midibert_split")
    labeler = TrackNameLabeler.pop909()
    return TaskData("melody", TOKEN, list(labeler.labels), train, dev, note_labeler=labeler,
                    hidden_attributes=list(HIDDEN_ATTRIBUTES["melody"]), transpose=True,
                    ignore_time_signatures=True,
                    description="POP909 songs, note labels from tracks MELODY/BRIDGE/PIANO; MidiBERT split "
                                "(midibert_split train/valid, 'excluded' songs left out)")


def _velocity(root: Path, seed: int) -> TaskData:
    pop = _read_manifest(root, "pop909")
    train, dev = _by_split(pop, lambda r: _source(root, "pop909", r, None, r["song_id"]), "midibert_split")
    asap = [r for r in _read_manifest(root, "asap") if r["kind"] == "performance"]
    asap_train, asap_dev = _by_split(asap, lambda r: _source(root, "asap", r, None, r["piece_folder"]),
                                     "suggested_split_by_piece")
    labeler = VelocityBinLabeler()
    return TaskData("velocity", TOKEN, list(labeler.labels), train + asap_train, dev + asap_dev,
                    note_labeler=labeler, hidden_attributes=["velocity"], transpose=True,
                    description="POP909 (midibert_split) and ASAP performances (split by piece); six velocity bins "
                                "<32,<48,<64,<80,<96,<=127; the velocity attribute is hidden from the input")


RECIPES: dict[str, Callable[[Path, int], TaskData]] = {
    "composer": _asap_composer,
    "composer_music21": _music21_composer,
    "composer_pianist8": _pianist8_composer,
    "emotion": _emotion,
    "melody": _melody,
    "velocity": _velocity,
}


def load_recipe(name: str, data_root: str | Path | None = None, seed: int = 42) -> TaskData:
    """One of the paper's tasks on the shared corpora: ``composer`` (ASAP by piece; also ``composer_music21``,
    ``composer_pianist8``), ``emotion`` (EMOPIA), ``melody`` (POP909), ``velocity`` (POP909 + ASAP performances).

    Transposition is allowed where labels do not depend on key (emotion quadrants survive a shift within an
    octave, melody roles and dynamics do) and off for composer (key and register are part of a style).

    Example:

    ```python
    >>> task = load_recipe("emotion")
    >>> task.labels, len(task.train) > len(task.eval) > 0
    (['Q1', 'Q2', 'Q3', 'Q4'], True)
    ```
    """
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; choose from {sorted(RECIPES)}")
    return RECIPES[name](Path(data_root) if data_root else default_shared_data(), seed)
