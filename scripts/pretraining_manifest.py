"""Write the pre-training manifest of the shipped checkpoint: every MIDI file under the given folders except the
songs of the MIDI sample shipped with the package, so that the sample stays held out and recovery measured on it
(tests/test_shipped_model.py) is recovery on music the model never saw.

    python scripts/pretraining_manifest.py ../shared/data --output runs/pretraining_manifest.csv
    accelerate launch -q --cpu train/pretrain.py --preset small --manifest runs/pretraining_manifest.csv ...

A sample song is excluded wherever it appears: its own file name (POP909 `098.mid`, an EMOPIA clip), every other
clip of the same EMOPIA song (`Q1_<song>_<n>.mid`: the clips of one song share most of their material), and any
copy of a sample file in a folder named like the sample's (`test_fixture/`).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

SAMPLE_MANIFEST = Path(__file__).resolve().parents[1] / "adversarial_midibert" / "sample_midi" / "manifest.csv"
MIDI_SUFFIXES = {".mid", ".midi"}


def song_key(path: Path) -> str:
    """What identifies a song across copies: the file stem, without the clip number for EMOPIA-style names."""
    stem = path.stem
    if stem[:2] in ("Q1", "Q2", "Q3", "Q4") and stem.count("_") >= 2:
        return stem[3:].rsplit("_", 1)[0]  # Q1_<youtube id>_<clip> -> <youtube id>
    return stem


def sample_songs(sample_manifest: Path = SAMPLE_MANIFEST) -> set[str]:
    with open(sample_manifest, newline="") as f:
        return {song_key(Path(row["path"])) for row in csv.DictReader(f)}


def corpus_files(roots: list[Path], excluded: set[str]) -> tuple[list[Path], list[Path]]:
    """`(kept, dropped)`: the MIDI files under `roots`, sorted, split by whether their song is in `excluded`."""
    files = sorted(p for root in roots for p in root.rglob("*") if p.suffix.lower() in MIDI_SUFFIXES and p.is_file())
    kept = [p for p in files if song_key(p) not in excluded]
    dropped = [p for p in files if song_key(p) in excluded]
    return kept, dropped


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("roots", nargs="+", type=Path, help="folders of MIDI files (searched recursively)")
    parser.add_argument("--output", required=True, type=Path, help="the manifest to write (csv with a path column)")
    parser.add_argument("--sample_manifest", type=Path, default=SAMPLE_MANIFEST,
                        help="manifest of the songs to hold out (default: the shipped sample's)")
    args = parser.parse_args(argv)
    kept, dropped = corpus_files(args.roots, sample_songs(args.sample_manifest))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with open(args.output, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path"])
        writer.writerows([[str(p.resolve())] for p in kept])
    print(f"{len(kept)} files written to {args.output}; {len(dropped)} files of the shipped sample's songs left out")


if __name__ == "__main__":
    main()
