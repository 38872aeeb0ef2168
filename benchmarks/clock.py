"""The clock a benchmark times with, shared by `model.py` and `pretrain_step.py`.

`wall` (`time.perf_counter`) is what a user waits; `cpu` (`time.process_time`, CPU seconds of the measuring
process, all its threads) is steadier on a machine shared with other jobs, where a worker's wall time includes the
time it waited for a core. Use `cpu` with `--threads 1`: with several threads it also counts their spinning.
"""
from __future__ import annotations

import argparse
import time

CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def add_clock_argument(parser: argparse.ArgumentParser) -> None:
    """Add `--clock {wall,cpu}` (default `wall`) to a benchmark's parser."""
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                        help="time per wall-clock second, or per CPU second of the worker (steadier on a machine "
                             "shared with other jobs; use with --threads 1)")
