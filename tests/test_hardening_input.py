"""Hostile and odd input (issue 14): bad folders end in one clear error, 32-bit tick overflow, unbounded reads,
entries a folder scan used to drop silently."""
import itertools
import json
import os
import shutil
import threading

import numpy as np
import pytest
from conftest import FIXTURES, load_module, sample_files

from adversarial_midibert.data.dataset import BuildReport, MidiSource, NoUsableMidiError, build_window_dataset, find_midi_files
from adversarial_midibert.pretraining.streaming import write_shards
from tokenization_octuple import MidiError, OctupleTokenizer

make_fixtures = load_module(FIXTURES / "make_fixtures.py", "make_fixtures")
BAD_FIXTURES = ("empty.mid", "garbage.mid", "truncated.mid")
MAX_DELTA = 0x0FFFFFFF  # the largest delta-time a MIDI event can carry (4-byte variable-length quantity)
needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")


@pytest.fixture(scope="module")
def tok():
    return OctupleTokenizer(max_length=64)


def one_track_midi(events: list[tuple[int, bytes]], tpq: int = 480) -> bytes:
    """A format-0 file from `(delta, event bytes)` pairs (deltas, so a long wait is several legal delta-times)."""
    ticks = itertools.accumulate(delta for delta, _ in events)
    return make_fixtures.smf(0, tpq, [[(tick, event) for tick, (_, event) in zip(ticks, events)]])


def note_on(pitch):
    return b"\x90" + bytes([pitch, 100])


def note_off(pitch):
    return b"\x80" + bytes([pitch, 0])


def wait(deltas: int) -> list[tuple[int, bytes]]:
    """`deltas` empty text events, each MAX_DELTA ticks after the last: the way to reach a tick past 2**31."""
    return [(MAX_DELTA, b"\xff\x01\x00")] * deltas


def odd_entries(folder):
    """A dangling symlink, a symlink loop and a FIFO, all named like MIDI files."""
    os.symlink(folder / "nowhere.mid", folder / "dangling.mid")
    os.symlink(folder / "loop.mid", folder / "loop.mid")
    os.mkfifo(folder / "pipe.mid")
    return {"dangling.mid": "No such file", "loop.mid": "symbolic links", "pipe.mid": "FIFO"}


# ---------------------------------------------------------------- 2. a folder of only bad files


@pytest.mark.parametrize("cached", [False, True], ids=["no-cache", "cache"])
def test_folder_of_only_bad_files_is_one_clear_error(tok, tmp_path, cached):
    for name in BAD_FIXTURES:
        shutil.copy(FIXTURES / name, tmp_path / name)
    with pytest.raises(NoUsableMidiError) as info:
        build_window_dataset(find_midi_files(tmp_path), tok, cache_dir=tmp_path / "cache" if cached else None)
    lines = str(info.value).splitlines()
    assert lines[0] == ("no usable MIDI: 3 files skipped, reasons: corrupt MIDI file x1, empty file x1, "
                        "not a MIDI file x1")
    assert [line.split(":")[0] for line in lines[1:]] == [f"  skipped {name}" for name in BAD_FIXTURES]
    assert sorted(s for s, _ in info.value.report.skipped) == sorted(BAD_FIXTURES)
    assert isinstance(info.value, ValueError)  # callers catching ValueError keep working
    with pytest.raises(NoUsableMidiError, match="no files given"):
        build_window_dataset([], tok)


def test_long_skip_lists_are_cut_in_the_message():
    report = BuildReport(num_files=60, skipped=[(f"{i}.mid", "empty file (0 bytes)") for i in range(60)])
    lines = str(NoUsableMidiError(report)).splitlines()
    assert lines[0] == "no usable MIDI: 60 files skipped, reasons: empty file x60"
    assert len(lines) == 1 + NoUsableMidiError.max_listed + 1 and lines[-1] == "  ... and 10 more"


def test_shards_leave_out_an_all_bad_shard_and_fail_without_any(tok, tmp_path):
    good = [MidiSource(p.name, path=str(p)) for p in sample_files("emopia")[:2]]
    bad = [MidiSource(name, path=str(FIXTURES / name)) for name in BAD_FIXTURES[:2]]
    index = write_shards(good + bad, tok, tmp_path / "shards", songs_per_shard=2)
    assert [len(shard["songs"]) for shard in index["train"]] == [2]
    assert sorted(s for s, _ in index["skipped"]) == sorted(BAD_FIXTURES[:2])
    assert json.loads((tmp_path / "shards" / "index.json").read_text())["tokenizer"]["max_bytes"] == tok.max_bytes
    with pytest.raises(NoUsableMidiError, match="no usable MIDI: 2 files skipped"):
        write_shards(bad, tok, tmp_path / "none", songs_per_shard=1)


# ---------------------------------------------------------------- 3. ticks past int32


@pytest.mark.parametrize("events, what", [
    # a note at tick 2,415,919,191: symusic's int32 reads it as -1,879,048,105
    (wait(9) + [(96, note_on(62)), (10, note_off(62))], "a note starts at a negative tick"),
    # a note lasting 2.95e9 ticks: the parser drops it and the next note comes back negative
    ([(0, note_on(60))] + wait(11) + [(0, note_off(60)), (10, note_on(64)), (10, note_off(64))],
     "a note starts at a negative tick"),
    # a tempo change past 2**31
    ([(0, note_on(60)), (10, note_off(60))] + wait(9) + [(0, b"\xff\x51\x03\x07\xa1\x20")],
     "a tempo change at a negative tick"),
], ids=["onset", "duration", "tempo"])
def test_ticks_past_int32_raise_midi_error(tok, events, what):
    with pytest.raises(MidiError) as info:
        tok.encode_song(one_track_midi([(0, note_on(60)), (10, note_off(60))] + events), name="huge.mid")
    assert info.value.path == "huge.mid"
    assert info.value.reason.startswith("corrupt or out-of-range timing") and what in info.value.reason


def test_ticks_just_below_int32_still_encode(tok):
    late = 7 * MAX_DELTA + 100  # 1,879,048,285: inside int32
    song = tok.encode_song(one_track_midi(wait(7) + [(100, note_on(60)), (480, note_off(60))]))
    assert len(song) == 1
    assert song.ids[0, 0] == round(late * 16 / 480) // 64 and song.ids[0, 4] == 16  # 16 positions


# ---------------------------------------------------------------- 4. unbounded reads


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero")
def test_device_is_refused_before_reading(tok):
    with pytest.raises(MidiError, match="not a regular file: a character device"):
        tok.encode_song("/dev/zero")
    windows, report = build_window_dataset([MidiSource("zero.mid", path="/dev/zero"),
                                            MidiSource("ok.mid", path=str(sample_files("emopia")[0]))], tok)
    assert report.num_songs == 1 and report.skipped[0][0] == "zero.mid"


@needs_fifo
def test_fifo_is_refused_without_blocking(tok, tmp_path):
    fifo = tmp_path / "pipe.mid"
    os.mkfifo(fifo)
    outcome = {}

    def encode():
        try:
            tok.encode_song(fifo)
        except MidiError as err:
            outcome["error"] = err

    reader = threading.Thread(target=encode, daemon=True)
    reader.start()
    reader.join(timeout=10)
    if reader.is_alive():  # the old code blocks in open() until a writer comes: be that writer, then fail
        with open(fifo, "wb"):
            pass
        reader.join(timeout=10)
        pytest.fail("reading a FIFO blocked")
    assert "not a regular file: a FIFO" in outcome["error"].reason


def test_files_over_max_bytes_are_refused_before_parsing(tmp_path):
    big = tmp_path / "big.mid"
    with open(big, "wb") as f:  # 100 MB, sparse: nothing is written, and nothing must be read
        f.write((FIXTURES / "type0.mid").read_bytes())
        f.truncate(100 * 2**20)
    with pytest.raises(MidiError, match=r"file too large: 104857600 bytes > max_bytes=33554432"):
        OctupleTokenizer().encode_song(big)
    data = (FIXTURES / "meters_and_tempi.mid").read_bytes()
    small = OctupleTokenizer(max_bytes=len(data) - 1)
    for midi in (FIXTURES / "meters_and_tempi.mid", data):
        with pytest.raises(MidiError, match=f"file too large: {len(data)} bytes"):
            small.encode_song(midi)
    assert len(OctupleTokenizer(max_bytes=len(data)).encode_song(data)) == 12
    with pytest.raises(ValueError, match="max_bytes must be positive"):
        OctupleTokenizer(max_bytes=0)


def test_max_bytes_is_saved_and_overridable(tmp_path):
    OctupleTokenizer(max_bytes=12345).save_pretrained(tmp_path)
    assert json.loads((tmp_path / "tokenizer_config.json").read_text())["max_bytes"] == 12345
    assert OctupleTokenizer.from_pretrained(tmp_path).max_bytes == 12345
    assert OctupleTokenizer.from_pretrained(tmp_path, max_bytes=99).max_bytes == 99
    settings = json.loads((tmp_path / "octuple_tokenizer.json").read_text())
    del settings["max_bytes"]  # a tokenizer saved before the setting existed loads with the default
    (tmp_path / "octuple_tokenizer.json").write_text(json.dumps(settings))
    assert OctupleTokenizer.from_pretrained(tmp_path).max_bytes == OctupleTokenizer().max_bytes


# ---------------------------------------------------------------- 5. entries a folder scan dropped


@needs_fifo
def test_folder_scan_counts_and_names_links_and_fifos(tok, tmp_path):
    shutil.copy(sample_files("emopia")[0], tmp_path / "good.mid")
    expected = odd_entries(tmp_path)
    (tmp_path / "sub.mid").mkdir()  # a folder with a MIDI name is not a source
    sources = find_midi_files(tmp_path)
    assert [s.song_id for s in sources] == ["dangling.mid", "good.mid", "loop.mid", "pipe.mid"]
    windows, report = build_window_dataset(sources, tok)
    assert report.num_files == 4 and report.num_songs == 1
    reasons = dict(report.skipped)
    assert sorted(reasons) == sorted(expected)
    for name, words in expected.items():
        assert reasons[name].startswith("cannot read file") and words in reasons[name], reasons[name]
    assert len(np.unique(windows["song_id"])) == 1
