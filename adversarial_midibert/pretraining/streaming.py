"""Pre-training on corpora larger than memory: pre-tokenized shards, streamed, with a sharded freeze book.

Tokenize once into Parquet shards (songs never straddle two shards; an `index.json` lists every shard's songs and
note counts and the tokenizer's settings):

    python -m adversarial_midibert.pretraining.streaming --data corpus/ --output shards/ --songs_per_shard 2000 \
        --max_length 1024 --validation_fraction 0.01 --num_proc 16

then train from the shards on any number of processes and machines (make the number of training shards a multiple
of the number of processes, so that every process streams whole shards):

    accelerate launch --multi_gpu --num_machines 2 --num_processes 16 --machine_rank 0 \
        --main_process_ip 10.0.0.1 --main_process_port 29500 train/pretrain.py --preset paper --bf16 \
        --streaming_dir shards/ --output_dir runs/paper

Process r streams training shards r, r + world_size, ... (shard order and window order reshuffled every epoch, one
shard in memory at a time) and holds the freeze book of THEIR songs only: one bit
per note, keyed by song id. Each process scores its own songs when the book is updated, so no scores travel between
processes, and each checkpoint holds one book file per data shard (`freeze_books/<shard>.npz`), written by the
process that owns the shard.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from adversarial_midibert.data.dataset import (
    BuildReport,
    MidiSource,
    NoUsableMidiError,
    build_window_dataset,
    song_note_counts,
    split_by_song,
)
from adversarial_midibert.pretraining.freeze_book import FreezeBook

INDEX_NAME = "index.json"
_FORMAT = 1


def write_shards(
    sources: Sequence[MidiSource],
    tokenizer: Any,
    output_dir: str | os.PathLike,
    *,
    songs_per_shard: int = 1000,
    validation_fraction: float = 0.0,
    seed: int = 42,
    num_proc: int = 1,
) -> dict:
    """Tokenize `sources` into Parquet shards of whole songs under `output_dir`, plus `index.json`.

    Raises:
        `NoUsableMidiError`: no training song could be tokenized (a shard whose files are all bad is only left out).

    Returns:
        `dict`: the index (`tokenizer` settings; `train` / `validation` lists of shards, each with its `file`,
        `windows` and `songs` as `[song_id, song_index, num_notes]`; `skipped` files with their reasons).

    Example:

    >>> from tokenization_octuple import OctupleTokenizer
    >>> from adversarial_midibert.presets import SAMPLE_MIDI
    >>> from adversarial_midibert.data.dataset import find_midi_files
    >>> from adversarial_midibert.pretraining.streaming import write_shards
    >>> index = write_shards(find_midi_files(SAMPLE_MIDI / "emopia"), OctupleTokenizer(max_length=64),
    ...                      "/tmp/doctest-shards", songs_per_shard=3)
    >>> [len(shard["songs"]) for shard in index["train"]]
    [3, 3, 2]
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    train, valid = split_by_song(sources, validation_fraction, seed)
    index: dict[str, Any] = {
        "format": _FORMAT,
        "tokenizer": {k: getattr(tokenizer, k) for k in ("max_length", "stride", "max_bars", "max_notes", "max_bytes")},
        "train": [],
        "validation": [],
        "skipped": [],
    }
    for split, positions in (("train", train), ("validation", valid)):
        for shard, begin in enumerate(range(0, len(positions), songs_per_shard)):
            chunk = positions[begin : begin + songs_per_shard]
            try:
                windows, report = build_window_dataset([sources[i] for i in chunk], tokenizer, num_proc=num_proc)
            except NoUsableMidiError as err:  # one shard of bad files is no reason to stop; no shard at all is
                index["skipped"] += [list(s) for s in err.report.skipped]
                continue
            # song_index must stay the song's position in `sources`, unique across all shards.
            windows = windows.map(lambda batch: {"song_index": [chunk[i] for i in batch]}, input_columns="song_index",
                                  batched=True, desc=f"{split} shard {shard}")
            name = f"{split}-{shard:05d}.parquet"
            windows.to_parquet(str(output_dir / name))
            counts = song_note_counts(windows)
            index_of = {sources[i].song_id: i for i in chunk}
            index[split].append({
                "file": name,
                "windows": len(windows),
                "songs": [[song_id, index_of[song_id], n] for song_id, n in sorted(counts.items())],
            })
            index["skipped"] += [list(s) for s in report.skipped]
    if not index["train"]:
        raise NoUsableMidiError(BuildReport(num_files=len(sources), skipped=[tuple(s) for s in index["skipped"]]))
    (output_dir / INDEX_NAME).write_text(json.dumps(index))
    return index


def read_index(directory: str | os.PathLike) -> dict:
    path = Path(directory) / INDEX_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: write the shards first (python -m adversarial_midibert.pretraining.streaming)")
    index = json.loads(path.read_text())
    if index.get("format") != _FORMAT:
        raise ValueError(f"{path}: shard format {index.get('format')}, this version reads {_FORMAT}")
    return index


class ShardedWindowStream(torch.utils.data.IterableDataset):
    """The training windows of ONE process: its shards (`rank`, `rank + world_size`, ...) streamed from Parquet.

    Every epoch visits the shards in a seeded random order and each shard's windows in a seeded random order, one
    shard in memory at a time. (A `datasets` streaming `IterableDataset` with `.shuffle()` does the same but
    stalled 5 s at the end of every pass here, datasets 5.2.) The order depends only on (seed, epoch, rank), so a
    resumed run replays it exactly. It has a length, the smallest number of windows any process owns, so the
    `Trainer` counts epochs as usual and every process runs the same number of steps (data-parallel steps must
    match). With DataLoader workers, worker w takes every w-th window of the process's order.

    Args:
        directory (`str`): the shards' folder.
        rank (`int`), world_size (`int`): this process and the number of processes.
        seed (`int`): shuffling seed (combined with the epoch and the rank).
    """

    sharded_by_rank = True

    def __init__(self, directory: str | os.PathLike, rank: int = 0, world_size: int = 1, seed: int = 42):
        self.directory = Path(directory)
        index = read_index(directory)
        shards = index["train"]
        if len(shards) < world_size:
            raise ValueError(f"{len(shards)} training shards for {world_size} processes: write more, smaller shards")
        self.shards = shards[rank::world_size]
        self.length = min(sum(s["windows"] for s in shards[r::world_size]) for r in range(world_size))
        self._files = [str(self.directory / s["file"]) for s in self.shards]
        self.rank, self.seed, self.epoch = rank, seed, 0

    def __len__(self) -> int:
        return self.length

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[dict]:
        import pyarrow.parquet as pq

        worker = torch.utils.data.get_worker_info()
        workers, worker_id = (worker.num_workers, worker.id) if worker is not None else (1, 0)
        rng = np.random.default_rng([self.seed, self.epoch, self.rank])
        position = 0
        for shard in rng.permutation(len(self._files)):
            table = pq.read_table(self._files[shard])
            table = table.take(rng.permutation(table.num_rows))
            for batch in table.to_batches(max_chunksize=256):
                for row in batch.to_pylist():
                    if position == self.length:
                        return
                    if position % workers == worker_id:
                        yield row
                    position += 1

    def all_windows(self) -> Iterator[dict]:
        """Every window of this process's shards once, in file order (scoring for the freeze book)."""
        import pyarrow.parquet as pq

        for file in self._files:
            for batch in pq.ParquetFile(file).iter_batches(batch_size=256):
                yield from batch.to_pylist()

    def freeze_book(self) -> tuple[FreezeBook, np.ndarray, dict[str, list[str]]]:
        """An empty book of this process's songs, the map `song_index -> row`, and `shard name -> song ids`."""
        songs = [song for shard in self.shards for song in shard["songs"]]
        book = FreezeBook([s[0] for s in songs], [s[2] for s in songs])
        max_index = max((s[1] for s in songs), default=-1)
        rows = np.full(max_index + 1, -1, dtype=np.int64)
        for row, song in enumerate(songs):
            rows[song[1]] = row
        return book, rows, {Path(s["file"]).stem: [song[0] for song in s["songs"]] for s in self.shards}


def streaming_training_inputs(directory: str | os.PathLike, training_args) -> tuple[Any, Any, dict]:
    """What `pretrain.py` needs to train from shards: this process's stream, the validation windows (a map-style
    `datasets.Dataset`, small) or `None`, and keyword arguments for `AdversarialTrainer` (the sharded book)."""
    import datasets

    index = read_index(directory)
    stream = ShardedWindowStream(directory, training_args.process_index, training_args.world_size,
                                 seed=training_args.seed)
    book, rows, book_shards = stream.freeze_book()
    valid_files = [str(Path(directory) / s["file"]) for s in index["validation"]]
    eval_ds = datasets.load_dataset("parquet", data_files=valid_files, split="train") if valid_files else None
    summary = {
        "training shards": len(index["train"]),
        "training songs / windows": f"{sum(len(s['songs']) for s in index['train'])} / "
                                    f"{sum(s['windows'] for s in index['train'])}",
        "validation songs / windows": f"{sum(len(s['songs']) for s in index['validation'])} / "
                                      f"{sum(s['windows'] for s in index['validation'])}",
        "skipped files": len(index["skipped"]),
    }
    extra = {"freeze_book": book, "song_rows": rows, "freeze_book_shards": book_shards, "data_summary": summary}
    return stream, eval_ds, extra


def main(argv: list[str] | None = None) -> dict:
    """`python -m adversarial_midibert.pretraining.streaming --data corpus/ --output shards/`: write the shards."""
    from tokenization_octuple import OctupleTokenizer

    from adversarial_midibert.data.dataset import find_midi_files, sources_from_manifest

    parser = argparse.ArgumentParser(description="Tokenize a MIDI corpus into shards for streaming pre-training.")
    parser.add_argument("--data", nargs="*", default=[], help="MIDI folders")
    parser.add_argument("--manifest", help="csv/json manifest with a `path` column")
    parser.add_argument("--output", required=True)
    parser.add_argument("--songs_per_shard", type=int, default=1000)
    parser.add_argument("--max_length", type=int, default=1024)
    parser.add_argument("--stride", type=int, default=0)
    parser.add_argument("--max_bars", type=int, default=256)
    parser.add_argument("--validation_fraction", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--num_proc", type=int, default=1)
    args = parser.parse_args(argv)
    sources = sources_from_manifest(args.manifest) if args.manifest else []
    for root in args.data:
        found = find_midi_files(root)
        if len(args.data) > 1:
            for s in found:
                s.song_id = f"{Path(root).name}/{s.song_id}"
        sources += found
    tokenizer = OctupleTokenizer(max_length=args.max_length, stride=args.stride, max_bars=args.max_bars)
    index = write_shards(sources, tokenizer, args.output, songs_per_shard=args.songs_per_shard,
                         validation_fraction=args.validation_fraction, seed=args.seed, num_proc=args.num_proc)
    n_windows = sum(s["windows"] for s in index["train"] + index["validation"])
    print(f"{len(index['train'])} training and {len(index['validation'])} validation shards, {n_windows} windows, "
          f"{len(index['skipped'])} files skipped -> {args.output}")
    for song_id, reason in index["skipped"]:
        print(f"  skipped {song_id}: {reason}")
    return index


if __name__ == "__main__":
    main()
