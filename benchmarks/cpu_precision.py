"""Time per optimizer step of pre-training on a CPU in bf16 mixed precision (`--use_cpu --bf16`) against fp32 (the
peer), same network, same batch of real windows, same run, in alternating worker processes.

On a CPU with AMX (Intel Sapphire Rapids and later: `amx_bf16` in /proc/cpuinfo) bf16 matrix products are several
times faster than fp32 ones, but torch's CPU attention kernels are not (their bf16 backward is slower than fp32),
so the model keeps attention in fp32 under CPU autocast and the gain is what the linear layers give. On a CPU
without bf16 instructions, bf16 is slower than fp32: run this before choosing it.

    python benchmarks/cpu_precision.py --threads 1             # the small preset (the shipped recipe's network)
    python benchmarks/cpu_precision.py --threads 1 --clock cpu  # steadier on a CPU shared with other jobs
"""

from __future__ import annotations

import argparse
import json
import statistics

from clock import run_alternating  # this script's folder is on sys.path
from pretrain_step import REPO, add_step_arguments, describe_shape, machine, measure, worker_flags

SIDES = {
    "random-fp32": ({"masking": "random", "masker_updates_backbone": True}, False),
    "random-bf16": ({"masking": "random", "masker_updates_backbone": True}, True),
    "adversarial-fp32": ({"masking": "adversarial", "masker_updates_backbone": True}, False),
    "adversarial-bf16": ({"masking": "adversarial", "masker_updates_backbone": True}, True),
}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_step_arguments(parser, SIDES, preset="small")
    args = parser.parse_args(argv)
    args.cpu = True  # the question is a CPU's; on a GPU bf16 is the default anyway
    if args.worker:
        side, bf16 = SIDES[args.worker]
        print(json.dumps(measure(args, side, bf16)))
        return

    results = run_alternating(__file__, SIDES, worker_flags(args), args.repeats, REPO)
    print(f"machine: {machine(args.threads)}")
    print(describe_shape(args))
    median = {side: statistics.median(r["step_s"] for r in results[side]) for side in SIDES}
    for side in SIDES:
        steps = [r["step_s"] * 1e3 for r in results[side]]
        print(f"{side:>18} per optimizer step: median {median[side] * 1e3:7.1f} ms (min {min(steps):.1f}, "
              f"max {max(steps):.1f})")
    for masking in ("random", "adversarial"):
        ratio = median[f"{masking}-fp32"] / median[f"{masking}-bf16"]
        print(f"{masking}: bf16 is {ratio:.2f}x the steps per second of fp32")


if __name__ == "__main__":
    main()
