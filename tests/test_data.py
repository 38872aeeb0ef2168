"""Data module: MIDI sources, the cached window dataset and its build report, the song-level split, the collator."""
import json
import os
import shutil

import datasets
import numpy as np
import pytest
import torch
from conftest import FIXTURES, SAMPLE_MIDI, sample_files

import adversarial_midibert.data.dataset as data_module
from adversarial_midibert.data.collator import OctupleDataCollator
from adversarial_midibert.data.dataset import (
    MidiSource,
    build_window_dataset,
    find_midi_files,
    song_note_counts,
    sources_from_dataset,
    sources_from_manifest,
    split_by_song,
)
from tokenization_octuple import OctupleTokenizer

BAD_FIXTURES = ("empty.mid", "garbage.mid", "header_only.mid", "truncated.mid")


@pytest.fixture(scope="module")
def tok():
    return OctupleTokenizer(max_length=64, stride=8)


def test_find_midi_files_recursive_sorted_any_case(tmp_path):
    for name in ("b/one.MID", "a.midi", "b/two.mid", "notes.txt", "c/x.Mid"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"MThd")
    ids = [s.song_id for s in find_midi_files(tmp_path)]
    assert ids == ["a.midi", "b/one.MID", "b/two.mid", "c/x.Mid"]
    assert find_midi_files(tmp_path / "a.midi")[0].song_id == "a.midi"
    with pytest.raises(FileNotFoundError):
        find_midi_files(tmp_path / "missing")


def test_manifests_csv_and_json(tmp_path):
    csv_sources = sources_from_manifest(SAMPLE_MIDI / "manifest.csv", label_column="dataset")
    assert len(csv_sources) == 18 and all(os.path.isfile(s.path) for s in csv_sources)
    rows = [{"file": "pop909/098.mid", "composer": "x", "piece": "p1"}, {"file": "pop909/331.mid", "piece": "p1"}]
    (tmp_path / "m.json").write_text(json.dumps(rows))
    shutil.copytree(SAMPLE_MIDI / "pop909", tmp_path / "pop909")
    sources = sources_from_manifest(tmp_path / "m.json", path_column="file", label_column="composer",
                                    group_column="piece")
    assert [(s.song_id, s.label, s.group) for s in sources] == [("pop909/098.mid", "x", "p1"),
                                                                 ("pop909/331.mid", None, "p1")]
    assert sources[0].path == str(tmp_path / "pop909/098.mid")
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    assert len(sources_from_manifest(tmp_path / "m.jsonl", path_column="file")) == 2
    with pytest.raises(KeyError, match="no column 'path'"):
        sources_from_manifest(tmp_path / "m.json")


def test_dataset_sources_bytes_and_paths_tokenize_alike(tok):
    path = sample_files("pop909")[0]
    ds = datasets.Dataset.from_dict({"midi": [path.read_bytes()], "song_id": ["pop/161"]})
    by_bytes = sources_from_dataset(ds, "midi")
    by_path = sources_from_dataset(datasets.Dataset.from_dict({"midi": [str(path)]}), "midi")
    assert by_bytes[0].song_id == "pop/161" and by_bytes[0].data is not None
    assert by_path[0].song_id == str(path)
    a, _ = build_window_dataset(by_bytes, tok)
    b, _ = build_window_dataset(by_path, tok)
    assert a["input_ids"] == b["input_ids"]
    with pytest.raises(ValueError, match="exactly one"):
        MidiSource("x")


def test_windows_match_the_tokenizer_and_skip_bad_files(tok):
    sources = find_midi_files(SAMPLE_MIDI / "emopia")[:3] + [
        MidiSource(name, path=str(FIXTURES / name)) for name in BAD_FIXTURES
    ]
    windows, report = build_window_dataset(sources, tok)
    assert report.num_files == 7 and report.num_songs == 3
    assert sorted(s for s, _ in report.skipped) == sorted(BAD_FIXTURES)
    assert all(reason for _, reason in report.skipped)
    assert "4 skipped" in str(report) and "garbage.mid" in str(report)
    assert report.num_windows == len(windows)
    for index in range(3):
        song = tok.encode_song(sources[index].path)
        rows = [r for r in windows if r["song_index"] == index]
        spans = tok.window_spans(song)
        assert [r["window_start"] for r in rows] == [s for s, _ in spans]
        for row, (start, end) in zip(rows, spans):
            assert row["song_id"] == sources[index].song_id
            np.testing.assert_array_equal(np.asarray(row["input_ids"]), tok.window_ids(song, start, end))
        # The windows of a song reach its last note: the note count the freeze book uses.
        assert song_note_counts(windows)[sources[index].song_id] == len(song.ids)
    assert report.num_notes == sum(len(r["input_ids"]) - 2 for r in windows)


def test_note_labels_align_with_tokens(tok):
    sources = find_midi_files(SAMPLE_MIDI / "pop909")[:1]

    def labeler(song, source):
        return song.ids[:, 3] % 3  # a label per note that the test can recompute

    windows, _ = build_window_dataset(sources, tok, note_labeler=labeler)
    song = tok.encode_song(sources[0].path)
    for row in windows:
        labels = row["note_labels"]
        assert labels[0] == labels[-1] == -100
        start = row["window_start"]
        assert labels[1:-1] == (song.ids[start : start + len(labels) - 2, 3] % 3).tolist()


def test_cache_reads_back_and_invalidates_on_change(tok, tmp_path):
    folder = tmp_path / "midi"
    shutil.copytree(SAMPLE_MIDI / "pop909", folder)
    cache = tmp_path / "cache"
    first, report1 = build_window_dataset(find_midi_files(folder), tok, cache_dir=cache)
    second, report2 = build_window_dataset(find_midi_files(folder), tok, cache_dir=cache)
    assert not report1.from_cache and report2.from_cache
    assert first["input_ids"] == second["input_ids"] and report2.num_notes == report1.num_notes
    # Another tokenizer setting or a changed file: a new build.
    _, report3 = build_window_dataset(find_midi_files(folder), OctupleTokenizer(max_length=128), cache_dir=cache)
    assert not report3.from_cache
    victim = sorted(folder.glob("*.mid"))[0]
    victim.write_bytes(b"not midi any more")
    _, report4 = build_window_dataset(find_midi_files(folder), tok, cache_dir=cache)
    assert not report4.from_cache and [s for s, _ in report4.skipped] == [victim.name]


@pytest.fixture
def parallel_allowed(monkeypatch):
    """Two workers for any corpus on any machine: the sample is far below the automatic minimum."""
    monkeypatch.setattr(data_module, "MIN_FILES_PER_PROCESS", 1)
    monkeypatch.setattr(data_module, "available_cpus", lambda: 2)


@pytest.mark.parametrize("cached", [False, True], ids=["no-cache", "cache"])
def test_parallel_build_equals_serial(tok, parallel_allowed, tmp_path, cached):
    sources = find_midi_files(SAMPLE_MIDI / "giantmidi_eval") + [MidiSource("bad", path=str(FIXTURES / "empty.mid"))]
    serial, serial_report = build_window_dataset(sources, tok, num_proc=1)
    parallel, report = build_window_dataset(sources, tok, num_proc=2, cache_dir=tmp_path if cached else None)
    assert serial["input_ids"] == parallel["input_ids"]
    assert serial["song_index"] == parallel["song_index"]
    assert report.skipped == serial_report.skipped == [("bad", "empty file (0 bytes)")]
    # The workers wrote Arrow files and handed back their names: an in-memory result is pickled through a queue,
    # which made 2 processes slower than 1.
    assert parallel.cache_files and all(os.path.isfile(f["filename"]) for f in parallel.cache_files)


def test_small_corpora_and_few_cpus_use_fewer_processes(monkeypatch):
    monkeypatch.setattr(data_module, "available_cpus", lambda: 2)
    per = data_module.MIN_FILES_PER_PROCESS
    assert data_module.tokenizing_processes(4, per - 1) == 1      # too small to pay for a worker
    assert data_module.tokenizing_processes(4, 2 * per) == 2      # no more workers than CPUs
    assert data_module.tokenizing_processes(4, 100 * per) == 2
    assert data_module.tokenizing_processes(1, 100 * per) == 1    # never more than asked
    assert data_module.tokenizing_processes(None, 100 * per) == 1


def test_split_is_by_song_seeded_and_keeps_groups_together():
    sources = [MidiSource(f"s{i}", path=f"s{i}.mid", group=f"g{i // 3}") for i in range(30)]
    train, valid = split_by_song(sources, 0.2, seed=7)
    assert sorted(train + valid) == list(range(30))
    assert split_by_song(sources, 0.2, seed=7) == (train, valid)
    assert split_by_song(sources, 0.2, seed=8) != (train, valid)
    train_groups = {sources[i].group for i in train}
    assert train_groups.isdisjoint({sources[i].group for i in valid})
    assert len(valid) == 6  # 2 of 10 groups, 3 songs each
    assert split_by_song(sources[:1], 0.5) == ([0], [])


def test_collator_pads_with_pad_rows_and_labels(tok):
    features = [
        {"input_ids": [[1] * 8] * 4, "note_labels": [-100, 2, 1, -100], "song_index": 3, "window_start": 0,
         "song_id": "a", "label": None},
        {"input_ids": [[2] * 8] * 2, "note_labels": [-100, -100], "song_index": 9, "window_start": 40,
         "song_id": "b", "label": None},
    ]
    batch = OctupleDataCollator(tok, pad_to_multiple_of=8)(features)
    assert batch["input_ids"].shape == (2, 8, 8)
    assert torch.equal(batch["input_ids"][1, 2], torch.tensor(tok.pad_ids))
    assert batch["attention_mask"].tolist() == [[1] * 4 + [0] * 4, [1] * 2 + [0] * 6]
    assert batch["labels"].tolist()[0] == [-100, 2, 1, -100, -100, -100, -100, -100]
    assert batch["song_index"].tolist() == [3, 9] and batch["window_start"].tolist() == [0, 40]
    assert "song_id" not in batch and "label" not in batch
    with pytest.raises(ValueError, match="8 PAD ids"):
        OctupleDataCollator([0, 1, 2])


def test_shards_hold_whole_songs_and_processes_split_them(tok, tmp_path):
    from adversarial_midibert.pretraining.streaming import ShardedWindowStream, write_shards

    sources = find_midi_files(SAMPLE_MIDI / "emopia")
    index = write_shards(sources, tok, tmp_path, songs_per_shard=2, validation_fraction=0.25, seed=0)
    assert len(index["train"]) == 3 and len(index["validation"]) == 1
    reference, _ = build_window_dataset(sources, tok)
    counts = song_note_counts(reference)
    seen = []
    for shard in index["train"] + index["validation"]:
        part = datasets.load_dataset("parquet", data_files=str(tmp_path / shard["file"]), split="train")
        assert len(part) == shard["windows"]
        assert sorted(set(part["song_id"])) == sorted(s[0] for s in shard["songs"])
        for song_id, song_index, n_notes in shard["songs"]:
            assert sources[song_index].song_id == song_id and counts[song_id] == n_notes
            rows = [r for r in reference if r["song_id"] == song_id]
            assert [r["input_ids"] for r in part if r["song_id"] == song_id] == [r["input_ids"] for r in rows]
            seen.append(song_id)
    assert sorted(seen) == sorted(s.song_id for s in sources)  # every song in exactly one shard

    streams = [ShardedWindowStream(tmp_path, rank, 2, seed=0) for rank in (0, 1)]
    owned = [set(s.freeze_book()[0].song_ids) for s in streams]
    assert owned[0].isdisjoint(owned[1]) and len(owned[0] | owned[1]) == 6
    assert len(streams[0]) == len(streams[1]) == min(sum(s["windows"] for s in index["train"][r::2]) for r in (0, 1))
    for stream, songs in zip(streams, owned):
        first = [(r["song_id"], r["window_start"]) for r in stream]
        assert len(first) == len(stream) and {s for s, _ in first} <= songs
        assert [(r["song_id"], r["window_start"]) for r in stream] == first  # same epoch, same order
        stream.set_epoch(1)
        assert [(r["song_id"], r["window_start"]) for r in stream] != first  # reshuffled
    book, rows, shards = streams[1].freeze_book()
    assert sorted(shards) == ["train-00001"]
    for song_id, song_index, n_notes in index["train"][1]["songs"]:
        assert book.num_notes[rows[song_index]] == n_notes and book.song_ids[rows[song_index]] == song_id
