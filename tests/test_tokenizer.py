"""OctupleTokenizer: exact quantization, windows, batching, decode round trips, errors, transposition, Hub files."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pretty_midi
import pytest
import symusic
import torch
from conftest import FIXTURES, LONG_SONG, REPO, sample_files

import tokenization_octuple as octuple
from tokenization_octuple import MidiError, OctupleSong, OctupleTokenizer

SAMPLES = sample_files()


@pytest.fixture(scope="module")
def tok():
    return OctupleTokenizer()


def round_trip_windows(tok, path, max_length, stride=0):
    """Every window of `path` decoded to PrettyMIDI and tokenized again; returns (windows, mismatches)."""
    song = tok.encode_song(path)
    spans = tok.window_spans(song, max_length, stride)
    bad = []
    for start, end in spans:
        ids = tok.window_ids(song, start, end)
        again = tok(tok.decode(ids), max_length=end - start + 2, return_tensors="np")["input_ids"]
        if again.shape[0] != 1 or not np.array_equal(again[0], ids):
            bad.append((start, end))
    return spans, bad


# ---------------------------------------------------------------- vocabulary


def test_vocabulary_layout_matches_architecture():
    assert OctupleTokenizer.ATTRIBUTES == ("bar", "position", "instrument", "pitch", "duration", "velocity",
                                           "time_signature", "tempo")
    assert OctupleTokenizer.regular_vocab_sizes == (256, 128, 129, 256, 128, 32, 254, 49)
    assert OctupleTokenizer.vocab_sizes == (260, 132, 133, 260, 132, 36, 258, 53)
    n = np.asarray(OctupleTokenizer.regular_vocab_sizes)
    assert np.array_equal(OctupleTokenizer.pad_ids, n)
    assert np.array_equal(OctupleTokenizer.mask_ids, n + 1)
    assert np.array_equal(OctupleTokenizer.bos_ids, n + 2)
    assert np.array_equal(OctupleTokenizer.eos_ids, n + 3)


def test_duration_table_groups():
    table = octuple.DURATION_TABLE
    assert table.shape == (128,)
    assert table[:16].tolist() == list(range(16))
    assert table[16:20].tolist() == [16, 18, 20, 22] and table[31] == 46
    assert table[32:34].tolist() == [48, 52] and table[47] == 108
    assert table[112] == 2032 and table[113] == 2160 and table[127] == 3952
    for g in range(8):
        assert set(np.diff(table[16 * g: 16 * g + 16]).tolist()) == {2**g}
    assert np.all(table[16::16] - table[15:-1:16] == 2 ** np.arange(7))  # each group starts one old step on


def test_time_signature_table_and_reduction():
    table = octuple.TIME_SIGNATURE_TABLE
    assert len(table) == 254 and table[0] == (1, 1) and table[-1] == (128, 64)
    for k, entry in enumerate(table):
        assert octuple._time_signature_id(*entry) == k
        assert octuple.reduce_time_signature(*entry) == entry  # table entries are fixed points
    reduce = octuple.reduce_time_signature
    assert reduce(3, 4) == (3, 4) and reduce(6, 8) == (6, 8) and reduce(7, 8) == (7, 8)
    assert reduce(9, 4) == (3, 4)          # 9 > 8: divide by 3
    assert reduce(12, 4) == (6, 4)         # 12 > 8: divide by 2
    assert reduce(17, 4) == (1, 4)         # a prime above 2d collapses to 1
    assert reduce(6, 128) == (3, 64)       # halve while d > 64 and n even
    assert reduce(3, 128) == (1, 32)       # fallback: 1.5 positions -> 2/64 in lowest terms
    assert reduce(5, 12) == (27, 64)       # not a power of two: bar of 26.67 positions -> 27/64
    assert reduce(0, 4) == (4, 4) and reduce(4, 0) == (4, 4)  # unknown meter


def test_tempo_ids_hand_computed():
    mspq = np.asarray([500_000, 666_667, 200_000, 6_000_000, 3_750_000, 234_375, 0])
    # 120 bpm: 12*log2(7.5)=34.88; 90: 29.90; 300 -> 256: 48; 10 -> 16: 0; 16: 0; 256: 48; mspq 0 = fastest
    assert octuple._tempo_ids(mspq).tolist() == [35, 30, 48, 0, 0, 48, 48]
    assert octuple.DEFAULT_TEMPO_ID == 35


# ---------------------------------------------------------------- exact quantization on fixtures


def test_meters_tempi_and_durations_hand_computed(tok):
    song = tok.encode_song(FIXTURES / "meters_and_tempi.mid")
    # bar, position, instrument, pitch, duration, velocity, time signature, tempo (see make_fixtures.py)
    expected = [
        [0, 0, 0, 60, 1, 25, 9, 35],      # 4/4, 120 bpm, 1 position, velocity 100
        [0, 0, 0, 64, 15, 0, 9, 35],      # 15 positions, velocity 3
        [0, 16, 0, 67, 16, 31, 9, 35],    # 16 positions, velocity 127
        [1, 0, 0, 60, 16, 16, 8, 35],     # 3/4; 17 positions floor to id 16
        [1, 16, 0, 62, 17, 16, 8, 35],    # 18 positions
        [2, 0, 0, 64, 31, 16, 19, 30],    # 6/8, 90 bpm; 47 positions -> last of group 1
        [3, 0, 0, 65, 32, 16, 18, 30],    # 5/8; 48 positions -> first of group 2
        [4, 0, 0, 67, 127, 16, 20, 30],   # 7/8; 3952 positions -> id 127
        [4, 20, 0, 69, 127, 16, 20, 30],  # 5000 positions, beyond the table
        [5, 0, 0, 71, 0, 16, 9, 30],      # 4/4 change in the middle of the 7/8 bar starts bar 5
        [5, 10, 0, 72, 2, 16, 9, 48],     # tempo 300 bpm clipped to 256
        [7, 5, 0, 74, 1, 16, 9, 48],
    ]
    assert song.ids.tolist() == expected
    assert song.ids.dtype == np.int64 and song.track_index.dtype == np.int32


@pytest.mark.parametrize("name, positions", [
    # 96 tpq: ticks 3 and 9 are exactly half positions and round to even, as MusicBERT's Python round: 0.5 -> 0
    ("tpq_96.mid", [(0, 0), (0, 0), (0, 2), (0, 16), (0, 16), (0, 32), (0, 48), (1, 0)]),
    # 1001 tpq: 31 ticks = 0.4955 -> 0, 32 ticks = 0.5115 -> 1, 4098 ticks = 65.5 -> 66 = bar 1 position 2
    ("tpq_1001.mid", [(0, 0), (0, 0), (0, 1), (0, 16), (0, 32), (0, 48), (1, 0), (1, 2)]),
])
def test_odd_ticks_per_quarter_rounding(tok, name, positions):
    song = tok.encode_song(FIXTURES / name)
    assert [tuple(r) for r in song.ids[:, :2].tolist()] == positions
    assert set(song.ids[:, 7].tolist()) == {32}  # 100 bpm: 12 * log2(6.25) = 31.7


@pytest.mark.parametrize("tpq", [96, 480, 25, 1001])
def test_positions_round_like_pythons_round(tpq):
    ticks = np.arange(0, 40 * tpq, dtype=np.int64)
    expected = [round(t * 16 / tpq) for t in ticks.tolist()]  # MusicBERT's time_to_pos
    assert octuple._positions(ticks, tpq).tolist() == expected


def test_half_tick_notes_match_musicbert_positions_and_durations(tok):
    """Hand-built notes on exact half positions (480 tpq: 15 ticks = half a position), checked against the ids
    MusicBERT's preprocessing gives them: `round(t * 16 / tpq)` in Python, duration `pos(end) - pos(start)`."""
    tpq = 480
    starts = [15, 45, 75, 105, 1905, 3825, 0, 7, 30 * 64 + 15, 30 * 64 * 3 + 45]
    durations = [15, 30, 45, 60, 15, 45, 75, 1, 30 * 17, 30 * 33 + 15]
    score = symusic.Score(tpq)
    score.time_signatures.append(symusic.TimeSignature(0, 4, 4))
    track = symusic.Track("piano", 0, False)
    pitches = list(range(40, 40 + len(starts)))
    track.notes = symusic.Note.from_numpy(np.asarray(starts, np.int32), np.asarray(durations, np.int32),
                                          np.asarray(pitches, np.int8), np.full(len(starts), 80, np.int8))
    score.tracks.append(track)
    song = tok.encode_song(score)

    def pos(t):
        return round(t * 16 / tpq)

    got = {int(i): row for i, row in zip(song.note_index, song.ids.tolist())}
    for k, (start, length) in enumerate(zip(starts, durations)):
        bar, position = divmod(pos(start), 64)  # 4/4: 64 positions a bar
        duration_id = int(np.searchsorted(octuple.DURATION_TABLE, pos(start + length) - pos(start), "right") - 1)
        assert got[k][:2] == [bar, position] and got[k][4] == duration_id, (start, length)
    # Half up would give positions 1, 2, 3, 4 to the first four notes; half to even gives 0, 2, 2, 4.
    assert [got[k][1] for k in range(4)] == [0, 2, 2, 4]


def test_drum_only_file_is_valid_input(tok):
    song = tok.encode_song(FIXTURES / "drums_only.mid")
    assert len(song) == 8
    assert set(song.ids[:, 2].tolist()) == {128}
    assert song.ids[:, 3].tolist() == [164, 170, 166, 170, 164, 170, 166, 170]  # pitch + 128
    assert song.track_is_drum == [True]


def test_type0_channels_become_tracks(tok):
    song = tok.encode_song(FIXTURES / "type0.mid")
    assert song.ids[:, 2:4].tolist() == [[40, 67], [128, 164], [40, 69], [128, 166]]
    assert song.track_programs == [40, 0] and song.track_is_drum == [False, True]


def test_type2_patterns_are_simultaneous_tracks(tok):
    song = tok.encode_song(FIXTURES / "type2.mid")
    assert song.ids[:, :4].tolist() == [[0, 0, 0, 60], [0, 0, 33, 36], [0, 16, 0, 62]]


def test_sort_order_and_source_indices_point_at_the_notes(tok):
    path = SAMPLES[0]
    score = tok.load_score(path)
    song = tok.encode_song(path)
    assert isinstance(song, OctupleSong) and song.name == str(path)
    keys = song.ids[:, :6]
    assert all(tuple(a) <= tuple(b) for a, b in zip(keys[:-1].tolist(), keys[1:].tolist()))
    assert len(song) == score.note_num()
    pairs = set(zip(song.track_index.tolist(), song.note_index.tolist()))
    assert len(pairs) == len(song)  # every note exactly once
    for i in range(0, len(song), 37):
        n = score.tracks[int(song.track_index[i])].notes[int(song.note_index[i])]
        assert song.ids[i, 3] == n.pitch and song.ids[i, 5] == n.velocity // 4
        assert song.ids[i, 1] == round(n.time * 16 / score.ticks_per_quarter) % 64  # pop909 is 4/4 throughout


# ---------------------------------------------------------------- inputs and errors


def test_path_bytes_prettymidi_and_score_inputs_agree(tok):
    path = SAMPLES[1]
    reference = tok.encode_song(path).ids
    data = path.read_bytes()
    assert np.array_equal(tok.encode_song(str(path)).ids, reference)
    assert np.array_equal(tok.encode_song(data).ids, reference)
    assert np.array_equal(tok.encode_song(symusic.Score(str(path))).ids, reference)
    assert np.array_equal(tok.encode_song(pretty_midi.PrettyMIDI(str(path))).ids, reference)


@pytest.mark.parametrize("name, reason", [
    ("empty.mid", "empty file"),
    ("garbage.mid", "not a MIDI file"),
    ("truncated.mid", "corrupt MIDI file"),
    ("header_only.mid", "no notes"),
])
def test_bad_files_raise_midi_error_with_path_and_reason(tok, name, reason):
    with pytest.raises(MidiError) as info:
        tok.encode_song(FIXTURES / name)
    assert info.value.path == str(FIXTURES / name)
    assert reason in info.value.reason
    assert str(FIXTURES / name) in str(info.value) and reason in str(info.value)
    with pytest.raises(MidiError):
        tok([FIXTURES / name])


def test_other_bad_inputs(tok, tmp_path):
    with pytest.raises(MidiError, match="cannot read"):
        tok.encode_song(tmp_path / "missing.mid")
    with pytest.raises(MidiError, match="cannot read"):
        tok.encode_song(tmp_path)  # a folder
    with pytest.raises(MidiError, match="unsupported input type"):
        tok.encode_song(12345)
    smpte = b"MThd" + (6).to_bytes(4, "big") + bytes([0, 1, 0, 1, 0xE7, 0x28]) + b"MTrk\x00\x00\x00\x04\x00\xff\x2f\x00"
    with pytest.raises(MidiError, match="SMPTE"):
        tok.encode_song(smpte, name="smpte.mid")
    zero_division = (FIXTURES / "type2.mid").read_bytes()
    zero_division = zero_division[:12] + b"\x00\x00" + zero_division[14:]
    with pytest.raises(MidiError, match="ticks per quarter"):
        tok.encode_song(zero_division)
    with pytest.raises(MidiError, match="too many notes: 12 > max_notes=11"):
        OctupleTokenizer(max_notes=11).encode_song(FIXTURES / "meters_and_tempi.mid")
    assert len(OctupleTokenizer(max_notes=12).encode_song(FIXTURES / "meters_and_tempi.mid")) == 12


def test_midi_error_pickles():
    import pickle

    err = pickle.loads(pickle.dumps(MidiError("a.mid", "no notes")))
    assert (err.path, err.reason) == ("a.mid", "no notes")


# ---------------------------------------------------------------- windows


def test_windows_cover_every_note_with_stride(tok):
    song = tok.encode_song(SAMPLES[0])
    for max_length, stride in [(1024, 0), (130, 0), (130, 20), (50, 47)]:
        spans = tok.window_spans(song, max_length, stride)
        assert spans[0][0] == 0 and spans[-1][1] == len(song)
        for (s0, e0), (s1, e1) in zip(spans[:-1], spans[1:]):
            assert e0 - s0 <= max_length - 2
            assert s1 == e0 - stride  # consecutive windows share exactly `stride` notes
        covered = np.zeros(len(song), bool)
        for s, e in spans:
            covered[s:e] = True
        assert covered.all()


def test_long_piece_ends_windows_at_the_bar_limit(tok):
    song = tok.encode_song(FIXTURES / "long_300_bars.mid")
    assert len(song) == 300 and song.ids[-1, 0] == 299
    assert tok.window_spans(song) == [(0, 256), (256, 300)]  # 1022 notes would fit, 256 bars would not
    assert OctupleTokenizer(max_bars=100).window_spans(song) == [(0, 100), (100, 200), (200, 300)]
    enc = tok(FIXTURES / "long_300_bars.mid", padding=True, return_tensors="pt")
    ids = enc["input_ids"]
    assert ids.shape == (2, 258, 8)
    assert ids[0, 1, 0] == 0 and ids[0, 256, 0] == 255 and ids[1, 1, 0] == 0  # bars re-based per window
    assert ids[1, 44, 0] == 43 and ids[1, 45].tolist() == list(OctupleTokenizer.eos_ids)
    assert (ids[1, 46:] == torch.tensor(OctupleTokenizer.pad_ids)).all()


def test_window_ids_layout(tok):
    song = tok.encode_song(FIXTURES / "meters_and_tempi.mid")
    w = tok.window_ids(song, 3, 9)
    assert w.shape == (8, 8)
    assert w[0].tolist() == list(tok.bos_ids) and w[-1].tolist() == list(tok.eos_ids)
    assert w[1:-1, 0].tolist() == [0, 0, 1, 2, 3, 3]
    assert np.array_equal(w[1:-1, 1:], song.ids[3:9, 1:])
    with pytest.raises(ValueError):
        tok.window_ids(song, 5, 5)


def test_invalid_window_settings():
    with pytest.raises(ValueError):
        OctupleTokenizer(max_length=2)
    with pytest.raises(ValueError):
        OctupleTokenizer(max_length=10, stride=8)
    with pytest.raises(ValueError):
        OctupleTokenizer(max_bars=257)


# ---------------------------------------------------------------- batch call


def test_batch_call_pads_and_maps_windows(tok):
    files = [SAMPLES[0], FIXTURES / "drums_only.mid"]
    enc = tok(files, max_length=200, padding=True, return_tensors="pt")
    ids, mask = enc["input_ids"], enc["attention_mask"]
    n_first = len(tok.window_spans(tok.encode_song(files[0]), 200))
    assert ids.dtype == torch.int64 and ids.shape == (n_first + 1, 200, 8)
    assert enc["overflow_to_sample_mapping"].tolist() == [0] * n_first + [1]
    assert mask[-1].sum() == 10 and mask[-1, :10].all()
    last = ids[-1]
    assert last[0].tolist() == list(tok.bos_ids) and last[9].tolist() == list(tok.eos_ids)
    assert (last[10:] == torch.tensor(tok.pad_ids)).all()
    assert (enc["track_index"][-1, 10:] == -1).all() and enc["note_index"][-1, 0] == -1
    real = (mask == 1) & (ids[..., 3] < tok.regular_vocab_sizes[3])
    assert int(real.sum()) == tok.encode_song(files[0]).ids.shape[0] + 8  # stride 0: every note once


def test_batch_call_padding_modes_and_plain_lists(tok):
    path = FIXTURES / "meters_and_tempi.mid"
    plain = tok(path)
    assert isinstance(plain["input_ids"], list) and len(plain["input_ids"][0]) == 14
    assert plain["overflow_to_sample_mapping"] == [0]
    to_max = tok(path, max_length=32, padding="max_length", return_tensors="np")
    assert to_max["input_ids"].shape == (1, 32, 8) and to_max["attention_mask"].sum() == 14
    with pytest.raises(ValueError, match="padding=True"):
        tok([path, FIXTURES / "drums_only.mid"], return_tensors="pt")
    with pytest.raises(ValueError):
        tok(path, padding="sideways")
    with pytest.raises(ValueError, match="no MIDI input"):
        tok([])


def test_note_predictions_can_be_written_back_into_the_score(tok):
    path = FIXTURES / "type0.mid"
    enc = tok(path, return_tensors="np")
    score = tok.load_score(path)
    for t, n in zip(enc["track_index"][0].tolist(), enc["note_index"][0].tolist()):
        if t >= 0:
            score.tracks[t].notes[n].velocity = 1  # a "prediction"
    again = tok.encode_song(score)
    assert set(again.ids[:, 5].tolist()) == {0}
    assert np.array_equal(np.delete(again.ids, 5, axis=1), np.delete(tok.encode_song(path).ids, 5, axis=1))


# ---------------------------------------------------------------- decode round trips


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_sample_round_trip_exact(tok, path):
    spans, bad = round_trip_windows(tok, path, max_length=512, stride=16)
    assert bad == []


@pytest.mark.parametrize("name", ["meters_and_tempi.mid", "tpq_96.mid", "tpq_1001.mid", "type0.mid",
                                  "type2.mid", "drums_only.mid", "long_300_bars.mid",
                                  "overlapping_same_pitch.mid"])
def test_fixture_round_trip_exact(tok, name):
    _, bad = round_trip_windows(tok, FIXTURES / name, max_length=1024)
    assert bad == []


def test_decode_writes_meters_tempi_and_overlaps(tok):
    ids = tok(FIXTURES / "meters_and_tempi.mid", return_tensors="np")["input_ids"][0]
    midi = tok.decode(torch.as_tensor(ids))
    assert isinstance(midi, pretty_midi.PrettyMIDI) and midi.resolution == 480
    meters = [(ts.numerator, ts.denominator, midi.time_to_tick(ts.time)) for ts in midi.time_signature_changes]
    assert meters == [(4, 4, 0), (3, 4, 1920), (6, 8, 3360), (5, 8, 4800), (7, 8, 6000), (4, 4, 7680)]
    ticks, bpm = midi.get_tempo_changes()
    assert np.allclose(bpm, [16 * 2 ** (35 / 12), 16 * 2 ** (30 / 12), 256], rtol=1e-5)
    zero = [n for n in midi.instruments[0].notes if n.pitch == 71]
    assert midi.time_to_tick(zero[0].end) - midi.time_to_tick(zero[0].start) == 1  # a 1-tick note
    overlaps = tok.decode(tok(FIXTURES / "overlapping_same_pitch.mid", return_tensors="np")["input_ids"][0])
    assert len(overlaps.instruments) == 2  # the overlapping C4 goes to its own track
    spans = sorted((midi.time_to_tick(n.start), midi.time_to_tick(n.end)) for i in overlaps.instruments
                   for n in i.notes if n.pitch == 60)
    assert spans == [(0, 960), (480, 1440)]


def test_decode_skips_special_rows_and_handles_empty(tok):
    ids = tok(FIXTURES / "drums_only.mid", max_length=20, padding="max_length", return_tensors="pt")["input_ids"][0]
    midi = tok.decode(ids)
    assert len(midi.instruments) == 1 and midi.instruments[0].is_drum and len(midi.instruments[0].notes) == 8
    empty = tok.decode(torch.tensor([tok.bos_ids, tok.eos_ids]))
    assert empty.instruments == []
    with pytest.raises(ValueError):
        tok.decode(np.zeros((4, 7), dtype=np.int64))


# ---------------------------------------------------------------- transposition


def test_transpose_moves_only_melodic_pitches():
    rows = np.array([list(OctupleTokenizer.bos_ids), [0, 0, 0, 60, 4, 20, 9, 24], [0, 0, 0, 126, 4, 20, 9, 24],
                     [0, 0, 128, 164, 4, 20, 9, 24], list(OctupleTokenizer.pad_ids)])
    out = OctupleTokenizer.transpose(rows, 3)
    assert out[:, 3].tolist() == [258, 63, 127, 164, 256]  # clipped at 127; drums and specials untouched
    assert np.array_equal(np.delete(out, 3, axis=1), np.delete(rows, 3, axis=1))
    t = OctupleTokenizer.transpose(torch.as_tensor(rows)[None], -61)
    assert t[0, :, 3].tolist() == [258, 0, 65, 164, 256]
    assert rows[1, 3] == 60  # input not modified


def test_random_transpose_is_in_range_and_reproducible(tok):
    ids = tok([SAMPLES[0], FIXTURES / "drums_only.mid"], max_length=64, padding=True,
              return_tensors="pt")["input_ids"]
    ids[0, 1, 3] = 2  # a very low note limits the downward shift of window 0 to -2
    seen = set()
    for seed in range(40):
        out = OctupleTokenizer.random_transpose(ids, 6, torch.Generator().manual_seed(seed))
        melodic = ids[..., 3] < 128
        shift = (out[..., 3] - ids[..., 3])
        assert (shift[~melodic] == 0).all()
        for b in range(ids.shape[0]):
            values = shift[b][melodic[b]].unique()
            assert values.numel() <= 1  # one shift per sequence
            if values.numel():
                assert -2 <= int(values) <= 6 if b == 0 else -6 <= int(values) <= 6
                if b == 0:
                    seen.add(int(values))
        assert (out[..., 3][melodic] <= 127).all() and (out[..., 3][melodic] >= 0).all()
    assert seen == set(range(-2, 7))
    a = OctupleTokenizer.random_transpose(ids, 6, torch.Generator().manual_seed(3))
    b = OctupleTokenizer.random_transpose(ids, 6, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


# ---------------------------------------------------------------- Hub


def test_save_pretrained_files_do_not_clash_with_text_tokenizers(tmp_path):
    files = OctupleTokenizer(max_length=300, stride=7).save_pretrained(tmp_path)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["octuple_tokenizer.json", "tokenization_octuple.py", "tokenizer_config.json"]
    assert len(files) == 3
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert config["auto_map"] == {"AutoTokenizer": ["tokenization_octuple.OctupleTokenizer", None]}
    assert (tmp_path / "tokenization_octuple.py").read_text() == (REPO / "tokenization_octuple.py").read_text()
    loaded = OctupleTokenizer.from_pretrained(tmp_path)
    assert (loaded.max_length, loaded.stride, loaded.max_bars) == (300, 7, 256)
    assert OctupleTokenizer.from_pretrained(tmp_path, max_length=64).max_length == 64


def test_auto_tokenizer_in_a_fresh_process_tokenizes_identically(tmp_path):
    tok = OctupleTokenizer(max_length=128, stride=8)
    tok.save_pretrained(tmp_path / "ckpt")
    path = SAMPLES[2]
    expected = tok(path, padding=True, return_tensors="np")["input_ids"]
    np.save(tmp_path / "expected.npy", expected)
    script = textwrap.dedent(f"""
        import numpy as np, sys
        from transformers import AutoTokenizer
        tok = AutoTokenizer.from_pretrained({str(tmp_path / 'ckpt')!r}, trust_remote_code=True)
        assert type(tok).__name__ == "OctupleTokenizer", type(tok)
        ids = tok({str(path)!r}, padding=True, return_tensors="pt")["input_ids"].numpy()
        assert np.array_equal(ids, np.load({str(tmp_path / 'expected.npy')!r})), "ids differ"
        print("OK", tok.max_length, tok.stride, type(tok).__module__)
    """)
    # Run outside the repository so the checkout's module cannot be imported by accident.
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                            env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "HOME": str(tmp_path)},
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "OK 128 8 transformers_modules." in result.stdout


def test_docstring_examples_run(tmp_path, monkeypatch):
    import doctest

    # The examples name a shipped POP909 song by its path from the repository root.
    assert (REPO / "adversarial_midibert" / "sample_midi" / "pop909" / "755.mid") == LONG_SONG
    monkeypatch.chdir(REPO)
    result = doctest.testmod(octuple, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 20 and result.failed == 0


@pytest.mark.parametrize("corpus", ["pop909", "asap", "emopia"])
def test_shared_corpus_files_round_trip_exactly(shared_data, corpus):
    roundtrip = _load_script("roundtrip_corpus")
    paths = roundtrip.manifest_paths(shared_data / corpus)[::97][:4]
    for path in paths:
        counts = roundtrip.round_trip(OctupleTokenizer(max_length=256), path, 256)
        assert counts["bad_windows"] == 0 and counts["song_mismatch"] == 0, path
        assert counts["windows"] >= 1 and counts["notes"] > 0


def _load_script(name):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _score(meters=(), tempi=(), onsets=(0,), tpq=480):
    score = symusic.Score(tpq)
    for tick, n, d in meters:
        score.time_signatures.append(symusic.TimeSignature(tick, n, d))
    for tick, bpm in tempi:
        score.tempos.append(symusic.Tempo(tick, bpm))
    track = symusic.Track("piano", 0, False)
    for tick in onsets:
        track.notes.append(symusic.Note(tick, 120, 60, 80))
    score.tracks.append(track)
    return score


def test_meter_and_tempo_event_rules(tok):
    # Before the first meter event (at bar 1 of 4/4 here) the meter is 4/4; 3/4 then starts a new bar.
    ids = tok.encode_song(_score([(2400, 3, 4)], onsets=[0, 1920, 2400, 2400 + 1440])).ids
    assert ids[:, [0, 1, 6]].tolist() == [[0, 0, 9], [1, 0, 9], [2, 0, 8], [3, 0, 8]]
    # Several meter events at one tick: the last holds.
    ids = tok.encode_song(_score([(0, 2, 4), (0, 3, 4)], onsets=[1440])).ids
    assert ids[0, [0, 1, 6]].tolist() == [1, 0, 8]
    # A repeated identical meter in mid-bar is not a change: it does not cut the bar short.
    ids = tok.encode_song(_score([(0, 3, 4), (720, 3, 4)], onsets=[1440, 1920])).ids
    assert ids[:, [0, 1]].tolist() == [[1, 0], [1, 16]]
    # A different meter in mid-bar closes the bar early.
    ids = tok.encode_song(_score([(0, 3, 4), (720, 2, 4)], onsets=[600, 720])).ids
    assert ids[:, [0, 1, 6]].tolist() == [[0, 20, 8], [1, 0, 7]]
    # Tempo: MIDI's 120 bpm until the first event, the last of several events at one tick, events between
    # ticks that round to the same position count from that position.
    ids = tok.encode_song(_score(tempi=[(960, 60), (960, 90), (1000, 200)], onsets=[0, 960, 990])).ids
    assert ids[:, 7].tolist() == [35, 30, 44]  # 200 bpm: 12 * log2(12.5) = 43.7; tick 1000 = position 33.3
    # A piece with no meter or tempo event at all: 4/4 and 120 bpm.
    ids = tok.encode_song(_score(onsets=[0, 1920 * 3 + 30])).ids
    assert ids.tolist() == [[0, 0, 0, 60, 4, 20, 9, 35], [3, 1, 0, 60, 4, 20, 9, 35]]


def _pretty_midi_file(path, meter=None):
    """Two bars' worth of quarter notes at 120 bpm, with a time-signature event at time 0 or none."""
    midi = pretty_midi.PrettyMIDI(resolution=480)
    piano = pretty_midi.Instrument(program=0, name="MELODY")
    for k in range(8):
        piano.notes.append(pretty_midi.Note(velocity=80, pitch=60 + k, start=0.5 * k + 0.125, end=0.5 * k + 0.4))
    midi.instruments.append(piano)
    if meter is not None:
        midi.time_signature_changes.append(pretty_midi.TimeSignature(*meter, 0.0))
    midi.write(str(path))
    return path


def test_ignore_time_signatures_reads_every_file_as_4_4(tmp_path):
    # POP909's spurious 1/4 (issue 13): the same notes with and without it must give the same ids once meter is
    # ignored, bars and positions included (hiding the time-signature attribute alone leaves them meter-dependent).
    plain = _pretty_midi_file(tmp_path / "plain.mid")
    quarter = _pretty_midi_file(tmp_path / "one_four.mid", meter=(1, 4))
    assert [(t.numerator, t.denominator) for t in symusic.Score(str(quarter)).time_signatures] == [(1, 4)]
    by_file = OctupleTokenizer()
    assert not np.array_equal(by_file.encode_song(plain).ids[:, :2], by_file.encode_song(quarter).ids[:, :2])
    ignoring = OctupleTokenizer(ignore_time_signatures=True)
    a, b = ignoring.encode_song(plain).ids, ignoring.encode_song(quarter).ids
    assert np.array_equal(a, b)
    assert np.array_equal(a, by_file.encode_song(plain).ids)  # a 4/4 file reads the same either way
    assert set(a[:, 6].tolist()) == {octuple._time_signature_id(4, 4)}
    assert a[:, 0].tolist() == [0] * 4 + [1] * 4  # 4/4 bars, not one 1/4 bar per beat
    # Decoding writes 4/4, so the round trip stays exact; the setting is saved and loaded like the others.
    midi = ignoring.decode(ignoring(quarter)["input_ids"][0])
    assert [(t.numerator, t.denominator) for t in midi.time_signature_changes] == [(4, 4)]
    ignoring.save_pretrained(tmp_path / "tok")
    assert json.loads((tmp_path / "tok" / "octuple_tokenizer.json").read_text())["ignore_time_signatures"] is True
    assert OctupleTokenizer.from_pretrained(tmp_path / "tok").ignore_time_signatures
    assert not OctupleTokenizer.from_pretrained(tmp_path / "tok", ignore_time_signatures=False).ignore_time_signatures
    # The window cache tells the two readings apart.
    from adversarial_midibert.data.dataset import _cache_key, find_midi_files

    sources = find_midi_files(tmp_path)
    assert _cache_key(sources, by_file, None) != _cache_key(sources, ignoring, None)
