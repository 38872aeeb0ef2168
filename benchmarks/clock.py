"""The clock a benchmark times with, shared by `model.py`, `pretrain_step.py` and `position_speed.py`, and the
alternating worker processes of the last two.

`wall` (`time.perf_counter`) is what a user waits; `cpu` (`time.process_time`, CPU seconds of the measuring
process, all its threads) is steadier on a machine shared with other jobs, where a worker's wall time includes the
time it waited for a core. Use `cpu` with `--threads 1`: with several threads it also counts their spinning.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def add_clock_argument(parser: argparse.ArgumentParser) -> None:
    """Add `--clock {wall,cpu}` (default `wall`) to a benchmark's parser."""
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                        help="time per wall-clock second, or per CPU second of the worker (steadier on a machine "
                             "shared with other jobs; use with --threads 1)")


def add_alternation_arguments(parser: argparse.ArgumentParser, sides, steps: int, warmup: int) -> None:
    """The flags of a benchmark whose sides run in alternating worker processes: `--steps`, `--warmup`,
    `--repeats`, `--threads`, `--clock` and the hidden `--worker SIDE`."""
    parser.add_argument("--steps", type=int, default=steps, help="timed optimizer steps per process")
    parser.add_argument("--warmup", type=int, default=warmup)
    parser.add_argument("--repeats", type=int, default=3, help="processes per side, alternating")
    parser.add_argument("--threads", type=int, default=0, help="torch threads per process (0: torch's default)")
    add_clock_argument(parser)
    parser.add_argument("--worker", choices=sorted(sides), help=argparse.SUPPRESS)


def run_alternating(script: str, sides, passthrough: list[str], repeats: int, cwd) -> dict[str, list[dict]]:
    """Run `script --worker SIDE *passthrough` for every side in turn, `repeats` rounds (A, B, A, B, ...: inside
    one process allocator state skews a step ratio by 20-40 %); each worker prints one JSON line with `step_s`."""
    results: dict[str, list[dict]] = {side: [] for side in sides}
    for repeat in range(repeats):
        for side in sides:
            out = subprocess.run([sys.executable, script, "--worker", side, *passthrough], capture_output=True,
                                 text=True, cwd=cwd, check=True)
            results[side].append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"repeat {repeat + 1}/{repeats} {side:>22}: {results[side][-1]['step_s'] * 1e3:8.1f} ms/step",
                  file=sys.stderr)
    return results
