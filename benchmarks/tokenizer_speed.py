"""Notes per second of `OctupleTokenizer` against miditok's Octuple, same files, same process, one run.

Both sides get the same file paths (POP909 + ASAP from `../shared/data`, an evenly spaced selection of each
manifest), read from the page cache after a warm-up pass. Each round times every file once with each side,
alternating which side goes first (A, B, B, A, ...); the result is the median over rounds with min and max.
"ours" is the full user call `tok(path, padding=True, return_tensors="np")` (parse, quantize, sort, windows,
tensors); miditok is `miditok.Octuple(config).encode(path)` with programs, tempos and time signatures on, and
`max_bar_embedding` raised to the longest selected file's bar count: its default (60 bars) clips every longer piece,
so it would encode about a third of these notes. Each side's rate counts the notes that side actually returned
(ours: tokens in the windows minus BOS/EOS; miditok: Octuple tokens, one per note), both printed.

    python benchmarks/tokenizer_speed.py                  # 100 pop909 + 100 asap files, 5 rounds
    python benchmarks/tokenizer_speed.py --per-corpus 400 --rounds 3
    python benchmarks/tokenizer_speed.py --data /path/to/shared/data

Needs miditok (`pip install -e ".[dev]"`).
"""

from __future__ import annotations

import os
import sys

# This file is named like the standard library's `tokenize`, which `inspect` and `linecache` import; drop the
# script's folder from the import path before anything imports them, so they get the real one.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import argparse  # noqa: E402
import csv  # noqa: E402
import importlib.metadata  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import symusic  # noqa: E402

from tokenization_octuple import OctupleTokenizer  # noqa: E402


def select_files(data: Path, corpora: list[str], per_corpus: int) -> list[Path]:
    files = []
    for corpus in corpora:
        with open(data / corpus / "manifest.csv", newline="", encoding="utf-8") as f:
            rows = [data / corpus / row["path"] for row in csv.DictReader(f)]
        step = max(len(rows) // per_corpus, 1)
        files += rows[::step][:per_corpus]
    return files


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    versions = ", ".join(f"{p} {importlib.metadata.version(p)}" for p in ("symusic", "miditok", "numpy", "torch"))
    return (f"{cpu}; {os.cpu_count()} logical CPUs (affinity {len(os.sched_getaffinity(0))}); "
            f"{platform.system()} {platform.release()}; Python {platform.python_version()}; {versions}")


def default_data() -> Path:
    """`$ADVERSARIAL_MIDIBERT_SHARED_DATA` (as the tests read it), else `shared/data` beside the checkout."""
    return Path(os.environ.get("ADVERSARIAL_MIDIBERT_SHARED_DATA", REPO.parent / "shared" / "data"))


def check_data(parser: argparse.ArgumentParser, data: Path, corpora: list[str]) -> None:
    missing = [c for c in corpora if not (data / c / "manifest.csv").is_file()]
    if missing:
        parser.error(f"no {', '.join(f'{c}/manifest.csv' for c in missing)} under {data}: pass --data <folder "
                     f"holding {', '.join(corpora)}> (the shared corpora, e.g. --data ../shared/data)")


def max_bars(files: list[Path]) -> int:
    from miditok.utils import get_bars_ticks

    return max(len(get_bars_ticks(symusic.Score(str(p)), only_notes_onsets=True)) for p in files)


def miditok_octuple(bars: int):
    from miditok import Octuple, TokenizerConfig

    config = TokenizerConfig(pitch_range=(0, 127), num_velocities=32, use_programs=True, use_tempos=True,
                             use_time_signatures=True, beat_res={(0, 4): 16, (4, 12): 4}, max_bar_embedding=bars)
    return Octuple(config)


def time_side(encode, files: list[Path]) -> tuple[float, int]:
    """Seconds to encode every file once, and the notes the side returned."""
    notes = 0
    started = time.perf_counter()
    for path in files:
        notes += encode(path)
    return time.perf_counter() - started, notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=default_data(),
                        help="folder holding the corpora's folders (default: $ADVERSARIAL_MIDIBERT_SHARED_DATA, "
                             "else ../shared/data beside the checkout)")
    parser.add_argument("--corpora", nargs="+", default=["pop909", "asap"])
    parser.add_argument("--per-corpus", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)

    check_data(parser, args.data, args.corpora)
    files = select_files(args.data, args.corpora, args.per_corpus)
    notes = sum(symusic.Score(str(p)).note_num() for p in files)
    ours_tok = OctupleTokenizer()
    theirs_tok = miditok_octuple(max_bars(files))

    def ours(path) -> int:
        enc = ours_tok(path, padding=True, return_tensors="np")
        return int(enc["attention_mask"].sum()) - 2 * enc["attention_mask"].shape[0]

    def miditok(path) -> int:
        return len(theirs_tok.encode(path))

    sides = {"ours": ours, "miditok": miditok}
    warnings.simplefilter("ignore")  # miditok warns per file about unsupported time signatures
    for encode in sides.values():  # warm-up: page cache, lazy imports
        time_side(encode, files[:10])

    rates: dict[str, list[float]] = {name: [] for name in sides}
    encoded: dict[str, int] = {}
    for r in range(args.rounds):
        order = list(sides) if r % 2 == 0 else list(sides)[::-1]
        for name in order:
            seconds, encoded[name] = time_side(sides[name], files)
            rates[name].append(encoded[name] / seconds)

    print(f"machine: {machine()}")
    print(f"files: {len(files)} ({', '.join(args.corpora)}, {args.per_corpus} each), {notes} notes in the files, "
          f"{args.rounds} rounds alternating the order")
    print("notes encoded: " + ", ".join(f"{name} {n}" for name, n in encoded.items()) + " (each rate uses its own)")
    for name, values in rates.items():
        print(f"{name:8s} notes/s: median {statistics.median(values):12,.0f}  min {min(values):12,.0f}  "
              f"max {max(values):12,.0f}")
    ratios = [a / b for a, b in zip(rates["ours"], rates["miditok"])]
    print(f"ratio ours / miditok (per round): median {statistics.median(ratios):.1f}x  "
          f"min {min(ratios):.1f}x  max {max(ratios):.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
