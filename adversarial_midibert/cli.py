"""The `adversarial-midibert` command: inference on MIDI files with a fine-tuned model (folder or Hub id).

    adversarial-midibert classify runs/my_task song.mid                      # label + probabilities, whole piece
    adversarial-midibert melody   runs/mel song.mid -o song.melody.mid       # melody / bridge / accompaniment tracks
    adversarial-midibert velocity runs/vel score.mid -o score.humanized.mid  # predicted velocities
    adversarial-midibert convert pretrain_model.pth runs/authors              # the authors' published weights
    adversarial-midibert embed runs/pretrain *.mid -o embeddings.parquet     # one vector per piece, any checkpoint

Adding a subcommand: write `def add_<name>(subparsers)` that creates its parser and sets `func` (a callable
taking the parsed `argparse.Namespace` and returning an exit code), then list it in `SUBCOMMANDS`.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from adversarial_midibert.hub.convert_authors import add_convert


def _count(minimum: int):
    """An argparse type: an integer of at least `minimum`, refused with a one-line message at parse time (a
    zero batch size otherwise surfaced as `range() arg 3 must not be zero` from deep inside inference)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def _add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="fine-tuned model: a folder written by train/finetune.py or a Hub id")
    parser.add_argument("--stride", type=_count(0), default=None,
                        help="notes shared by consecutive windows (default: 0 for classify, a quarter window for notes)")
    parser.add_argument("--batch_size", type=_count(1), default=16, help="windows per forward pass")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--trust_remote_code", action="store_true",
                        help="load the model with the Python code saved in the checkpoint instead of this package's "
                             "classes (runs that code: only for checkpoints you trust)")


def _predictor(args):
    from adversarial_midibert.inference.predictor import MidiPredictor

    return MidiPredictor.from_pretrained(args.model, stride=args.stride, batch_size=args.batch_size, device=args.device,
                                         trust_remote_code=args.trust_remote_code)


def _run_classify(args) -> int:
    from tokenization_octuple import MidiError

    predictor = _predictor(args)
    results, failed = [], 0
    for midi in args.midi:
        try:  # one unreadable file of a batch is reported, and the others are still classified
            result = {"file": midi, **predictor.classify(midi)}
        except (MidiError, OSError) as err:
            failed += 1
            results.append({"file": midi, "error": str(err)})
            print(f"adversarial-midibert classify: skipped {midi}: {err}", file=sys.stderr)
            continue
        results.append(result)
        if not args.json:
            ranked = sorted(result["probabilities"].items(), key=lambda item: -item[1])
            n = result["num_windows"]
            print(f"{midi}: {result['label']} ({result['score']:.1%}, {n} window{'' if n == 1 else 's'})  "
                  + "  ".join(f"{label} {p:.1%}" for label, p in ranked))
    if args.json:
        print(json.dumps(results, indent=2))
    if failed:
        print(f"adversarial-midibert classify: {failed} of {len(args.midi)} files could not be read", file=sys.stderr)
    return 1 if failed else 0


def _default_output(midi: str, suffix: str) -> str:
    path = Path(midi)
    return str(path.with_name(f"{path.stem}.{suffix}.mid"))


def _run_melody(args) -> int:
    output = args.output or _default_output(args.midi, "melody")
    score = _predictor(args).extract_melody(args.midi, output)
    tracks = ", ".join(f"{track.name} ({track.note_num()} notes)" for track in score.tracks)
    print(f"wrote {output}: {tracks}")
    return 0


def _run_velocity(args) -> int:
    output = args.output or _default_output(args.midi, "velocity")
    _predictor(args).predict_velocities(args.midi, output)
    print(f"wrote {output}")
    return 0


def add_classify(subparsers) -> None:
    parser = subparsers.add_parser("classify", help="label whole MIDI files (song level: mean of window logits)")
    _add_model_arguments(parser)
    parser.add_argument("midi", nargs="+", help="MIDI files")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.set_defaults(func=_run_classify)


def _add_midi_writer(subparsers, name: str, help: str, run) -> None:
    """A subcommand that reads one MIDI file and writes another, `<input>.<name>.mid` unless `-o` says otherwise."""
    parser = subparsers.add_parser(name, help=help)
    _add_model_arguments(parser)
    parser.add_argument("midi", help="input MIDI file")
    parser.add_argument("-o", "--output", help=f"output MIDI file (default: <input>.{name}.mid)")
    parser.set_defaults(func=run)


def add_melody(subparsers) -> None:
    _add_midi_writer(subparsers, "melody", "write a MIDI file with melody / bridge / accompaniment tracks", _run_melody)


def add_velocity(subparsers) -> None:
    _add_midi_writer(subparsers, "velocity", "write a MIDI file with predicted velocities", _run_velocity)


def _run_embed(args) -> int:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    from tqdm.auto import tqdm

    from tokenization_octuple import MidiError

    predictor = _predictor(args)
    files, windows, vectors, skipped = [], [], [], []
    for midi in tqdm(args.midi, desc="embedding", unit="file"):
        try:
            result = predictor.embed_piece(midi)
        except MidiError as err:
            skipped.append(str(err))
            continue
        files.append(midi)
        windows.append(result["num_windows"])
        vectors.append(result["embedding"])
    for reason in skipped:
        print(f"adversarial-midibert embed: skipped {reason}", file=sys.stderr)
    if not vectors:
        print("adversarial-midibert embed: no file could be read; nothing written", file=sys.stderr)
        return 1
    flat = pa.array(np.concatenate(vectors), type=pa.float32())
    table = pa.table({"file": pa.array(files, pa.string()), "windows": pa.array(windows, pa.int32()),
                      "vector": pa.FixedSizeListArray.from_arrays(flat, len(vectors[0]))})
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, args.output)
    print(f"wrote {args.output}: {len(files)} pieces x {len(vectors[0])} dimensions"
          + (f" ({len(skipped)} unreadable files skipped)" if skipped else ""))
    return 0


def add_embed(subparsers) -> None:
    parser = subparsers.add_parser(
        "embed", help="one vector per MIDI file from any checkpoint (pre-trained, fine-tuned, the shipped "
                      "adversarial-midibert-small or preset:<name>), "
                      "written as a parquet table: file, windows, vector")
    _add_model_arguments(parser)
    parser.add_argument("midi", nargs="+", help="MIDI files")
    parser.add_argument("-o", "--output", default="embeddings.parquet", help="parquet file (default: %(default)s)")
    parser.set_defaults(func=_run_embed)


SUBCOMMANDS = [add_classify, add_melody, add_velocity, add_embed, add_convert]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="adversarial-midibert", description=__doc__.split("\n\n")[0])
    subparsers = parser.add_subparsers(dest="command", required=True)
    for add in SUBCOMMANDS:
        add(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `adversarial-midibert` console script.

    Example:

    ```python
    >>> from adversarial_midibert.cli import main
    >>> main(["classify", "runs/my_task", "song.mid"])      # doctest: +SKIP
    song.mid: chopin (83.1%, 2 windows)  chopin 83.1%  bach 16.9%
    0
    ```
    """
    args = build_parser().parse_args(argv)
    from tokenization_octuple import MidiError

    try:
        return args.func(args)
    except (MidiError, ValueError, OSError) as err:
        print(f"adversarial-midibert {args.command}: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
