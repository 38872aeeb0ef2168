"""`--bf16` on a machine without a GPU: mixed precision on the CPU, for pre-training and fine-tuning alike.

transformers refuses `--bf16` unless a GPU supports it or `--use_cpu` is given ("Your setup doesn't support
bf16/gpu"). On a machine with no such GPU the only bf16 a user can mean is the CPU's, which on a CPU with AMX
(`amx_bf16` in /proc/cpuinfo) runs a pre-training step 1.44-1.50x faster (docs/pretraining.md), so the flag is
taken as asking for it instead of ending the run.
"""
from __future__ import annotations

import argparse

from transformers.hf_argparser import string_to_bool
from transformers.utils import is_torch_bf16_gpu_available, is_torch_xla_available


def _flag_value(argv: list[str], name: str) -> bool | None:
    # The flag exactly, as HfArgumentParser reads a boolean: `--bf16`, `--bf16 true`, `--bf16=False`
    # (allow_abbrev off, so `--bf16_full_eval` is not `--bf16`); None where it is not given.
    probe = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    probe.add_argument(f"--{name}", nargs="?", const=True, default=None, type=string_to_bool)
    known, _ = probe.parse_known_args(argv)
    return getattr(known, name)


def with_cpu_for_bf16(argv: list[str]) -> list[str]:
    """`argv` plus `--use_cpu` where it asks for `--bf16`, says nothing of `--use_cpu`, and no GPU (nor TPU) here
    supports bf16.

    Example:

    >>> with_cpu_for_bf16(["--max_steps", "3"])
    ['--max_steps', '3']
    """
    if not _flag_value(argv, "bf16") or _flag_value(argv, "use_cpu") is not None:
        return argv
    if is_torch_bf16_gpu_available() or is_torch_xla_available():
        return argv
    return [*argv, "--use_cpu"]
