"""Fuzzing the tokenizer: mutated real MIDI and generated MIDI may only ever raise `MidiError`, and whatever
tokenizes must survive decode -> encode exactly. `scripts/fuzz_tokenizer.py` runs the same mutations at scale
(10,000+ inputs); here a fixed-seed share keeps CI fast and deterministic."""

import numpy as np
import pytest
from conftest import FIXTURES, REPO, load_module
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokenization_octuple import MidiError, OctupleTokenizer


fuzz = load_module(REPO / "scripts" / "fuzz_tokenizer.py", "fuzz_tokenizer")
smf = load_module(FIXTURES / "make_fixtures.py", "make_fixtures")
TOK = OctupleTokenizer(max_length=64, max_notes=50_000)
FAST = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def test_mutated_real_midi_only_raises_midi_error():
    outcomes = {"ok": 0, "rejected": 0}
    for i, (mutation, source, data) in enumerate(fuzz.inputs(300, seed=1234)):
        try:
            outcome, detail = fuzz.check(TOK, data)
        except Exception as err:  # noqa: BLE001 - the assertion below names what escaped
            pytest.fail(f"input {i} ({mutation} of {source}) raised {type(err).__name__}: {err}")
        assert outcome != "mismatch", f"input {i} ({mutation} of {source}): round trip differs in {detail}"
        outcomes[outcome] += 1
    # Both paths must be exercised, or the fuzzer is only testing the header check.
    assert outcomes["ok"] >= 20 and outcomes["rejected"] >= 100, outcomes


def test_mutations_are_deterministic():
    a = [data for _, _, data in fuzz.inputs(20, seed=5)]
    b = [data for _, _, data in fuzz.inputs(20, seed=5)]
    assert a == b and len(set(a)) > 15


@st.composite
def midi_files(draw):
    """Well-formed SMF bytes with random resolution, tempi, meters, programs, drums and overlapping notes."""
    division = draw(st.sampled_from([1, 7, 24, 96, 120, 384, 480, 960, 1001, 32767]))
    span = division * 4 * 40  # about 40 bars of 4/4
    tick = st.integers(0, span)
    conductor = [smf.tempo(t, bpm) for t, bpm in draw(st.lists(st.tuples(tick, st.floats(4, 1000)), max_size=6))]
    conductor += [(t, b"\xff\x58\x04" + bytes([n, e, 24, 8]))
                  for t, n, e in draw(st.lists(st.tuples(tick, st.integers(0, 255), st.integers(0, 9)), max_size=6))]
    tracks = [conductor]
    for _ in range(draw(st.integers(1, 3))):
        channel = draw(st.sampled_from([0, 1, 9, 15]))
        events = [smf.program(0, channel, draw(st.integers(0, 127)))]
        for start, length, pitch, velocity in draw(st.lists(
                st.tuples(tick, st.integers(0, division * 8), st.integers(0, 127), st.integers(1, 127)),
                min_size=1, max_size=40)):
            events += smf.note(start, length, pitch, velocity, channel)
        tracks.append(events)
    return smf.smf(draw(st.sampled_from([0, 1, 2])) if len(tracks) == 1 else draw(st.sampled_from([1, 2])),
                   division, tracks)


@FAST
@given(midi_files())
def test_generated_midi_round_trips_exactly(data):
    try:
        song = TOK.encode_song(data)
    except MidiError as err:
        # A note-on/off pair at one tick is not a note for symusic; that is the only rejection allowed here.
        assert err.reason == "no notes"
        return
    assert np.all(song.ids >= 0)
    assert np.all(song.ids[:, 1:] < np.asarray(TOK.regular_vocab_sizes[1:]))  # global bars may exceed 255
    for start, end in TOK.window_spans(song):
        ids = TOK.window_ids(song, start, end)
        assert ids[1:-1, 0].max() < 256
        again = TOK(TOK.decode(ids), max_length=ids.shape[0], return_tensors="np")["input_ids"]
        assert again.shape[0] == 1 and np.array_equal(again[0], ids)


@FAST
@given(st.binary(max_size=300), st.integers(0, 65535), st.integers(0, 65535))
def test_random_bytes_after_a_header_only_raise_midi_error(body, fmt, division):
    data = b"MThd\x00\x00\x00\x06" + fmt.to_bytes(2, "big") + b"\x00\x01" + division.to_bytes(2, "big") + body
    try:
        fuzz.check(TOK, data)
    except MidiError:
        pytest.fail("check() must turn MidiError into a 'rejected' outcome")


@FAST
@given(st.lists(st.tuples(*[st.integers(0, n + 3) for n in OctupleTokenizer.regular_vocab_sizes]),
                min_size=1, max_size=30))
def test_decode_of_arbitrary_ids_never_crashes(rows):
    ids = np.asarray(rows, dtype=np.int64)
    midi = TOK.decode(ids)
    regular = np.all(ids < np.asarray(TOK.regular_vocab_sizes), axis=1)
    assert sum(len(i.notes) for i in midi.instruments) == int(regular.sum())
    try:
        TOK(midi)
    except MidiError as err:
        assert err.reason == "no notes" and not regular.any()
    shifted = TOK.transpose(ids, 5)
    assert np.array_equal(shifted[:, [0, 1, 2, 4, 5, 6, 7]], ids[:, [0, 1, 2, 4, 5, 6, 7]])
