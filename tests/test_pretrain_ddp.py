"""Two CPU processes (gloo) through `accelerate launch`: every process ends with the same freeze book and weights,
and evaluation counts every held-out window exactly once."""
import json
import subprocess

from conftest import REPO, needs_accelerate, two_cpu_processes


@needs_accelerate
def test_two_processes_share_freeze_book_and_attribute_weights(tmp_path):
    out = tmp_path / "ddp"
    launch, env = two_cpu_processes("train/pretrain.py")
    command = [
        *launch,
        "--output_dir", str(out), "--cache_dir", str(tmp_path / "cache"), "--max_songs", "6", "--max_length", "48",
        "--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "4", "--num_train_epochs", "2", "--freeze_every_epochs", "1",
        "--validation_fraction", "0.2", "--eval_strategy", "epoch", "--save_strategy", "no", "--logging_steps", "2",
        "--dump_process_state", "true", "--disable_tqdm", "true", "--seed", "3",
    ]
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    states = [json.loads((out / f"process_state-{rank}.json").read_text()) for rank in (0, 1)]
    assert [s["process_index"] for s in states] == [0, 1]
    # A real 2-process group, not two independent single-process runs.
    assert all(s["world_size"] == 2 and s["distributed_world_size"] == 2 for s in states)
    assert states[0]["distributed_backend"] == "gloo"
    assert states[0]["freeze_updates"] == states[1]["freeze_updates"] == 2
    assert states[0]["frozen_fraction"] > 0
    assert states[0]["freeze_book_digest"] == states[1]["freeze_book_digest"]
    assert states[0]["attribute_weights"] == states[1]["attribute_weights"]
    assert states[0]["attribute_weights"] != [0.125] * 8  # epochs were closed with measured accuracies
    # Accelerate pads the last evaluation batch with repeated windows when the set does not split evenly into
    # 2 processes x 4; the evaluation sums must leave the repeats out.
    size = states[0]["eval_dataset_size"]
    assert size % 8 != 0, "the held-out set splits evenly: this run would not show double counting"
    evaluations = [s["last_evaluation"] for s in states]
    assert evaluations[0]["eval_windows"] == evaluations[1]["eval_windows"] == size
    assert evaluations[0]["eval_masked_notes"] == evaluations[1]["eval_masked_notes"] > 0
    assert evaluations[0]["eval_accuracy"] == evaluations[1]["eval_accuracy"]
    assert (out / "model.safetensors").is_file() and (out / "README.md").is_file()
    # The card's command launches two processes again: batch 4 per device means nothing without them.
    assert ("ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no "
            "--dynamo_backend no train/pretrain.py --output_dir") in (out / "README.md").read_text()
