"""Round-trip every file of the shared corpora through the Octuple tokenizer and count exact mismatches.

For each file listed in `<corpus>/manifest.csv`: encode the song, cut it into windows (`--max-length`, no
overlap, so the windows partition the song), decode each window to a `pretty_midi.PrettyMIDI` (the public
`decode`), tokenize that again, and compare:

- window: the re-encoded window ids equal the window ids exactly (all 8 attributes, BOS/EOS);
- song: the re-encoded windows, with their bars shifted back to global bars and concatenated, equal the
  song's ids exactly, and the song has as many tokens as symusic found notes.

Files the tokenizer rejects are counted with their `MidiError` reason.

    python scripts/roundtrip_corpus.py                                   # pop909, asap, emopia
    python scripts/roundtrip_corpus.py --corpora pop909 --limit 50
"""

from __future__ import annotations

import argparse
import collections
import csv
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tokenization_octuple import MidiError, OctupleTokenizer  # noqa: E402


def manifest_paths(corpus_dir: Path) -> list[Path]:
    with open(corpus_dir / "manifest.csv", newline="", encoding="utf-8") as f:
        return [corpus_dir / row["path"] for row in csv.DictReader(f)]


def round_trip(tok: OctupleTokenizer, path: Path, max_length: int) -> dict:
    """Counts for one file: windows, mismatching windows, song mismatch (0/1), notes."""
    song = tok.encode_song(path)
    n_score_notes = tok.load_score(path).note_num()
    rebuilt, bad_windows = [], 0
    spans = tok.window_spans(song, max_length, 0)
    for start, end in spans:
        ids = tok.window_ids(song, start, end)
        again = tok(tok.decode(ids), max_length=ids.shape[0], return_tensors="np")["input_ids"]
        if again.shape[0] != 1 or not np.array_equal(again[0], ids):
            bad_windows += 1
        notes = again[0][1:-1].copy() if again.shape[0] == 1 else np.zeros((0, 8), np.int64)
        notes[:, 0] += song.ids[start, 0]
        rebuilt.append(notes)
    song_ok = n_score_notes == len(song) and np.array_equal(np.concatenate(rebuilt), song.ids)
    return {"windows": len(spans), "bad_windows": bad_windows, "song_mismatch": int(not song_ok),
            "notes": len(song)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data", help="corpora folder")
    parser.add_argument("--corpora", nargs="+", default=["pop909", "asap", "emopia"])
    parser.add_argument("--max-length", type=int, default=1024)
    parser.add_argument("--limit", type=int, default=None, help="first N files of each corpus (quick runs)")
    args = parser.parse_args(argv)

    tok = OctupleTokenizer(max_length=args.max_length)
    failed = 0
    for corpus in args.corpora:
        paths = manifest_paths(args.data / corpus)[: args.limit]
        totals = collections.Counter()
        rejected = collections.Counter()
        mismatched = []
        started = time.perf_counter()
        for path in paths:
            try:
                counts = round_trip(tok, path, args.max_length)
            except MidiError as err:
                rejected[err.reason] += 1
                continue
            totals.update(counts)
            totals["files"] += 1
            if counts["bad_windows"] or counts["song_mismatch"]:
                mismatched.append(path.relative_to(args.data))
        elapsed = time.perf_counter() - started
        print(f"{corpus}: {len(paths)} files, {totals['files']} round-tripped, {sum(rejected.values())} rejected; "
              f"{totals['notes']} notes in {totals['windows']} windows; mismatching windows: "
              f"{totals['bad_windows']}, mismatching songs: {totals['song_mismatch']} ({elapsed:.0f} s)")
        for reason, count in rejected.most_common():
            print(f"  rejected {count:5d}: {reason}")
        for path in mismatched[:20]:
            print(f"  MISMATCH {path}")
        failed += len(mismatched)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
