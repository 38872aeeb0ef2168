"""MIDI sources -> a cached `datasets.Dataset` of Octuple windows.

Sources come from a folder (`find_midi_files`), a csv/json manifest (`sources_from_manifest`) or a
`datasets.Dataset` with a column of paths or bytes (`sources_from_dataset`). `build_window_dataset` tokenizes them
in parallel with a progress bar, skips files the tokenizer rejects (`MidiError`), lists them in its `BuildReport`,
and caches the result on disk under a key made of the files (sizes and modification times), the tokenizer's
settings and code, so a second run of the same job reads the windows back in a second.
"""

from __future__ import annotations

import atexit
import csv
import hashlib
import inspect
import json
import os
import re
import shutil
import tempfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

MIDI_SUFFIXES = (".mid", ".midi")
_CACHE_FORMAT = 1
# Below this many files per process, workers cost more than they save: measured here, a worker adds about 0.2
# CPU-s (start, arguments, its Arrow file) against about 4 ms per Pop1K7 file, so 2 workers break even near 200
# files each; see `tokenizing_processes`.
MIN_FILES_PER_PROCESS = 200


@dataclass
class MidiSource:
    """One MIDI piece to tokenize: a path or the file's bytes, with an id unique in its collection.

    Args:
        song_id (`str`): unique id (a relative path for folders); the key of the freeze book and of splits.
        path (`str`, *optional*): the file.
        data (`bytes`, *optional*): the file's content, when there is no path (a `datasets` bytes column).
        label (`str`, *optional*): a piece-level label (fine-tuning).
        group (`str`, *optional*): pieces of one group (performances of one score) always share a split.
    """

    song_id: str
    path: str | None = None
    data: bytes | None = None
    label: str | None = None
    group: str | None = None

    def __post_init__(self):
        if (self.path is None) == (self.data is None):
            raise ValueError(f"source {self.song_id!r}: give exactly one of `path` and `data`")

    @property
    def midi(self) -> str | bytes:
        return self.path if self.path is not None else self.data


@dataclass
class BuildReport:
    """What `build_window_dataset` made of its sources. `str(report)` is the summary printed after a build."""

    num_files: int = 0
    num_songs: int = 0
    num_windows: int = 0
    num_notes: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    from_cache: bool = False

    def __str__(self) -> str:
        lines = [
            f"{self.num_songs} of {self.num_files} MIDI files tokenized into {self.num_windows} windows "
            f"({self.num_notes} notes); {len(self.skipped)} skipped" + (" [read from cache]" if self.from_cache else "")
        ]
        lines += [f"  skipped {song_id}: {reason}" for song_id, reason in self.skipped]
        return "\n".join(lines)


def _reason_kind(reason: str) -> str:
    """The part of a skip reason that many files share: "corrupt MIDI file (Unexpected EOF)" -> "corrupt MIDI file"."""
    return re.split(r" \(|: ", reason, maxsplit=1)[0]


class NoUsableMidiError(ValueError):
    """Every source of a build was skipped: there is nothing to train or evaluate on.

    The first line of the message is the summary (`no usable MIDI: N files skipped, reasons: ...`), the skip list
    follows; `report` is the `BuildReport` with every skipped file and its reason.

    Example:

    >>> from adversarial_midibert.data.dataset import BuildReport, NoUsableMidiError
    >>> err = NoUsableMidiError(BuildReport(num_files=2, skipped=[("a.mid", "empty file (0 bytes)"),
    ...                                                           ("b.mid", "empty file (0 bytes)")]))
    >>> str(err).splitlines()[0]
    'no usable MIDI: 2 files skipped, reasons: empty file x2'
    """

    max_listed = 50  # the full list is in `report`; a message of 10,000 lines helps nobody

    def __init__(self, report: BuildReport):
        self.report = report
        super().__init__(self._message(report))

    @classmethod
    def _message(cls, report: BuildReport) -> str:
        if not report.skipped:
            return "no usable MIDI: no files given"
        kinds: dict[str, int] = {}
        for _, reason in report.skipped:
            kinds[_reason_kind(reason)] = kinds.get(_reason_kind(reason), 0) + 1
        reasons = ", ".join(f"{kind} x{n}" for kind, n in sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0])))
        lines = [f"no usable MIDI: {len(report.skipped)} files skipped, reasons: {reasons}"]
        lines += [f"  skipped {song_id}: {reason}" for song_id, reason in report.skipped[: cls.max_listed]]
        if len(report.skipped) > cls.max_listed:
            lines.append(f"  ... and {len(report.skipped) - cls.max_listed} more")
        return "\n".join(lines)


def find_midi_files(root: str | os.PathLike) -> list[MidiSource]:
    """Every MIDI file under `root` (recursive; `.mid` / `.midi` in any case), sorted, with `song_id` = the path
    relative to `root`. A file given as `root` is one source.

    Every entry with a MIDI name that is not a folder is a source, also a dangling symlink, a symlink loop or a
    FIFO: the tokenizer refuses those with a reason, so the build report counts and names them instead of the
    scan dropping them unseen.

    Example:

    >>> from adversarial_midibert.data.dataset import find_midi_files
    >>> from adversarial_midibert.presets import SAMPLE_MIDI
    >>> sources = find_midi_files(SAMPLE_MIDI)
    >>> len(sources), sources[0].song_id
    (18, 'emopia/Q1_1Qc15G0ZHIg_1.mid')
    """
    root = Path(root)
    if os.path.lexists(root) and not root.is_dir():
        return [MidiSource(song_id=root.name, path=str(root))]
    if not root.is_dir():
        raise FileNotFoundError(f"no MIDI folder or file at {root}")
    # is_dir() is False for a dangling link or a loop (it does not raise), so those stay in.
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in MIDI_SUFFIXES and not p.is_dir())
    return [MidiSource(song_id=p.relative_to(root).as_posix(), path=str(p)) for p in files]


def _read_manifest_rows(path: Path) -> list[dict[str, Any]]:
    if path.suffix.lower() == ".csv":
        with open(path, newline="") as f:
            return list(csv.DictReader(f))
    with open(path) as f:
        text = f.read()
    try:
        rows = json.loads(text)
    except json.JSONDecodeError:  # JSON lines
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    if isinstance(rows, dict):
        rows = rows.get("data", rows.get("rows", [rows]))
    return list(rows)


def sources_from_manifest(
    path: str | os.PathLike,
    path_column: str = "path",
    label_column: str | None = None,
    group_column: str | None = None,
) -> list[MidiSource]:
    """Sources listed in a csv or json (list of objects, or JSON lines) manifest. Relative paths are relative to
    the manifest's folder; `song_id` is the path as written in the manifest.

    Example:

    >>> from adversarial_midibert.data.dataset import sources_from_manifest
    >>> from adversarial_midibert.presets import SAMPLE_MIDI
    >>> sources = sources_from_manifest(SAMPLE_MIDI / "manifest.csv", label_column="dataset")
    >>> sources[0].song_id, sources[0].label
    ('pop909/098.mid', 'pop909')
    """
    path = Path(path)
    rows = _read_manifest_rows(path)
    sources = []
    for i, row in enumerate(rows):
        if path_column not in row:
            raise KeyError(f"{path}: row {i} has no column {path_column!r} (columns: {sorted(row)})")
        rel = str(row[path_column])
        full = Path(rel) if Path(rel).is_absolute() else path.parent / rel
        sources.append(
            MidiSource(
                song_id=rel,
                path=str(full),
                label=None if label_column is None or row.get(label_column) is None else str(row[label_column]),
                group=None if group_column is None or row.get(group_column) is None else str(row[group_column]),
            )
        )
    return sources


def sources_from_dataset(
    ds,
    midi_column: str,
    label_column: str | None = None,
    group_column: str | None = None,
) -> list[MidiSource]:
    """Sources from a `datasets.Dataset` whose `midi_column` holds paths (`str`), bytes, or `{"bytes", "path"}`
    dicts. `song_id` is the `song_id` column when there is one, else the path, else `row-<index>`.

    Example:

    >>> import datasets
    >>> from adversarial_midibert.data.dataset import sources_from_dataset
    >>> ds = datasets.Dataset.from_dict({"midi": [b"MThd..."], "composer": ["bach"]})
    >>> src = sources_from_dataset(ds, "midi", label_column="composer")[0]
    >>> src.song_id, src.label, src.data[:4]
    ('row-0', 'bach', b'MThd')
    """
    if midi_column not in ds.column_names:
        raise KeyError(f"dataset has no column {midi_column!r} (columns: {ds.column_names})")
    ids = ds["song_id"] if "song_id" in ds.column_names else None
    labels = ds[label_column] if label_column else None
    groups = ds[group_column] if group_column else None
    sources = []
    for i, value in enumerate(ds[midi_column]):
        path = data = None
        if isinstance(value, dict):
            data, path = value.get("bytes"), value.get("path")
            if data is not None:
                path = None
        elif isinstance(value, (bytes, bytearray)):
            data = bytes(value)
        else:
            path = str(value)
        song_id = str(ids[i]) if ids is not None else (path if path is not None else f"row-{i}")
        sources.append(
            MidiSource(
                song_id=song_id,
                path=path,
                data=data,
                label=None if labels is None or labels[i] is None else str(labels[i]),
                group=None if groups is None or groups[i] is None else str(groups[i]),
            )
        )
    return sources


def split_by_song(
    sources: Sequence[MidiSource], validation_fraction: float, seed: int = 42, stratify: bool = False
) -> tuple[list[int], list[int]]:
    """Seeded split of source positions into (train, validation), by song, never by window.

    Sources with the same `group` (else the same `song_id`) land on the same side. With `stratify`, each label's
    groups are split separately, so every label with at least two groups reaches validation, and a label's shuffle
    depends only on the seed and that label (adding a class moves no other song). A fraction above 0 holds out at
    least one group of every stratum with two or more, and at least one group always stays in training.

    Example:

    >>> from adversarial_midibert.data.dataset import MidiSource, split_by_song
    >>> sources = [MidiSource(f"s{i}", path=f"s{i}.mid") for i in range(10)]
    >>> train, valid = split_by_song(sources, 0.2, seed=0)
    >>> len(train), len(valid), sorted(train + valid) == list(range(10))
    (8, 2, True)
    """
    if not 0 <= validation_fraction < 1:
        raise ValueError(f"validation_fraction must be in [0, 1), got {validation_fraction}")
    group_of = [str(s.group) if s.group not in (None, "") else s.song_id for s in sources]
    group_label: dict[str, str] = {}
    for source, group in zip(sources, group_of):
        group_label.setdefault(group, str(source.label) if stratify and source.label is not None else "")
    strata: dict[str, list[str]] = {}
    for group, label in sorted(group_label.items()):
        strata.setdefault(label, []).append(group)
    valid_groups: set[str] = set()
    for label, groups in sorted(strata.items()):
        rng = np.random.default_rng([seed, zlib.crc32(label.encode())])
        shuffled = [groups[i] for i in rng.permutation(len(groups))]
        n_valid = int(round(validation_fraction * len(groups)))
        if validation_fraction > 0 and len(groups) >= 2:
            n_valid = min(max(n_valid, 1), len(groups) - 1)
        valid_groups.update(shuffled[:n_valid])
    train = [i for i, g in enumerate(group_of) if g not in valid_groups]
    valid = [i for i, g in enumerate(group_of) if g in valid_groups]
    return train, valid


def _file_code_hash(obj: Any) -> str:
    try:
        return hashlib.sha256(inspect.getsource(obj).encode()).hexdigest()[:16]
    except (OSError, TypeError):
        return getattr(obj, "__qualname__", repr(obj))


def _cache_key(sources: Sequence[MidiSource], tokenizer: Any, note_labeler: Callable | None) -> str:
    h = hashlib.sha256()
    h.update(f"format={_CACHE_FORMAT}".encode())
    for s in sources:
        h.update(f"{s.song_id}\0{s.label}\0{s.group}\0".encode())
        if s.path is not None:
            st = os.stat(s.path) if os.path.exists(s.path) else None
            h.update(f"{os.path.abspath(s.path)}\0{st.st_size if st else -1}\0{st.st_mtime_ns if st else -1}".encode())
        else:
            h.update(hashlib.sha256(s.data).digest())
    settings = {k: getattr(tokenizer, k, None)
                for k in ("max_length", "stride", "max_bars", "max_notes", "max_bytes", "ignore_time_signatures")}
    h.update(json.dumps(settings, sort_keys=True, default=str).encode())
    # The tokenizer's code is part of the key: a fix in the tokenizer must not be hidden by an old cache.
    h.update(_file_code_hash(inspect.getmodule(type(tokenizer))).encode())
    if note_labeler is not None:
        h.update(_file_code_hash(note_labeler).encode())
    return h.hexdigest()[:24]


def _encode_batch(batch, *, sources, tokenizer, note_labeler, midi_error):
    out = {k: [] for k in ("input_ids", "song_index", "song_id", "window_start", "label", "error")}
    if note_labeler is not None:
        out["note_labels"] = []
    for index in batch["source_index"]:
        source = sources[index]
        rows = []
        try:
            song = tokenizer.encode_song(source.midi, name=source.song_id)
            labels = None
            if note_labeler is not None:
                labels = np.asarray(note_labeler(song, source), dtype=np.int64).reshape(-1)
                if len(labels) != len(song.ids):
                    raise ValueError(
                        f"{source.song_id}: note_labeler gave {len(labels)} labels for {len(song.ids)} notes"
                    )
            for start, end in tokenizer.window_spans(song):
                ids = tokenizer.window_ids(song, start, end)
                row = {"input_ids": ids.tolist(), "window_start": int(start)}
                if labels is not None:
                    row["note_labels"] = [-100] + labels[start:end].tolist() + [-100]
                rows.append(row)
            error = None
        except midi_error as e:
            rows = [{"input_ids": [], "window_start": -1, "note_labels": []}]
            error = getattr(e, "reason", None) or str(e) or type(e).__name__
        for row in rows:
            out["input_ids"].append(row["input_ids"])
            out["window_start"].append(row["window_start"])
            out["song_index"].append(int(index))
            out["song_id"].append(source.song_id)
            out["label"].append(source.label)
            out["error"].append(error)
            if note_labeler is not None:
                out["note_labels"].append(row["note_labels"])
    return out


def tokenizing_processes(num_proc: int | None, num_sources: int) -> int:
    """How many processes `build_window_dataset` really uses for `num_proc` requested and `num_sources` files.

    At most one per available CPU (more only share the same cores and add start-up), and at most one per
    `MIN_FILES_PER_PROCESS` files, so a small corpus is tokenized in this process instead of paying for workers.

    Example:

    >>> from adversarial_midibert.data.dataset import tokenizing_processes
    >>> tokenizing_processes(4, 100), tokenizing_processes(1, 10_000)
    (1, 1)
    """
    return max(1, min(int(num_proc or 1), available_cpus(), num_sources // MIN_FILES_PER_PROCESS))


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask, which containers and `taskset` narrow)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _keep_until_exit(folder: Path) -> None:
    atexit.register(shutil.rmtree, folder, ignore_errors=True)


def default_cache_dir() -> Path:
    """`$ADVERSARIAL_MIDIBERT_CACHE`, else `~/.cache/adversarial_midibert`, plus `/windows`."""
    root = os.environ.get("ADVERSARIAL_MIDIBERT_CACHE", os.path.join(Path.home(), ".cache", "adversarial_midibert"))
    return Path(root) / "windows"


def build_window_dataset(
    sources: Sequence[MidiSource],
    tokenizer: Any,
    *,
    note_labeler: Callable | None = None,
    num_proc: int = 1,
    cache_dir: str | os.PathLike | None = None,
):
    """Tokenize MIDI sources into a `datasets.Dataset` of windows (one row per window).

    Args:
        sources (`Sequence[MidiSource]`): the pieces; a window's `song_index` is its source's position here.
        tokenizer (`OctupleTokenizer`): its `max_length`, `stride` and `max_bars` cut the windows.
        note_labeler (`Callable[[OctupleSong, MidiSource], np.ndarray]`, *optional*):
            One int label per note of the song (-100: no label); adds the `note_labels` column.
        num_proc (`int`, *optional*, defaults to 1): tokenizing processes, at most; `tokenizing_processes` lowers
            it to the CPUs available and to one per `MIN_FILES_PER_PROCESS` files.
        cache_dir (`str` or `os.PathLike`, *optional*):
            Save the windows under `cache_dir/<key>` and read them back when the key matches; the key hashes the
            sources (paths, sizes, modification times, or bytes), the tokenizer's settings and code, and the
            labeler's code. `None`: no cache.

    Raises:
        `NoUsableMidiError`: no source gave a song (every file skipped, or no sources); its message is the summary
        line and the skip list.

    Returns:
        `(datasets.Dataset, BuildReport)`. Columns: `input_ids` (`[n_tokens][8]` ints, BOS and EOS included,
        unpadded), `song_index`, `song_id`, `window_start` (index of the window's first note in the song's sorted
        notes), `label`, and `note_labels` (aligned with `input_ids`, -100 on BOS/EOS) with a `note_labeler`.

    Example:

    >>> from tokenization_octuple import OctupleTokenizer
    >>> from adversarial_midibert.data.dataset import build_window_dataset, find_midi_files
    >>> from adversarial_midibert.presets import SAMPLE_MIDI
    >>> ds, report = build_window_dataset(find_midi_files(SAMPLE_MIDI / "pop909")[:2], OctupleTokenizer(max_length=256))
    >>> report.num_songs, len(ds) == report.num_windows, len(ds[0]["input_ids"][0])
    (2, True, 8)
    """
    import datasets
    from datasets import Features, List, Value

    tokenizer_module = inspect.getmodule(type(tokenizer))
    midi_error = getattr(tokenizer_module, "MidiError", ValueError)
    sources = list(sources)
    if len({s.song_id for s in sources}) != len(sources):
        raise ValueError("song ids must be unique within one build")
    if not sources:
        raise NoUsableMidiError(BuildReport())

    key = _cache_key(sources, tokenizer, note_labeler)
    target = None
    if cache_dir is not None:
        target = Path(cache_dir) / key
        if (target / "report.json").is_file():
            report = BuildReport(**json.loads((target / "report.json").read_text()))
            report.skipped = [tuple(s) for s in report.skipped]
            report.from_cache = True
            return datasets.load_from_disk(str(target / "windows")), report

    columns = {
        "input_ids": List(List(Value("int16"))),
        "song_index": Value("int64"),
        "song_id": Value("string"),
        "window_start": Value("int64"),
        "label": Value("string"),
        "error": Value("string"),
    }
    if note_labeler is not None:
        columns["note_labels"] = List(Value("int32"))
    index = datasets.Dataset.from_dict({"source_index": list(range(len(sources)))})
    procs = tokenizing_processes(num_proc, len(sources))
    shard_file = work_dir = None
    if procs > 1:
        # Each worker writes its windows to an Arrow file and hands back only the file's name. Without a file
        # (an in-memory dataset) datasets pickles every worker's whole table through a queue with dill, which
        # cost more CPU than tokenizing: 2 processes built slower than 1.
        work_dir = Path(tempfile.mkdtemp(dir=None if target is None else _made(target.parent), prefix=".build-"))
        _keep_until_exit(work_dir)  # a build without cache_dir returns windows memory-mapped from these files
        shard_file = str(work_dir / "windows.arrow")
    windows = index.map(
        _encode_batch,
        batched=True,
        batch_size=1,
        num_proc=procs if procs > 1 else None,
        cache_file_name=shard_file,
        remove_columns=["source_index"],
        features=Features(columns),
        fn_kwargs={"sources": sources, "tokenizer": tokenizer, "note_labeler": note_labeler, "midi_error": midi_error},
        # Our own key is the fingerprint: hashing the sources' bytes through dill would cost as much as the build.
        new_fingerprint=key,
        desc="Tokenizing MIDI",
    )
    errors = windows["error"]
    song_ids = windows["song_id"]
    bad = [i for i, e in enumerate(errors) if e is not None]
    good = [i for i, e in enumerate(errors) if e is None]
    windows = windows.select(good).remove_columns("error") if bad else windows.remove_columns("error")
    lengths = window_lengths(windows)
    report = BuildReport(
        num_files=len(sources),
        num_songs=len(sources) - len(bad),
        num_windows=len(windows),
        num_notes=int((lengths - 2).sum()) if len(lengths) else 0,
        skipped=[(song_ids[i], errors[i]) for i in bad],
    )
    if report.num_songs == 0:  # before the cache: an empty dataset cannot be saved and loaded back
        raise NoUsableMidiError(report)
    if target is not None:
        tmp = Path(tempfile.mkdtemp(dir=_made(target.parent), prefix=".tmp-"))
        windows.save_to_disk(str(tmp / "windows"))
        (tmp / "report.json").write_text(json.dumps({k: v for k, v in asdict(report).items() if k != "from_cache"}))
        try:
            os.replace(tmp, target)
        except OSError:  # another process wrote the same key first: same content, keep theirs
            shutil.rmtree(tmp, ignore_errors=True)
        windows = datasets.load_from_disk(str(target / "windows"))
        if work_dir is not None:  # the saved copy is what the caller gets; the workers' files can go now
            shutil.rmtree(work_dir, ignore_errors=True)
    return windows, report


def _made(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def window_lengths(windows) -> np.ndarray:
    """Tokens (BOS and EOS included) of every window, read from Arrow without materialising the ids."""
    import pyarrow.compute as pc

    column = windows.with_format("arrow")[:]["input_ids"] if len(windows) else None
    if column is None:
        return np.zeros(0, dtype=np.int64)
    return np.asarray(pc.list_value_length(column).to_numpy(zero_copy_only=False), dtype=np.int64)


def song_note_counts(windows) -> dict[str, int]:
    """Number of notes of each song of a window dataset (the end of its last window), keyed by `song_id`."""
    ends = np.asarray(windows["window_start"], dtype=np.int64) + window_lengths(windows) - 2
    counts: dict[str, int] = {}
    for song_id, end in zip(windows["song_id"], ends.tolist()):
        counts[song_id] = max(counts.get(song_id, 0), end)
    return counts
