"""The freeze book of adversarial pre-training (SPEC.md, step 6): one bit per note of every training song.

A set bit means the note is frozen: the masker may not choose it. The book is keyed by song id and by the note's
index in the song's sorted notes, so overlapping windows (stride > 0) read and write the same bits. It is stored
as ONE packed bit array (`numpy.packbits`) with per-song offsets: 1 bit per note, so a corpus of 300 k songs of
3 k notes takes about 110 MB of bits, not 900 M Python objects. Updates with rank momentum (the default of
`config.freeze_rank_momentum`) also keep one byte per note, each note's smoothed rank in its song: 900 MB more
for that corpus.

Every data-parallel process must hold the same book. `FreezeBook.update` is a pure function of the book, the
scores and the seed, so every process that feeds it the same (gathered) scores ends with identical bits.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence

import numpy as np
import torch

FREEZE_BOOK_NAME = "freeze_book.npz"


def _count(percent: float, total: int) -> int:
    """`percent` % of `total`, rounded half up (15 % of 10 notes is 2 notes, not 1)."""
    return int(np.floor(percent * total / 100.0 + 0.5))


class FreezeBook:
    """Which notes of each training song are frozen (never chosen for masking again).

    Args:
        song_ids (`Sequence[str]`):
            One id per song (the window dataset's `song_id` column). Row `r` of the book is `song_ids[r]`.
        num_notes (`Sequence[int]`):
            Number of notes of each song (all of its sorted notes, not one window's).

    Example:

    >>> from adversarial_midibert.pretraining.freeze_book import FreezeBook
    >>> import numpy as np
    >>> book = FreezeBook(["a.mid", "b.mid"], [10, 4])
    >>> scores = {0: np.linspace(0, 1, 10), 1: np.array([0.9, 0.1, 0.2, 0.3])}
    >>> book.update(scores, freeze_percent=30, unfreeze_percent=0, seed=0)
    >>> book.frozen(0).nonzero()[0].tolist(), book.frozen(1).nonzero()[0].tolist()
    ([7, 8, 9], [0])
    """

    def __init__(self, song_ids: Sequence[str], num_notes: Sequence[int]):
        if len(song_ids) != len(num_notes):
            raise ValueError(f"{len(song_ids)} song ids but {len(num_notes)} note counts")
        self.song_ids = [str(s) for s in song_ids]
        self.row_of = {song_id: row for row, song_id in enumerate(self.song_ids)}
        if len(self.row_of) != len(self.song_ids):
            raise ValueError("song ids must be unique")
        self.num_notes = np.asarray(num_notes, dtype=np.int64).reshape(-1)
        if (self.num_notes < 0).any():
            raise ValueError("note counts must be >= 0")
        self.offsets = np.concatenate([[0], np.cumsum(self.num_notes)]).astype(np.int64)
        self.bits = self.bits_for(int(self.offsets[-1]))
        # Smoothed within-song rank of each note, 0 (lowest score) .. 255 (highest), allocated by the first update
        # with momentum (a book without momentum stays at 1 bit per note); valid for the songs in `ranked`, so a
        # song first scored late starts from its own ranking, not from zeros.
        self.ranks: np.ndarray | None = None
        self.ranked = np.zeros(len(self.song_ids), dtype=bool)
        self.num_updates = 0

    @staticmethod
    def bits_for(total_notes: int) -> np.ndarray:
        return np.zeros((total_notes + 7) // 8, dtype=np.uint8)

    def __len__(self) -> int:
        return len(self.song_ids)

    @property
    def total_notes(self) -> int:
        return int(self.offsets[-1])

    def _read(self, start: int, stop: int) -> np.ndarray:
        if stop <= start:
            return np.zeros(0, dtype=bool)
        first, last = start // 8, (stop + 7) // 8
        unpacked = np.unpackbits(self.bits[first:last])
        return unpacked[start - 8 * first : stop - 8 * first].astype(bool)

    def _write(self, start: int, values: np.ndarray) -> None:
        stop = start + len(values)
        if stop <= start:
            return
        first, last = start // 8, (stop + 7) // 8
        unpacked = np.unpackbits(self.bits[first:last])
        unpacked[start - 8 * first : stop - 8 * first] = values
        self.bits[first:last] = np.packbits(unpacked)

    def frozen(self, row: int, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Bits of song `row`, notes `start` to `stop` (default: to the end), as a `bool` array."""
        n = int(self.num_notes[row])
        stop = n if stop is None else min(stop, n)
        start = max(0, min(start, stop))
        base = int(self.offsets[row])
        return self._read(base + start, base + stop)

    def set_frozen(self, row: int, values: np.ndarray) -> None:
        """Overwrite the bits of song `row` (length must be its note count)."""
        values = np.asarray(values, dtype=bool)
        if len(values) != self.num_notes[row]:
            raise ValueError(f"song {self.song_ids[row]!r} has {self.num_notes[row]} notes, got {len(values)} bits")
        self._write(int(self.offsets[row]), values.astype(np.uint8))

    def frozen_fraction(self) -> float:
        """Fraction of all notes of the book that are frozen."""
        total = self.total_notes
        if total == 0:
            return 0.0
        # packbits pads the last byte with zeros, so a plain popcount of the bytes is exact.
        return float(np.unpackbits(self.bits).sum()) / total

    def selectable_mask(
        self, rows: torch.Tensor, window_starts: torch.Tensor, real_notes: torch.Tensor
    ) -> torch.Tensor:
        """The notes of a batch of windows that the masker may choose: real notes that are not frozen.

        Args:
            rows (`torch.LongTensor` of shape `(batch_size,)`):
                Book row of each window's song; -1 for a song the book does not hold (nothing frozen).
            window_starts (`torch.LongTensor` of shape `(batch_size,)`):
                Index, in the song's notes, of each window's first note.
            real_notes (`torch.BoolTensor` of shape `(batch_size, seq_len)`):
                True on real notes (not BOS/EOS/PAD). A window's notes are contiguous from position 1 (after BOS).

        Returns:
            `torch.BoolTensor` of shape `(batch_size, seq_len)`.
        """
        frozen = np.zeros(tuple(real_notes.shape), dtype=bool)
        counts = real_notes.sum(dim=1).tolist()
        for b, (row, start, count) in enumerate(zip(rows.tolist(), window_starts.tolist(), counts)):
            if row < 0 or count == 0:
                continue
            bits = self.frozen(row, start, start + count)
            frozen[b, 1 : 1 + len(bits)] = bits
        return real_notes & ~torch.from_numpy(frozen).to(real_notes.device)

    def update(
        self,
        scores: Mapping[int, np.ndarray],
        freeze_percent: float,
        unfreeze_percent: float,
        seed: int,
        momentum: float = 0.0,
    ) -> None:
        """One freeze step (SPEC.md step 6), in place, for the songs in `scores`.

        In each song, ALL of its notes (frozen ones included) are ranked by the masker's score on the clean input,
        and the top `freeze_percent` % are frozen (added to the frozen set); then `unfreeze_percent` % of the
        frozen set are unfrozen, uniformly at random. A masker that keeps its ranking therefore holds about
        a * (1 - b) % of each song frozen (27 % with a = 30, b = 10); only a masker that changes its mind grows
        the set. Ranking only the unfrozen notes instead would freeze a % more at every update and saturate at
        1 - b after a few updates, leaving the masker nothing to choose.

        With `momentum` m > 0 the ranking is of the note's smoothed rank, m * previous + (1 - m) * this update's
        (ranks as 0..255 within the song, ties broken by this update's score, then by the earlier note). Why: a
        masker that is still learning reorders its notes between updates (rank correlation 0.2 between two
        epochs of the head-only main job), and every reordering freezes a new 30 %; m = 0.7 kept that run below
        half frozen (docs/pretraining.md). m = 0 is the paper's rule; a consistent ranking gives the same set
        either way.

        Args:
            scores (`Mapping[int, np.ndarray]`):
                Book row -> masking score (logit or probability: only the order matters) of each of the song's
                notes, shape `(num_notes,)`.
            freeze_percent (`float`): a in the paper.
            unfreeze_percent (`float`): b in the paper.
            seed (`int`):
                Seed of the random unfreezing; the generator is derived from `(seed, number of past updates)`, so a
                resumed run and every data-parallel process draw the same notes.
            momentum (`float`, *optional*, defaults to 0): weight of the past ranks, in [0, 1).
        """
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must lie in [0, 1), got {momentum}")
        rng = np.random.default_rng([int(seed), self.num_updates])
        for row in sorted(scores):
            score = np.asarray(scores[row], dtype=np.float64).reshape(-1)
            n = int(self.num_notes[row])
            if len(score) != n:
                raise ValueError(f"song {self.song_ids[row]!r} has {n} notes, got {len(score)} scores")
            order = self._smoothed_order(row, score, momentum)
            frozen = self.frozen(row)
            n_freeze = _count(freeze_percent, n)
            if n_freeze:
                frozen[order[:n_freeze]] = True
            frozen_notes = np.flatnonzero(frozen)
            n_unfreeze = _count(unfreeze_percent, len(frozen_notes))
            if n_unfreeze:
                frozen[rng.choice(frozen_notes, size=n_unfreeze, replace=False)] = False
            self.set_frozen(row, frozen)
        self.num_updates += 1

    def _rank_storage(self) -> np.ndarray:
        """The per-note rank bytes, allocated on first use (a book never updated with momentum has none)."""
        if self.ranks is None:
            self.ranks = np.zeros(self.total_notes, dtype=np.uint8)
        return self.ranks

    def _smoothed_order(self, row: int, score: np.ndarray, momentum: float) -> np.ndarray:
        """Song `row`'s notes, highest (smoothed) rank first; updates the stored ranks."""
        n = len(score)
        by_score = np.argsort(-score, kind="stable")  # highest score first, ties to the earlier note
        if momentum == 0 or n < 2:
            return by_score
        rank = np.empty(n, dtype=np.float64)
        rank[by_score] = np.linspace(255.0, 0.0, n)
        base = int(self.offsets[row])
        stored = self._rank_storage()[base : base + n]
        if self.ranked[row]:
            rank = momentum * stored + (1.0 - momentum) * rank
        stored[:] = np.rint(rank).astype(np.uint8)
        self.ranked[row] = True
        # Primary key the stored (rounded) rank, descending; ties keep by_score's order.
        return by_score[np.argsort(-stored[by_score].astype(np.int16), kind="stable")]

    def digest(self) -> str:
        """A short hash of ids, counts and bits: equal digests mean equal books (used to compare processes)."""
        h = hashlib.sha256()
        h.update("\0".join(self.song_ids).encode())
        h.update(self.num_notes.tobytes())
        h.update(self.bits.tobytes())
        if self.ranks is not None:
            h.update(self.ranks.tobytes())
            h.update(self.ranked.tobytes())
        h.update(str(self.num_updates).encode())
        return h.hexdigest()[:16]

    def state_dict(self) -> dict[str, np.ndarray]:
        state = {
            "song_ids": np.asarray(self.song_ids, dtype=np.str_),
            "num_notes": self.num_notes.copy(),
            "bits": self.bits.copy(),
            "num_updates": np.asarray(self.num_updates, dtype=np.int64),
        }
        if self.ranks is not None:
            state.update(ranks=self.ranks.copy(), ranked=self.ranked.copy())
        return state

    def load_state_dict(self, state: Mapping[str, np.ndarray]) -> None:
        """Restore bits saved by `state_dict`, matching songs by id.

        Raises `ValueError` when a song of this book is missing from the state or has another note count: a
        resumed run must train on the same songs, or its freezing would silently start over.
        """
        saved = FreezeBook([str(s) for s in state["song_ids"]], state["num_notes"])
        saved.bits = np.asarray(state["bits"], dtype=np.uint8).copy()
        if len(saved.bits) != len(saved.bits_for(saved.total_notes)):
            raise ValueError("the saved freeze book's bits do not match its note counts")
        for row, song_id in enumerate(self.song_ids):
            if song_id not in saved.row_of:
                raise ValueError(f"the saved freeze book lacks song {song_id!r} of this run")
            if saved.num_notes[saved.row_of[song_id]] != self.num_notes[row]:
                raise ValueError(
                    f"song {song_id!r}: {self.num_notes[row]} notes here, "
                    f"{saved.num_notes[saved.row_of[song_id]]} in the saved freeze book"
                )
        if "ranks" in state:  # a book without momentum (or saved before it existed) has none
            saved.ranks = np.asarray(state["ranks"], dtype=np.uint8).copy()
            saved.ranked = np.asarray(state["ranked"], dtype=bool).copy()
            if len(saved.ranks) != saved.total_notes or len(saved.ranked) != len(saved):
                raise ValueError("the saved freeze book's ranks do not match its note counts")
        if saved.song_ids == self.song_ids:
            self.bits, self.ranks, self.ranked = saved.bits, saved.ranks, saved.ranked
        else:
            for row, song_id in enumerate(self.song_ids):
                self.copy_song(saved, saved.row_of[song_id], row)
        self.num_updates = int(state["num_updates"])

    def copy_song(self, other: "FreezeBook", other_row: int, row: int) -> None:
        """Song `other_row` of `other` (bits and ranks) into row `row` of this book (same note count)."""
        self.set_frozen(row, other.frozen(other_row))
        if other.ranks is None:
            return
        a, b = int(self.offsets[row]), int(other.offsets[other_row])
        n = int(self.num_notes[row])
        self._rank_storage()[a : a + n] = other.ranks[b : b + n]
        self.ranked[row] = other.ranked[other_row]

    def save(self, path: str | os.PathLike) -> None:
        np.savez_compressed(path, **self.state_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "FreezeBook":
        with np.load(path, allow_pickle=False) as state:
            book = cls([str(s) for s in state["song_ids"]], state["num_notes"])
            book.load_state_dict(state)
        return book

    def subset(self, song_ids: Sequence[str]) -> "FreezeBook":
        """A new book holding only `song_ids` (with their bits): the shard of a streaming data shard."""
        rows = [self.row_of[s] for s in song_ids]
        part = FreezeBook(list(song_ids), self.num_notes[rows])
        for new_row, row in enumerate(rows):
            part.copy_song(self, row, new_row)
        part.num_updates = self.num_updates
        return part
