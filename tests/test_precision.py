"""`--bf16` on a machine without a GPU is bf16 on the CPU, in both training commands, instead of transformers'
"Your setup doesn't support bf16/gpu"."""
import pytest
from transformers.utils import is_torch_bf16_gpu_available

from adversarial_midibert.finetuning.arguments import parse_args
from adversarial_midibert.precision import with_cpu_for_bf16
from adversarial_midibert.pretraining.arguments import parse_pretraining_args

needs_no_bf16_gpu = pytest.mark.skipif(is_torch_bf16_gpu_available(), reason="a GPU here takes --bf16 itself")


@needs_no_bf16_gpu
@pytest.mark.parametrize("flags", [["--bf16"], ["--bf16", "true"], ["--bf16=True"]])
def test_bf16_without_a_gpu_trains_on_the_cpu(tmp_path, flags):
    _, _, pretraining = parse_pretraining_args(["--output_dir", str(tmp_path), *flags])
    _, finetuning = parse_args(["--output_dir", str(tmp_path), *flags])
    for args in (pretraining, finetuning):
        assert args.bf16 and args.use_cpu


@pytest.mark.parametrize("argv", [
    ["--max_steps", "3"],
    ["--bf16", "false"],
    ["--bf16_full_eval", "--max_steps", "3"],   # another flag that starts the same way
    ["--bf16", "--use_cpu", "false"],           # the user's own word on --use_cpu stands
])
def test_other_flags_are_left_as_given(argv):
    assert with_cpu_for_bf16(argv) == argv


def test_without_bf16_the_device_is_left_to_the_launcher(tmp_path):
    _, _, pretraining = parse_pretraining_args(["--output_dir", str(tmp_path)])
    assert not pretraining.bf16 and not pretraining.use_cpu
