"""benchmarks/cpu_precision.py runs both precisions of both masking modes in their own processes and reports the
ratios (the speed itself is the benchmark's business, not a test's)."""
import subprocess
import sys

from conftest import REPO


def test_cpu_precision_times_every_side_and_reports_both_ratios():
    out = subprocess.run([sys.executable, "benchmarks/cpu_precision.py", "--preset", "tiny", "--max_length", "64",
                          "--batch_size", "2", "--steps", "1", "--warmup", "0", "--repeats", "1", "--threads", "1"],
                         cwd=REPO, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    for side in ("random-fp32", "random-bf16", "adversarial-fp32", "adversarial-bf16"):
        assert f"{side} per optimizer step: median" in out.stdout
    for masking in ("random", "adversarial"):
        assert f"{masking}: bf16 is " in out.stdout
