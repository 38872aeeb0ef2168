"""Representation benchmark of one checkpoint: linear probes on frozen piece embeddings (EMOPIA quadrants, ASAP
composers, Pianist8, music21 composers) and ASAP score-performance retrieval, beside the same architecture with
random weights and the note-statistics features. The work is `adversarial_midibert.evaluation.representation.run_probe`
(its docstring gives the protocol); this script parses the flags, prints the tables and writes them to --out_dir.

    python benchmarks/representation.py runs/pretrain --threads 1            # minutes on a CPU for the tiny preset
    python benchmarks/representation.py preset:tiny --out_dir runs/representation_random
    python benchmarks/representation.py runs/paper --device cuda --max_windows 0 --performances_per_piece 0

Needs scikit-learn (`pip install -e ".[test]"`); the PCA picture needs matplotlib (`.[plots]`) and is skipped
without it. The shared corpora are read from ../shared/data (or --data_root).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from adversarial_midibert.evaluation.representation import PROBE_TASKS, format_markdown, run_probe  # noqa: E402


def _optional(value: str) -> int | None:
    number = int(value)
    return number if number > 0 else None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="checkpoint folder or Hub id (pre-trained or fine-tuned), or preset:<name>")
    parser.add_argument("--out_dir", default="runs/representation", help="where the JSON, tables and PNG go")
    parser.add_argument("--data_root", default=None, help="the shared corpora (default ../shared/data)")
    parser.add_argument("--tasks", nargs="+", default=list(PROBE_TASKS), help="labelled sets (fine-tuning recipes)")
    parser.add_argument("--no_retrieval", action="store_true", help="skip ASAP score-performance retrieval")
    parser.add_argument("--no_controls", action="store_true", help="only the checkpoint row (no random weights / note statistics)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--max_windows", type=_optional, default=4, help="windows per piece from its start (0: all)")
    parser.add_argument("--performances_per_piece", type=_optional, default=2, help="ASAP performances per piece (0: all)")
    parser.add_argument("--max_train_groups", type=_optional, default=800, help="training groups per set (0: all)")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the intervals")
    parser.add_argument("--layer", type=int, default=None,
                        help="embed this layer's output (0: the embeddings; default: the last hidden state)")
    parser.add_argument("--batch_size", type=int, default=32, help="windows per forward pass")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--trust_remote_code", action="store_true", help="load the checkpoint with its own code")
    parser.add_argument("--no_plot", action="store_true", help="no PCA picture")
    args = parser.parse_args(argv)
    result = run_probe(args.model, args.out_dir, data_root=args.data_root, tasks=args.tasks,
                       retrieval=not args.no_retrieval, controls=not args.no_controls, seed=args.seed,
                       max_windows=args.max_windows, performances_per_piece=args.performances_per_piece,
                       max_train_groups=args.max_train_groups, bootstrap=args.bootstrap, batch_size=args.batch_size,
                       device=args.device, num_threads=args.threads, trust_remote_code=args.trust_remote_code,
                       plot=not args.no_plot, layer=args.layer)
    print(format_markdown(result))
    machine = result["machine"]
    print(f"machine: {machine['platform']}, {machine['cpu_count']} CPUs, {machine['torch_threads']} torch threads, "
          f"device {result['settings']['device']}; wrote {', '.join(result['files'].values())}")
    if result["skipped_files"]:
        print(f"{len(result['skipped_files'])} unreadable files skipped, e.g. {result['skipped_files'][0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
