"""Octuple MIDI tokenizer (MusicBERT's quantization) for Adversarial-MidiBERT.

One token per note, eight attributes: `bar, position, instrument, pitch, duration, velocity, time_signature,
tempo`. The tables are MusicBERT's (see `SPEC.md`, "Octuple tokens"):

- position unit: 1/16 of a quarter note, `pos(t) = round(t * 16 / ticks_per_quarter)` with Python's `round`
  (halves to even, as MusicBERT);
  a note's duration in positions is `pos(end) - pos(start)`;
- bars come from the time-signature changes: a bar of `n/d` holds `n * 64 / d` positions, every change of
  meter starts a new bar at its position (a mid-bar change closes the bar early), 4/4 before the first change;
  with `ignore_time_signatures=True` every file is read as 4/4 throughout (bars, positions and the attribute);
- duration: 8 groups of 16 ids, group `g` advancing in steps of `2**g` positions; longer notes get id 127;
- time signature: every `n/2**k` with `k = 0..6`, `n = 1..2 * 2**k` (254 entries) after MusicBERT's reduction;
- tempo: `round(12 * log2(clip(bpm, 16, 256) / 16))` (49 ids), the tempo in force at the note's onset;
- velocity: `velocity // 4`; instrument: the General MIDI program, 128 for drums; drum pitch: `pitch + 128`.

Tempo and meter events are placed on the position grid like notes; of several events at one position the last
holds, and a meter event that repeats the meter in force is not a change (it does not cut a bar short).
Notes are sorted by `(bar, position, instrument, pitch, duration, velocity)`, a function of the ids alone, so
`decode` followed by encoding gives the same ids back; `decode` writes 480 ticks per quarter and puts
overlapping notes of one pitch on separate tracks so that no MIDI parser can pair their note-offs differently.

After each attribute's regular ids come `PAD, MASK, BOS, EOS`, so special ids never collide with real values.

This file is Hub code: it imports only the standard library, numpy, torch, transformers, symusic and
pretty_midi, and works when copied alone beside a checkpoint (`save_pretrained` copies it).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pretty_midi
import symusic
import torch
from transformers import BatchEncoding
from transformers.utils import PushToHubMixin, cached_file

__all__ = ["MidiError", "OctupleSong", "OctupleTokenizer"]

ATTRIBUTES = ("bar", "position", "instrument", "pitch", "duration", "velocity", "time_signature", "tempo")
REGULAR_VOCAB_SIZES = (256, 128, 129, 256, 128, 32, 254, 49)
NUM_SPECIAL = 4  # PAD, MASK, BOS, EOS, in that order, right after each attribute's regular ids

POSITIONS_PER_QUARTER = 16
DECODE_TICKS_PER_QUARTER = 480
TICKS_PER_POSITION = DECODE_TICKS_PER_QUARTER // POSITIONS_PER_QUARTER  # 30
DRUM_INSTRUMENT = 128
MIN_BPM, MAX_BPM, DEFAULT_BPM = 16.0, 256.0, 120.0
DEFAULT_METER = (4, 4)

SETTINGS_FILE = "octuple_tokenizer.json"
CONFIG_FILE = "tokenizer_config.json"
FORMAT_VERSION = 1
# The constructor arguments saved by `save_pretrained` (files saved before `max_bytes` or `ignore_time_signatures`
# existed load with their defaults).
SETTINGS = ("max_length", "stride", "max_bars", "max_notes", "max_bytes", "ignore_time_signatures")


def _duration_table() -> np.ndarray:
    """`table[id]` = smallest duration (in positions) that maps to `id`; group `g` steps by `2**g`."""
    values, start = [], 0
    for group in range(8):
        values.extend(start + step * 2**group for step in range(16))
        start += 16 * 2**group
    return np.asarray(values, dtype=np.int64)


DURATION_TABLE = _duration_table()  # 0, 1, ..., 15, 16, 18, ..., 46, 48, 52, ..., 2032, 2160, ..., 3952
# Ordered so that id = 2 * (2**k - 1) + n - 1 for n / 2**k.
TIME_SIGNATURE_TABLE = tuple((n, 2**k) for k in range(7) for n in range(1, 2 * 2**k + 1))
# A MIDI file of `max_notes` notes needs a few MB; real files are far smaller (the largest of the 6,835 files in
# ../shared/data is 280 KB). The limit keeps a huge or endless input (a 100 MB file, /dev/zero) from being read
# whole or parsed at all (a 100 MB file took about 850 MB to parse).
DEFAULT_MAX_BYTES = 32 * 2**20
# symusic keeps ticks in int32: a time or duration past 2**31 - 1 wraps around (negative, or silently small).
MAX_TICK = 2**31 - 1
DEFAULT_TEMPO_ID = round(12 * np.log2(DEFAULT_BPM / MIN_BPM))


class MidiError(ValueError):
    """A MIDI input the tokenizer cannot use: empty, corrupt, note-less, unsupported or too large.

    Args:
        path (`str`, *optional*): the file (or the name given for in-memory input) the error is about.
        reason (`str`): what is wrong, in words a user can act on.

    Example:

    ```python
    >>> from tokenization_octuple import MidiError, OctupleTokenizer
    >>> try:
    ...     OctupleTokenizer().encode_song(b"", name="empty.mid")
    ... except MidiError as err:
    ...     print(err.path, "|", err.reason)
    empty.mid | empty file (0 bytes)

    ```
    """

    def __init__(self, path: str | None, reason: str):
        self.path = None if path is None else str(path)
        self.reason = reason
        super().__init__(f"{self.path or '<in-memory MIDI>'}: {reason}")

    def __reduce__(self):  # keeps the two fields through pickling (datasets.map with num_proc > 1)
        return (type(self), (self.path, self.reason))


@dataclass
class OctupleSong:
    """One parsed piece: every note as an Octuple token, sorted, with where each note came from.

    `ids` is sorted by `(bar, position, instrument, pitch, duration, velocity)`; column 0 holds the GLOBAL bar
    index (it may exceed 255; windows re-base it). `track_index[i]` / `note_index[i]` locate note `i` in
    `score.tracks[track_index[i]].notes[note_index[i]]` of the `symusic.Score` that `load_score` returns.
    """

    ids: np.ndarray
    track_index: np.ndarray
    note_index: np.ndarray
    track_names: list[str] = field(default_factory=list)
    track_programs: list[int] = field(default_factory=list)
    track_is_drum: list[bool] = field(default_factory=list)
    name: str | None = None

    def __len__(self) -> int:
        return int(self.ids.shape[0])


def _positions(ticks: np.ndarray, ticks_per_quarter: int) -> np.ndarray:
    """`round(ticks * 16 / tpq)` with Python's `round` (halves to even), in exact integer arithmetic.

    MusicBERT's preprocessing (and so the authors' data) computes `round(t * 16 / tpq)` in Python, which sends an
    exact half to the even neighbour: 0.5 -> 0, 1.5 -> 2. Rounding halves up instead gives another position or
    duration id to about 3 % of real notes. Integers, not floats: `t * 16 / tpq` is exact only while it fits a
    double's mantissa, and the remainder test below is exact for any int64.
    """
    scaled = ticks.astype(np.int64) * POSITIONS_PER_QUARTER
    quotient, remainder = np.divmod(scaled, ticks_per_quarter)
    twice = 2 * remainder
    round_up = (twice > ticks_per_quarter) | ((twice == ticks_per_quarter) & (quotient % 2 == 1))
    return quotient + round_up


def _smallest_factor(n: int) -> int:
    p = 2
    while p * p <= n:
        if n % p == 0:
            return p
        p += 1
    return n


def reduce_time_signature(numerator: int, denominator: int) -> tuple[int, int]:
    """Map any `numerator/denominator` onto `TIME_SIGNATURE_TABLE` (MusicBERT's reduction, then a fallback).

    1. while `d > 64` and `n` is even, halve both; 2. while `n > 2 * d`, divide `n` by its smallest factor.
    If the result is still not in the table (`d > 64` with odd `n`, or `d` not a power of two), the meter with
    the nearest bar length is used: `n' = clip(round(n * 64 / d), 1, 128)` over 64, in lowest terms.
    A zero numerator or denominator (unknown meter) gives 4/4.

    Example:

    ```python
    >>> reduce_time_signature(3, 4), reduce_time_signature(9, 4), reduce_time_signature(6, 256)
    ((3, 4), (3, 4), (1, 32))

    ```
    """
    n, d = int(numerator), int(denominator)
    if n <= 0 or d <= 0:
        return DEFAULT_METER
    while d > 64 and n % 2 == 0:
        n, d = n // 2, d // 2
    while n > 2 * d:
        n //= _smallest_factor(n)
    if d <= 64 and d & (d - 1) == 0:
        return n, d
    n = min(max(int(np.floor(n * 64 / d + 0.5)), 1), 128)
    d = 64
    while n % 2 == 0 and d > 1:
        n, d = n // 2, d // 2
    return n, d


def _time_signature_id(n: int, d: int) -> int:
    k = d.bit_length() - 1
    return 2 * (2**k - 1) + n - 1


def _tempo_ids(mspq: np.ndarray) -> np.ndarray:
    """Tempo ids from microseconds per quarter (a zero or negative value is read as the fastest tempo)."""
    mspq = mspq.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        bpm = np.where(mspq > 0, 60_000_000.0 / np.maximum(mspq, 1e-9), MAX_BPM)
    bpm = np.clip(np.nan_to_num(bpm, nan=DEFAULT_BPM, posinf=MAX_BPM), MIN_BPM, MAX_BPM)
    # np.rint rounds halves to even, as MusicBERT's `round(math.log2(bpm / 16) * 12)` does.
    return np.rint(12 * np.log2(bpm / MIN_BPM)).astype(np.int64)


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks, left = [], limit
    while left > 0:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _file_kind(mode: int) -> str:
    kinds = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))
    return next((kind for test, kind in kinds if test(mode)), "not a plain file")


_SCORE_TYPES = (symusic.core.ScoreTick, symusic.core.ScoreQuarter, symusic.core.ScoreSecond)


def _as_numpy(ids) -> np.ndarray:
    if isinstance(ids, torch.Tensor):
        return ids.detach().cpu().numpy().astype(np.int64)
    return np.asarray(ids, dtype=np.int64)


class OctupleTokenizer(PushToHubMixin):
    """Turns MIDI files into Octuple ids (one token of 8 attributes per note) and back.

    Args:
        max_length (`int`, *optional*, defaults to 1024):
            Tokens per window, BOS and EOS included, so a window holds at most `max_length - 2` notes.
        stride (`int`, *optional*, defaults to 0):
            Notes shared by two consecutive windows of a long piece (the Hugging Face meaning; 0 = no overlap).
        max_bars (`int`, *optional*, defaults to 256):
            Bars a window may span; a window ends early rather than exceed it (bar ids are re-based per window).
        max_notes (`int`, *optional*, defaults to 1_000_000):
            Pieces with more notes are rejected with `MidiError`, so a huge file cannot exhaust memory.
        max_bytes (`int`, *optional*, defaults to 33_554_432 (32 MiB)):
            Larger files and byte strings are rejected with `MidiError` before they are read whole or parsed.
        ignore_time_signatures (`bool`, *optional*, defaults to `False`):
            Read every file as 4/4: bars of 64 positions counted from the start, and 4/4 as the time-signature
            attribute, whatever time-signature events the file holds. For tasks whose labels do not depend on
            meter, so that a corpus's spurious meter (POP909's 1/4) cannot shape bar and position ids.

    Example:

    ```python
    >>> from tokenization_octuple import OctupleTokenizer
    >>> tok = OctupleTokenizer(max_length=512)
    >>> enc = tok(["adversarial_midibert/sample_midi/pop909/755.mid"], padding=True, return_tensors="pt")
    >>> enc["input_ids"].shape[-1], enc["input_ids"].shape[1]
    (8, 512)
    >>> midi = tok.decode(enc["input_ids"][0])  # a pretty_midi.PrettyMIDI; tok(midi) gives the same ids

    ```
    """

    ATTRIBUTES = ATTRIBUTES
    regular_vocab_sizes = REGULAR_VOCAB_SIZES
    vocab_sizes = tuple(n + NUM_SPECIAL for n in REGULAR_VOCAB_SIZES)
    pad_ids = tuple(n for n in REGULAR_VOCAB_SIZES)
    mask_ids = tuple(n + 1 for n in REGULAR_VOCAB_SIZES)
    bos_ids = tuple(n + 2 for n in REGULAR_VOCAB_SIZES)
    eos_ids = tuple(n + 3 for n in REGULAR_VOCAB_SIZES)
    model_input_names = ["input_ids", "attention_mask"]
    _auto_class = None

    def __init__(self, max_length: int = 1024, stride: int = 0, max_bars: int = 256, max_notes: int = 1_000_000,
                 max_bytes: int = DEFAULT_MAX_BYTES, ignore_time_signatures: bool = False, name_or_path: str = ""):
        self._check_window_settings(max_length, stride, max_bars)
        if max_notes < 1:
            raise ValueError(f"max_notes must be positive, got {max_notes}")
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        self.max_length = int(max_length)
        self.stride = int(stride)
        self.max_bars = int(max_bars)
        self.max_notes = int(max_notes)
        self.max_bytes = int(max_bytes)
        self.ignore_time_signatures = bool(ignore_time_signatures)
        self.name_or_path = str(name_or_path)  # where from_pretrained loaded it, as transformers objects keep it

    @staticmethod
    def _check_window_settings(max_length: int, stride: int, max_bars: int) -> None:
        if max_length < 3:
            raise ValueError(f"max_length must be at least 3 (BOS, one note, EOS), got {max_length}")
        if not 0 <= stride < max_length - 2:
            raise ValueError(f"stride must be in [0, max_length - 2) = [0, {max_length - 2}), got {stride}")
        if not 1 <= max_bars <= REGULAR_VOCAB_SIZES[0]:
            raise ValueError(f"max_bars must be in [1, {REGULAR_VOCAB_SIZES[0]}], got {max_bars}")

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(max_length={self.max_length}, stride={self.stride}, "
                f"max_bars={self.max_bars}, max_notes={self.max_notes}, max_bytes={self.max_bytes}, "
                f"ignore_time_signatures={self.ignore_time_signatures})")

    # ------------------------------------------------------------------ parsing

    def load_score(self, midi, name: str | None = None) -> symusic.Score:
        """Parse a MIDI input into a `symusic.Score` (ticks); the score that `track_index` / `note_index` refer to.

        Args:
            midi (`str`, `os.PathLike`, `bytes`, `pretty_midi.PrettyMIDI` or `symusic.Score`): the input.
            name (`str`, *optional*): a name for error messages when `midi` is not a path.

        Raises:
            `MidiError`: unreadable path, not a regular file (a FIFO, a device, a folder), more than `max_bytes`,
            empty or corrupt data, SMPTE timing, zero ticks per quarter.

        Example:

        ```python
        >>> score = OctupleTokenizer().load_score("adversarial_midibert/sample_midi/pop909/755.mid")
        >>> score.ticks_per_quarter > 0
        True

        ```
        """
        if isinstance(midi, _SCORE_TYPES):
            score = midi if isinstance(midi, symusic.core.ScoreTick) else midi.to("tick")
        else:
            data, name = self._read_bytes(midi, name)
            score = self._parse_bytes(data, name)
        if score.ticks_per_quarter <= 0:
            raise MidiError(name, f"unsupported timing: {score.ticks_per_quarter} ticks per quarter note")
        return score

    def _read_bytes(self, midi, name: str | None) -> tuple[bytes, str | None]:
        if isinstance(midi, (str, os.PathLike)):
            name = name or str(midi)
            return self._read_file(midi, name), name
        if isinstance(midi, (bytes, bytearray, memoryview)):
            self._check_size(len(midi), name)
            return bytes(midi), name
        if isinstance(midi, pretty_midi.PrettyMIDI):
            buffer = io.BytesIO()
            try:
                midi.write(buffer)
            except Exception as err:  # pretty_midi / mido validate values while writing
                raise MidiError(name, f"cannot write this PrettyMIDI object ({type(err).__name__}: {err})") from None
            self._check_size(buffer.tell(), name)
            return buffer.getvalue(), name
        raise MidiError(name, f"unsupported input type {type(midi).__name__} (expected a path, bytes, "
                              "pretty_midi.PrettyMIDI or symusic.Score)")

    def _read_file(self, path: str | os.PathLike, name: str) -> bytes:
        """At most `max_bytes` of a regular file; anything else is a `MidiError` before a byte is read.

        Opened non-blocking, so a FIFO without a writer is refused instead of blocking forever; checked with
        `fstat` on the open descriptor, so the file cannot be swapped between the check and the read; read with
        a limit, because a file may grow after `fstat` and a device like /dev/zero reports no size at all.
        """
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
        try:
            fd = os.open(path, flags)
        except OSError as err:
            raise MidiError(name, f"cannot read file ({err.strerror or err})") from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise MidiError(name, f"cannot read file (not a regular file: {_file_kind(info.st_mode)})")
            self._check_size(info.st_size, name)
            data = _read_at_most(fd, self.max_bytes + 1)
        except OSError as err:
            raise MidiError(name, f"cannot read file ({err.strerror or err})") from None
        finally:
            os.close(fd)
        self._check_size(len(data), name)
        return data

    def _check_size(self, size: int, name: str | None) -> None:
        if size > self.max_bytes:
            raise MidiError(name, f"file too large: {size} bytes > max_bytes={self.max_bytes}")

    @staticmethod
    def _parse_bytes(data: bytes, name: str | None) -> symusic.Score:
        if len(data) == 0:
            raise MidiError(name, "empty file (0 bytes)")
        if not data.startswith(b"MThd"):
            raise MidiError(name, "not a MIDI file (no MThd header)")
        try:
            return symusic.Score.from_midi(data)
        except Exception as err:  # symusic reports every parse failure as RuntimeError; be broad on purpose
            reason = str(err).replace("MiniMidi: ", "").strip() or type(err).__name__
            if "Division type" in reason:
                raise MidiError(name, "unsupported timing: SMPTE time division (only ticks per quarter note)") from None
            raise MidiError(name, f"corrupt MIDI file ({reason})") from None

    # ------------------------------------------------------------------ encoding

    def encode_song(self, midi, name: str | None = None) -> OctupleSong:
        """Tokenize a whole piece: every note, sorted, with its source track and note index.

        Args:
            midi (`str`, `os.PathLike`, `bytes`, `pretty_midi.PrettyMIDI` or `symusic.Score`): the input.
            name (`str`, *optional*): a name for messages when `midi` is not a path.

        Returns:
            `OctupleSong`: `ids` of shape `(n_notes, 8)`, column 0 the global bar index.

        Raises:
            `MidiError`: empty, corrupt, note-less, unsupported, more than `max_notes` notes or `max_bytes`
            bytes, or times beyond 32-bit ticks.

        Example:

        ```python
        >>> song = OctupleTokenizer().encode_song("adversarial_midibert/sample_midi/pop909/755.mid")
        >>> song.ids.shape[1], len(song) == len(song.track_index)
        (8, True)

        ```
        """
        if name is None and isinstance(midi, (str, os.PathLike)):
            name = str(midi)
        score = self.load_score(midi, name)
        return self._encode_score(score, name)

    def _encode_score(self, score: symusic.Score, name: str | None) -> OctupleSong:
        n_notes = int(score.note_num())
        if n_notes == 0:
            raise MidiError(name, "no notes")
        if n_notes > self.max_notes:
            raise MidiError(name, f"too many notes: {n_notes} > max_notes={self.max_notes}")
        tpq = int(score.ticks_per_quarter)

        names, programs, drums, counts, arrays = [], [], [], [], []
        for track in score.tracks:
            names.append(str(track.name))
            programs.append(min(max(int(track.program), 0), 127))
            drums.append(bool(track.is_drum))
            counts.append(int(track.note_num()))
            if counts[-1]:
                arrays.append(track.notes.numpy())
        # Per-track values spread over that track's notes: one concatenation per column, no per-note Python.
        count = np.asarray(counts, dtype=np.int64)
        is_drum = np.repeat(np.asarray(drums, dtype=bool), count)
        instrument = np.repeat(np.where(drums, DRUM_INSTRUMENT, programs).astype(np.int64), count)
        track_index = np.repeat(np.arange(len(counts), dtype=np.int32), count)
        first_note = np.repeat(np.cumsum(count) - count, count)
        note_index = (np.arange(n_notes, dtype=np.int64) - first_note).astype(np.int32)

        def column(key: str) -> np.ndarray:
            return np.concatenate([a[key] for a in arrays]).astype(np.int64)

        time, duration = column("time"), column("duration")
        self._check_timing(score, time, duration, name)
        end = time + duration
        onset = _positions(time, tpq)
        bar, position, ts_id = self._bars(score, tpq, onset, self.ignore_time_signatures)
        ids = np.empty((n_notes, 8), dtype=np.int64)
        ids[:, 0] = bar
        ids[:, 1] = position
        ids[:, 2] = instrument
        # int8 export: a data byte > 127 in a damaged file comes back negative; keep it inside 0..127
        ids[:, 3] = np.clip(column("pitch"), 0, 127) + 128 * is_drum
        ids[:, 4] = np.searchsorted(DURATION_TABLE, _positions(end, tpq) - onset, side="right") - 1
        ids[:, 5] = np.clip(column("velocity"), 0, 127) // 4
        ids[:, 6] = ts_id
        ids[:, 7] = self._note_tempos(score, tpq, onset)
        order = self._note_order(ids)
        return OctupleSong(ids=ids[order], track_index=track_index[order], note_index=note_index[order],
                           track_names=names, track_programs=programs, track_is_drum=drums, name=name)

    @staticmethod
    def _check_timing(score: symusic.Score, time: np.ndarray, duration: np.ndarray, name: str | None) -> None:
        """Refuse times that overflowed symusic's int32 ticks instead of quantizing garbage.

        A tick past 2**31 - 1 comes back negative (a note at tick 2,415,919,191 would land on bar 0, position 0),
        and a note whose end overflows has a negative duration or is dropped by the parser, which leaves the
        notes after it negative. Every real time is non-negative, so a negative time, a negative duration or an
        end past `MAX_TICK` (in int64 here) can only be such an overflow. (A time that wraps all the way past
        2**32 comes back small and positive: nothing after the parse can tell it from a real one.)
        """
        tempos, meters = score.tempos.numpy()["time"], score.time_signatures.numpy()["time"]
        problems = [
            ("a note starts at a negative tick", time.min(initial=0) < 0),
            ("a note has a negative duration", duration.min(initial=0) < 0),
            (f"a note ends after tick {MAX_TICK}", (time + duration).max(initial=0) > MAX_TICK),
            ("a tempo change at a negative tick", tempos.min(initial=0) < 0),
            ("a time signature at a negative tick", meters.min(initial=0) < 0),
        ]
        for what, found in problems:
            if found:
                raise MidiError(name, f"corrupt or out-of-range timing: {what} (ticks beyond 32 bits)")

    @staticmethod
    def _note_order(ids: np.ndarray) -> np.ndarray:
        """Stable order by (bar, position, instrument, pitch, duration, velocity).

        This order is a function of the ids alone, so decode -> encode returns the same sequence; stability
        keeps identical notes in file order. The six keys pack into one int64 (35 bits below the bar) unless
        the bar index is astronomically large, which a damaged file can produce.
        """
        bar = ids[:, 0]
        if bar.max(initial=0) < 1 << 27:
            key = bar << 35
            key |= ids[:, 1] << 28
            key |= ids[:, 2] << 20
            key |= ids[:, 3] << 12
            key |= ids[:, 4] << 5
            key |= ids[:, 5]
            return np.argsort(key, kind="stable")
        return np.lexsort((ids[:, 5], ids[:, 4], ids[:, 3], ids[:, 2], ids[:, 1], ids[:, 0]))

    @staticmethod
    def _bars(score: symusic.Score, tpq: int, onset: np.ndarray, ignore_time_signatures: bool = False):
        """Global bar, position in bar and time-signature id of each onset (positions); every file 4/4 when
        `ignore_time_signatures`."""
        sig = score.time_signatures.numpy()
        starts, meters = [], []
        if sig["time"].shape[0] and not ignore_time_signatures:
            order = np.argsort(sig["time"], kind="stable")
            sig_pos = _positions(np.maximum(sig["time"][order].astype(np.int64), 0), tpq)
            nums = sig["numerator"][order].astype(np.int64)
            dens = sig["denominator"][order].astype(np.int64)
            cache: dict[tuple[int, int], tuple[int, int]] = {}
            for p, n, d in zip(sig_pos.tolist(), nums.tolist(), dens.tolist()):
                meter = cache.get((n, d)) or cache.setdefault((n, d), reduce_time_signature(n, d))
                if starts and starts[-1] == p:
                    meters[-1] = meter  # several events at one position: the last one holds
                    continue
                starts.append(p)
                meters.append(meter)
        if not starts or starts[0] > 0:
            starts.insert(0, 0)
            meters.insert(0, DEFAULT_METER)
        # A repeated identical meter is not a change: it must not cut a bar short.
        keep = [0] + [i for i in range(1, len(starts)) if meters[i] != meters[i - 1]]
        seg_start = np.asarray([starts[i] for i in keep], dtype=np.int64)
        seg_meter = [meters[i] for i in keep]
        seg_len = np.asarray([n * 64 // d for n, d in seg_meter], dtype=np.int64)
        seg_ts = np.asarray([_time_signature_id(n, d) for n, d in seg_meter], dtype=np.int64)
        seg_bars = -(-np.diff(seg_start) // seg_len[:-1])  # ceil: a partial bar before a change is a bar
        seg_first_bar = np.concatenate([[0], np.cumsum(seg_bars)])
        seg = np.searchsorted(seg_start, onset, side="right") - 1
        offset = onset - seg_start[seg]
        length = seg_len[seg]
        return seg_first_bar[seg] + offset // length, offset % length, seg_ts[seg]

    @staticmethod
    def _note_tempos(score: symusic.Score, tpq: int, onset: np.ndarray) -> np.ndarray:
        tempo = score.tempos.numpy()
        if tempo["time"].shape[0] == 0:
            return np.full(onset.shape[0], DEFAULT_TEMPO_ID, dtype=np.int64)
        order = np.argsort(tempo["time"], kind="stable")
        pos = _positions(np.maximum(tempo["time"][order].astype(np.int64), 0), tpq)
        ids = _tempo_ids(tempo["mspq"][order])
        if pos[0] > 0:  # MIDI's default tempo holds until the first tempo event
            pos = np.concatenate([[0], pos])
            ids = np.concatenate([[DEFAULT_TEMPO_ID], ids])
        # side="right" picks the last of several tempo events at one position.
        return ids[np.searchsorted(pos, onset, side="right") - 1]

    # ------------------------------------------------------------------ windows

    def window_spans(self, song: OctupleSong, max_length: int | None = None,
                     stride: int | None = None) -> list[tuple[int, int]]:
        """Cut a song into `[start, end)` note ranges: no note lost, at most `max_length - 2` notes and
        `max_bars` bars each, consecutive windows sharing `stride` notes.

        Example:

        ```python
        >>> tok = OctupleTokenizer(max_length=130, stride=10)
        >>> spans = tok.window_spans(tok.encode_song("adversarial_midibert/sample_midi/pop909/755.mid"))
        >>> spans[0][0], spans[1][0] == spans[0][1] - 10
        (0, True)

        ```
        """
        max_length = self.max_length if max_length is None else int(max_length)
        stride = self.stride if stride is None else int(stride)
        self._check_window_settings(max_length, stride, self.max_bars)
        bars = song.ids[:, 0]
        n = bars.shape[0]
        capacity = max_length - 2
        # bar_limit[i]: first note at least max_bars bars after note i (bars are sorted).
        bar_limit = np.searchsorted(bars, bars + self.max_bars, side="left")
        spans, start = [], 0
        while True:
            end = int(min(start + capacity, n, bar_limit[start]))
            spans.append((start, end))
            if end >= n:
                return spans
            start = max(end - stride, start + 1)

    def window_ids(self, song: OctupleSong, start: int, end: int) -> np.ndarray:
        """`(end - start + 2, 8)` ids: BOS, notes `start..end-1` with bars re-based to the first note, EOS.

        Example:

        ```python
        >>> tok = OctupleTokenizer()
        >>> song = tok.encode_song("adversarial_midibert/sample_midi/pop909/755.mid")
        >>> w = tok.window_ids(song, 10, 20)
        >>> w.shape, int(w[1, 0])
        ((12, 8), 0)

        ```
        """
        if not 0 <= start < end <= len(song):
            raise ValueError(f"window [{start}, {end}) outside the song's {len(song)} notes")
        notes = song.ids[start:end].copy()
        notes[:, 0] -= notes[0, 0]
        if notes[-1, 0] >= REGULAR_VOCAB_SIZES[0]:
            raise ValueError(f"window [{start}, {end}) spans {notes[-1, 0] + 1} bars, more than "
                             f"{REGULAR_VOCAB_SIZES[0]}; use window_spans")
        return np.concatenate([np.asarray([self.bos_ids]), notes, np.asarray([self.eos_ids])]).astype(np.int64)

    def __call__(self, midi_or_list, max_length: int | None = None, stride: int | None = None,
                 padding: bool | str = False, return_tensors: str | None = None) -> BatchEncoding:
        """Tokenize one input or a list of inputs into windows.

        Args:
            midi_or_list: a path, bytes, `pretty_midi.PrettyMIDI`, `symusic.Score`, or a list/tuple of them.
            max_length (`int`, *optional*): tokens per window, BOS/EOS included (default `self.max_length`).
            stride (`int`, *optional*): notes shared by consecutive windows (default `self.stride`).
            padding (`bool` or `str`, *optional*, defaults to `False`): `True`/`"longest"` pads to the longest
                window, `"max_length"` to `max_length`, `False`/`"do_not_pad"` leaves windows as they are.
            return_tensors (`str`, *optional*): `"pt"`, `"np"` or `None` (Python lists).

        Returns:
            `BatchEncoding` with `input_ids` `(n_windows, L, 8)`, `attention_mask` `(n_windows, L)`,
            `overflow_to_sample_mapping` `(n_windows,)` (which input each window came from), and
            `track_index` / `note_index` `(n_windows, L)`, -1 on BOS/EOS/PAD.

        Example:

        ```python
        >>> tok = OctupleTokenizer()
        >>> enc = tok("adversarial_midibert/sample_midi/pop909/755.mid", max_length=256, padding=True, return_tensors="pt")
        >>> enc["input_ids"].shape[1:], enc["overflow_to_sample_mapping"].unique().tolist()
        (torch.Size([256, 8]), [0])

        ```
        """
        max_length = self.max_length if max_length is None else int(max_length)
        inputs = list(midi_or_list) if isinstance(midi_or_list, (list, tuple)) else [midi_or_list]
        if not inputs:
            raise ValueError("no MIDI input given")
        windows, tracks, notes, sample = [], [], [], []
        for i, midi in enumerate(inputs):
            song = self.encode_song(midi)
            for start, end in self.window_spans(song, max_length, stride):
                windows.append(self.window_ids(song, start, end))
                tracks.append(np.concatenate([[-1], song.track_index[start:end], [-1]]))
                notes.append(np.concatenate([[-1], song.note_index[start:end], [-1]]))
                sample.append(i)
        lengths = [w.shape[0] for w in windows]
        if padding in (True, "longest"):
            target = max(lengths)
        elif padding == "max_length":
            target = max_length
        elif padding in (False, None, "do_not_pad"):
            target = None
        else:
            raise ValueError(f"padding must be True, False, 'longest', 'max_length' or 'do_not_pad', got {padding!r}")
        if return_tensors not in (None, "pt", "np"):
            raise ValueError(f"return_tensors must be 'pt', 'np' or None, got {return_tensors!r}")
        if target is None and return_tensors is None:
            data = {"input_ids": [w.tolist() for w in windows],
                    "attention_mask": [[1] * n for n in lengths],
                    "track_index": [a.tolist() for a in tracks], "note_index": [a.tolist() for a in notes],
                    "overflow_to_sample_mapping": sample}
            return BatchEncoding(data)
        if target is None:
            if len(set(lengths)) > 1:
                raise ValueError("windows have different lengths; pass padding=True to return tensors")
            target = lengths[0]
        # Preallocated, PAD-filled arrays: one copy per window instead of a concatenation per padded column.
        input_ids = np.empty((len(windows), target, 8), dtype=np.int64)
        input_ids[:] = self.pad_ids
        attention_mask = np.zeros((len(windows), target), dtype=np.int64)
        track_index = np.full((len(windows), target), -1, dtype=np.int64)
        note_index = np.full((len(windows), target), -1, dtype=np.int64)
        for k, n in enumerate(lengths):
            input_ids[k, :n] = windows[k]
            attention_mask[k, :n] = 1
            track_index[k, :n] = tracks[k]
            note_index[k, :n] = notes[k]
        data = {"input_ids": input_ids, "attention_mask": attention_mask, "track_index": track_index,
                "note_index": note_index, "overflow_to_sample_mapping": np.asarray(sample, dtype=np.int64)}
        if return_tensors is None:
            return BatchEncoding({key: value.tolist() for key, value in data.items()})
        if return_tensors == "pt":
            data = {key: torch.from_numpy(value) for key, value in data.items()}
        return BatchEncoding(data)

    # ------------------------------------------------------------------ decoding

    def decode(self, ids) -> pretty_midi.PrettyMIDI:
        """Turn the ids of one window, `(L, 8)`, back into a `pretty_midi.PrettyMIDI` (480 ticks per quarter,
        tempo and time-signature changes written). Rows holding any special id are skipped; so are bars >= 256,
        so decode a long song window by window (`window_spans` + `window_ids`).

        For ids the tokenizer produced, `tok(decoded)` gives the same ids back (bar ids re-based to 0).

        Example:

        ```python
        >>> tok = OctupleTokenizer()
        >>> enc = tok("adversarial_midibert/sample_midi/pop909/755.mid", max_length=64, return_tensors=None)
        >>> midi = tok.decode(enc["input_ids"][0])
        >>> tok(midi, max_length=64)["input_ids"][0] == enc["input_ids"][0]
        True

        ```
        """
        score = self._ids_to_score(ids)
        if score.note_num() == 0:  # pretty_midi cannot read back a file without tracks
            return pretty_midi.PrettyMIDI(resolution=DECODE_TICKS_PER_QUARTER)
        return pretty_midi.PrettyMIDI(io.BytesIO(score.dumps_midi()))

    def _ids_to_score(self, ids) -> symusic.Score:
        ids = _as_numpy(ids)
        if ids.ndim == 3 and ids.shape[0] == 1:
            ids = ids[0]
        if ids.ndim != 2 or ids.shape[1] != len(ATTRIBUTES):
            raise ValueError(f"decode expects ids of shape (L, 8), got {tuple(ids.shape)}")
        regular = np.all((ids >= 0) & (ids < np.asarray(REGULAR_VOCAB_SIZES)), axis=1)
        ids = ids[regular]
        score = symusic.Score(DECODE_TICKS_PER_QUARTER)
        if ids.shape[0] == 0:
            return score
        bar, pos, instrument, pitch, dur, vel, ts, tempo = ids.T
        n_bars = int(bar.max()) + 1
        # Each bar takes the meter of its first note; empty bars keep the meter before them.
        bar_ts = np.full(n_bars, -1, dtype=np.int64)
        bar_ts[bar[::-1]] = ts[::-1]
        filled = np.where(bar_ts >= 0, np.arange(n_bars), 0)
        bar_ts = bar_ts[np.maximum.accumulate(filled)]
        bar_ts[bar_ts < 0] = ts[np.argmin(bar)]
        meters = np.asarray(TIME_SIGNATURE_TABLE, dtype=np.int64)[bar_ts]
        bar_len = meters[:, 0] * 64 // meters[:, 1]
        bar_start = np.concatenate([[0], np.cumsum(bar_len)[:-1]])

        change = np.concatenate([[True], bar_ts[1:] != bar_ts[:-1]])
        score.time_signatures = symusic.TimeSignature.from_numpy(
            (bar_start[change] * TICKS_PER_POSITION).astype(np.int32), meters[change, 0].astype(np.int32),
            meters[change, 1].astype(np.int32))

        onset = (bar_start[bar] + pos) * TICKS_PER_POSITION
        # A zero-length note would vanish from the file; one tick keeps it and still quantizes to 0.
        length = np.maximum(DURATION_TABLE[dur] * TICKS_PER_POSITION, 1)
        order = np.argsort(onset, kind="stable")
        t_onset, t_tempo = onset[order], tempo[order]
        first = np.concatenate([[True], t_tempo[1:] != t_tempo[:-1]])
        tempo_ticks = np.where(np.arange(first.shape[0]) == 0, 0, t_onset)[first]
        bpm = MIN_BPM * 2.0 ** (t_tempo[first] / 12.0)
        score.tempos = symusic.Tempo.from_numpy(
            tempo_ticks.astype(np.int32), np.round(60_000_000.0 / bpm).astype(np.int32))

        layer = self._overlap_layers(instrument, pitch, onset, length)
        for inst, lay in sorted(set(zip(instrument.tolist(), layer.tolist()))):
            sel = (instrument == inst) & (layer == lay)
            is_drum = inst == DRUM_INSTRUMENT
            name = "Drums" if is_drum else pretty_midi.program_to_instrument_name(inst)
            track = symusic.Track(name, 0 if is_drum else inst, is_drum)
            track.notes = symusic.Note.from_numpy(onset[sel].astype(np.int32), length[sel].astype(np.int32),
                                                  (pitch[sel] % 128).astype(np.int8),
                                                  np.clip(vel[sel] * 4 + 2, 1, 127).astype(np.int8))
            score.tracks.append(track)
        return score

    @staticmethod
    def _overlap_layers(instrument, pitch, onset, length) -> np.ndarray:
        """Split notes of one instrument and pitch that overlap into separate tracks (layers).

        MIDI cannot hold two sounding notes of one pitch on one track unambiguously: parsers pair note-offs
        differently (pretty_midi closes every open note of that pitch). One track per layer keeps every
        note's duration exact through any parser.
        """
        layer = np.zeros(onset.shape[0], dtype=np.int64)
        order = np.lexsort((onset, pitch, instrument))
        same = (instrument[order][1:] == instrument[order][:-1]) & (pitch[order][1:] == pitch[order][:-1])
        overlap = same & (onset[order][1:] < (onset + length)[order][:-1])
        if not overlap.any():
            return layer
        groups: dict[tuple[int, int], list[int]] = {}
        for k in order.tolist():  # only reached for pieces with overlapping same-pitch notes
            groups.setdefault((int(instrument[k]), int(pitch[k])), []).append(k)
        for members in groups.values():
            ends: list[int] = []  # end tick of the last note in each layer
            for k in members:
                start, stop = int(onset[k]), int(onset[k] + length[k])
                for lay, end in enumerate(ends):
                    if end <= start:
                        ends[lay] = stop
                        layer[k] = lay
                        break
                else:
                    layer[k] = len(ends)
                    ends.append(stop)
        return layer

    # ------------------------------------------------------------------ augmentation

    @staticmethod
    def transpose(ids, semitones: int):
        """Shift every non-drum pitch by `semitones`, clipped to 0..127; drums and special ids are untouched.

        Args:
            ids (`np.ndarray` or `torch.Tensor` of shape `(..., L, 8)`): Octuple ids.
            semitones (`int`): the shift.

        Example:

        ```python
        >>> import numpy as np
        >>> ids = np.array([[0, 0, 0, 60, 4, 20, 9, 24], [0, 0, 128, 164, 4, 20, 9, 24]])
        >>> OctupleTokenizer.transpose(ids, 3)[:, 3].tolist()
        [63, 164]

        ```
        """
        if isinstance(ids, torch.Tensor):
            out = ids.clone()
            pitch = out[..., 3]
            melodic = pitch < 128
            out[..., 3] = torch.where(melodic, (pitch + int(semitones)).clamp(0, 127), pitch)
            return out
        out = np.array(ids, copy=True)
        pitch = out[..., 3]
        out[..., 3] = np.where(pitch < 128, np.clip(pitch + int(semitones), 0, 127), pitch)
        return out

    @staticmethod
    def random_transpose(ids: torch.Tensor, max_semitones: int = 6,
                         generator: torch.Generator | None = None) -> torch.Tensor:
        """Transpose each sequence of a batch by its own uniform shift in `[-k, k]`, limited to the shifts that
        keep every non-drum pitch of that sequence inside 0..127 (so nothing is clipped).

        Args:
            ids (`torch.Tensor` of shape `(B, L, 8)`): Octuple ids.
            max_semitones (`int`, *optional*, defaults to 6): `k`.
            generator (`torch.Generator`, *optional*): for reproducible shifts.

        Example:

        ```python
        >>> import torch
        >>> ids = torch.tensor([[[0, 0, 0, 60, 4, 20, 9, 24]]])
        >>> shifted = OctupleTokenizer.random_transpose(ids, 6, torch.Generator().manual_seed(0))
        >>> -6 <= int(shifted[0, 0, 3]) - 60 <= 6
        True

        ```
        """
        ids = torch.as_tensor(ids)
        if ids.ndim != 3:
            raise ValueError(f"random_transpose expects (B, L, 8) ids, got {tuple(ids.shape)}")
        pitch = ids[..., 3]
        melodic = pitch < 128
        big, k = 1 << 20, int(max_semitones)
        lowest = torch.where(melodic, pitch, torch.full_like(pitch, big)).amin(dim=1)
        highest = torch.where(melodic, pitch, torch.full_like(pitch, -big)).amax(dim=1)
        low = torch.clamp(-lowest, min=-k).clamp(max=0)    # sequences without melodic notes: [-k, k]
        high = torch.clamp(127 - highest, max=k).clamp(min=0)
        draw = torch.rand(ids.shape[0], generator=generator,
                          device=ids.device if generator is None else generator.device).to(ids.device)
        shift = (low + torch.floor(draw * (high - low + 1)).long()).clamp(max=high)
        out = ids.clone()
        out[..., 3] = torch.where(melodic, pitch + shift[:, None], pitch)
        return out

    # ------------------------------------------------------------------ Hub

    @classmethod
    def register_for_auto_class(cls, auto_class: str = "AutoTokenizer") -> None:
        """Called by `AutoTokenizer` on remote-code classes; the class only ever maps to `AutoTokenizer`."""
        cls._auto_class = auto_class if isinstance(auto_class, str) else auto_class.__name__

    def _settings(self) -> dict:
        return {"format_version": FORMAT_VERSION, "max_length": self.max_length, "stride": self.stride,
                "max_bars": self.max_bars, "max_notes": self.max_notes, "max_bytes": self.max_bytes,
                "ignore_time_signatures": self.ignore_time_signatures}

    def save_pretrained(self, save_directory: str | os.PathLike, push_to_hub: bool = False,
                        **kwargs: Any) -> tuple[str, ...]:
        """Write `tokenizer_config.json` (with the `AutoTokenizer` auto_map), `octuple_tokenizer.json` (the
        settings) and a copy of this module, so `AutoTokenizer.from_pretrained(dir, trust_remote_code=True)`
        rebuilds the same tokenizer anywhere.

        Example:

        ```python
        >>> import tempfile
        >>> from transformers import AutoTokenizer
        >>> with tempfile.TemporaryDirectory() as d:
        ...     _ = OctupleTokenizer(max_length=512).save_pretrained(d)
        ...     OctupleTokenizer.from_pretrained(d).max_length
        512

        ```
        """
        if os.path.isfile(save_directory):
            raise ValueError(f"save_directory {save_directory} is a file, not a directory")
        os.makedirs(save_directory, exist_ok=True)
        settings_path = os.path.join(save_directory, SETTINGS_FILE)
        config_path = os.path.join(save_directory, CONFIG_FILE)
        module_path = os.path.join(save_directory, Path(__file__).name)
        with open(settings_path, "w", encoding="utf-8") as f:
            json.dump(self._settings(), f, indent=2)
            f.write("\n")
        config = {"tokenizer_class": type(self).__name__,
                  "auto_map": {"AutoTokenizer": [f"{Path(__file__).stem}.{type(self).__name__}", None]},
                  "model_input_names": list(self.model_input_names), **self._settings()}
        with open(config_path, "w", encoding="utf-8") as f:
            json.dump(config, f, indent=2)
            f.write("\n")
        if os.path.abspath(__file__) != os.path.abspath(module_path):
            shutil.copyfile(__file__, module_path)
        if push_to_hub:
            repo_id = kwargs.pop("repo_id", None) or str(save_directory).rstrip("/").split("/")[-1]
            self.push_to_hub(repo_id, **{k: v for k, v in kwargs.items()
                                         if k in ("commit_message", "private", "token", "revision", "create_pr")})
        return settings_path, config_path, module_path

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs: Any) -> "OctupleTokenizer":
        """Load a tokenizer saved with `save_pretrained`, from a folder or a Hub repository id.

        Keyword arguments naming a setting (`max_length`, `stride`, `max_bars`, `max_notes`, `max_bytes`,
        `ignore_time_signatures`) override the saved value; Hub arguments (`revision`, `cache_dir`, `token`, `local_files_only`, ...) are passed to
        the download.

        Example:

        ```python
        >>> from transformers import AutoTokenizer
        >>> tok = AutoTokenizer.from_pretrained("runs/pretrain", trust_remote_code=True)  # doctest: +SKIP

        ```
        """
        hub_keys = ("cache_dir", "force_download", "proxies", "token", "revision", "local_files_only",
                    "subfolder", "_commit_hash", "user_agent")
        hub_kwargs = {k: kwargs[k] for k in hub_keys if kwargs.get(k) is not None}
        path = cached_file(pretrained_model_name_or_path, SETTINGS_FILE, **hub_kwargs)
        with open(path, encoding="utf-8") as f:
            settings = json.load(f)
        version = settings.pop("format_version", FORMAT_VERSION)
        if version > FORMAT_VERSION:
            raise ValueError(f"{path} has format version {version}; this tokenizer reads up to {FORMAT_VERSION}")
        for key in SETTINGS:
            if key in kwargs:
                settings[key] = kwargs[key]
        return cls(**settings, name_or_path=str(pretrained_model_name_or_path))
