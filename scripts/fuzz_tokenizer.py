"""Fuzz the Octuple tokenizer with mutated real MIDI: nothing but `MidiError` may escape.

Seeds are the shipped sample files and the edge-case fixtures that are valid MIDI. Each input is one to three
seeded mutations (byte and bit flips, data-byte edits, truncation, header and chunk-length edits, inserted /
deleted / duplicated / spliced byte runs, random events at the start of a track, delta times that overflow 32-bit
ticks, pure noise). Every input goes through the full user path: `tok(data)` (parse,
quantize, windows, padding to tensors) and, when it tokenizes, `decode` of each window and a re-encode that must
give the same ids back.

    python scripts/fuzz_tokenizer.py                  # 10,000 inputs, seed 0
    python scripts/fuzz_tokenizer.py -n 50000 --seed 7

Prints how many inputs tokenized, how many were rejected (by reason) and any escape (a bug); exits 1 on escapes
or round-trip mismatches.
"""

from __future__ import annotations

import argparse
import collections
import random
import re
import sys
import time
import traceback
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tokenization_octuple import MidiError, OctupleTokenizer  # noqa: E402


def seed_files() -> list[Path]:
    files = sorted((REPO / "adversarial_midibert" / "sample_midi").rglob("*.mid"))
    # The fixtures that are not MIDI at all would only feed the header check; noise mutations cover that.
    broken = {"empty.mid", "garbage.mid", "truncated.mid"}
    files += sorted(p for p in (REPO / "tests" / "fixtures").glob("*.mid") if p.name not in broken)
    return files


def _random_event(rng: random.Random) -> bytes:
    kind = rng.randrange(6)
    if kind == 0:  # channel voice message, any status, data bytes possibly out of range
        return bytes([rng.randrange(0x80, 0xF0), rng.randrange(256), rng.randrange(256)])
    if kind == 1:  # meta event with a random type and a random (possibly lying) length
        length = rng.choice([0, 1, 3, 4, 127, 0x7F])
        return bytes([0xFF, rng.randrange(256), length]) + rng.randbytes(rng.randrange(0, 8))
    if kind == 2:  # tempo / time signature with extreme values
        return rng.choice([b"\xff\x51\x03" + rng.randbytes(3),
                           b"\xff\x58\x04" + bytes([rng.randrange(256), rng.randrange(256), 24, 8])])
    if kind == 3:  # sysex with a long variable-length quantity
        return b"\xf0" + bytes([0x80 | rng.randrange(128)] * rng.randrange(1, 5)) + b"\x01\xf7"
    if kind == 4:  # running-status note-ons without a status byte
        return bytes(rng.randrange(128) for _ in range(rng.randrange(1, 12)))
    return rng.randbytes(rng.randrange(1, 16))


def mutate(data: bytes, rng: random.Random, other: bytes) -> tuple[str, bytes]:
    """One mutation of `data` (`other` is a second seed for splicing); returns (name, bytes)."""
    b = bytearray(data)
    op = rng.randrange(14)
    if op == 0 and b:
        for _ in range(rng.randint(1, 20)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        return "byte flips", bytes(b)
    if op == 1 and b:
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
        return "bit flips", bytes(b)
    if op == 2:
        return "truncation", bytes(b[: rng.randrange(len(b) + 1)])
    if op == 3 and len(b) >= 14:
        field = rng.choice([(8, 10), (10, 12), (12, 14)])  # format, track count, division
        value = rng.choice([0, 1, 2, 3, 0x7FFF, 0x8000, 0xE728, 0xFFFF, rng.randrange(65536)])
        b[field[0]:field[1]] = value.to_bytes(2, "big")
        return "header edit", bytes(b)
    if op == 4:
        chunks = [m.start() for m in re.finditer(b"MTrk", bytes(b))]
        if chunks:
            at = rng.choice(chunks) + 4
            b[at:at + 4] = rng.choice([0, 1, 0x7FFFFFFF, 0xFFFFFFFF, rng.randrange(1 << 32)]).to_bytes(4, "big")
            return "chunk length edit", bytes(b)
    if op == 5:
        at = rng.randrange(len(b) + 1)
        b[at:at] = rng.randbytes(rng.randint(1, 64))
        return "random insert", bytes(b)
    if op == 6 and b:
        at = rng.randrange(len(b))
        del b[at:at + rng.randint(1, 64)]
        return "deletion", bytes(b)
    if op == 7 and b:
        at = rng.randrange(len(b))
        run = b[at:at + rng.randint(1, 256)]
        to = rng.randrange(len(b) + 1)
        b[to:to] = run
        return "duplication", bytes(b)
    if op == 8:
        cut = rng.randrange(len(b) + 1)
        return "splice", bytes(b[:cut]) + other[rng.randrange(len(other) + 1):]
    if op == 9:
        chunks = [m.start() for m in re.finditer(b"MTrk", bytes(b))]
        if chunks:
            at = rng.choice(chunks) + 8  # right after the chunk header: the events are read from here
            events = b"".join(bytes([rng.choice([0, 1, 0x7F])]) + _random_event(rng) for _ in range(rng.randint(1, 6)))
            b[at:at] = events
            return "random events", bytes(b)
    if op in (10, 11) and len(b) > 22:
        # Data bytes (< 0x80) replaced by other data bytes: the event structure mostly survives, so these
        # reach quantization with odd pitches, velocities, delta times, tempi and meters.
        for _ in range(rng.randint(1, 40)):
            i = rng.randrange(22, len(b))
            if b[i] < 0x80:
                b[i] = rng.randrange(0x80)
        return "data byte edits", bytes(b)
    if op == 12:
        chunks = [m.start() for m in re.finditer(b"MTrk", bytes(b))]
        if chunks:
            # Empty text events each 0x0FFFFFFF ticks apart, chunk length kept right so the track still parses:
            # eight or more push every later event past 2**31 ticks, where symusic's int32 times wrap.
            at = rng.choice(chunks)
            waits = b"\xff\xff\xff\x7f\xff\x01\x00" * rng.randint(1, 12)
            length = int.from_bytes(b[at + 4:at + 8], "big") + len(waits)
            b[at + 8:at + 8] = waits
            b[at + 4:at + 8] = (length & 0xFFFFFFFF).to_bytes(4, "big")
            return "huge delta times", bytes(b)
    if rng.random() < 0.5:
        return "noise", rng.randbytes(rng.randrange(0, 512))
    return "noise after header", bytes(b[:14]) + rng.randbytes(rng.randrange(0, 512))


def inputs(n: int, seed: int = 0):
    """`n` deterministic fuzz inputs: (mutation name, seed file name, bytes)."""
    rng = random.Random(seed)
    seeds = [(p.name, p.read_bytes()) for p in seed_files()]
    for _ in range(n):
        name, data = rng.choice(seeds)
        _, other = rng.choice(seeds)
        data_out = data
        applied = []
        for _ in range(rng.choice([1, 1, 1, 2, 3])):  # mostly one mutation, sometimes stacked
            op, data_out = mutate(data_out, rng, other)
            applied.append(op)
        yield "+".join(applied), name, data_out


def check(tok: OctupleTokenizer, data: bytes) -> tuple[str, str]:
    """Run one input through the user path. Returns ("ok" | "rejected" | "mismatch", detail).

    Raises whatever escapes other than `MidiError` (that is the bug the fuzzer looks for).
    """
    try:
        enc = tok(data, padding=True, return_tensors="pt")
    except MidiError as err:
        assert err.reason, "MidiError without a reason"
        return "rejected", re.sub(r"\(.*\)$", "", err.reason).strip()
    ids, mask = enc["input_ids"].numpy(), enc["attention_mask"].numpy()
    for w in range(ids.shape[0]):
        window = ids[w][mask[w] == 1]
        again = tok(tok.decode(window), max_length=window.shape[0], return_tensors="np")["input_ids"]
        if again.shape[0] != 1 or not np.array_equal(again[0], window):
            return "mismatch", f"window {w}"
    return "ok", ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", "--num-inputs", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-length", type=int, default=256, help="window length (short: more windows to check)")
    args = parser.parse_args(argv)

    tok = OctupleTokenizer(max_length=args.max_length, max_notes=200_000)
    outcomes = collections.Counter()
    reasons = collections.Counter()
    by_mutation = collections.Counter()
    escapes, mismatches = [], []
    started = time.perf_counter()
    for i, (mutation, source, data) in enumerate(inputs(args.num_inputs, args.seed)):
        by_mutation[mutation.split("+")[0]] += 1
        try:
            outcome, detail = check(tok, data)
        except Exception as err:  # the fuzzer's whole point: record anything that is not a MidiError
            escapes.append((i, mutation, source, f"{type(err).__name__}: {err}", traceback.format_exc(limit=3)))
            outcomes["ESCAPED"] += 1
            continue
        outcomes[outcome] += 1
        if outcome == "rejected":
            reasons[detail] += 1
        elif outcome == "mismatch":
            mismatches.append((i, mutation, source, detail))
    elapsed = time.perf_counter() - started

    print(f"{args.num_inputs} inputs (seed {args.seed}) in {elapsed:.1f} s")
    print("outcomes:", dict(outcomes))
    print("first mutation applied:", dict(sorted(by_mutation.items())))
    print("rejections by reason:")
    for reason, count in reasons.most_common():
        print(f"  {count:6d}  {reason}")
    for i, mutation, source, message, trace in escapes[:10]:
        print(f"ESCAPE input {i} ({mutation} of {source}): {message}\n{trace}")
    for i, mutation, source, detail in mismatches[:10]:
        print(f"MISMATCH input {i} ({mutation} of {source}): {detail}")
    print(f"escapes: {len(escapes)}, round-trip mismatches: {len(mismatches)}")
    return 1 if escapes or mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
