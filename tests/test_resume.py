"""Kill -9 in the middle of pre-training, resume from the last checkpoint: the same losses and freeze book as an
uninterrupted run (same seed, CPU)."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import REPO
from safetensors.numpy import load_file

from adversarial_midibert.pretraining.trainer import last_complete_checkpoint

# 4 short songs -> 38 windows of 48 tokens -> 10 steps per epoch at batch 4: the freeze book is updated after step
# 10, between the checkpoint the runs resume from (step 5) and the end (step 15).
ARGS = ["--max_songs", "4", "--max_length", "48", "--per_device_train_batch_size", "4", "--validation_fraction", "0",
        "--eval_strategy", "no", "--freeze_every_epochs", "1", "--max_steps", "15", "--save_strategy", "steps",
        "--save_steps", "5", "--save_total_limit", "10", "--logging_steps", "1", "--disable_tqdm", "true",
        "--seed", "11", "--dump_process_state", "true"]
STEP_KEYS = ("loss", "grad_norm", "recoverer_loss", "masker_loss", "accuracy_pitch", "weight_pitch", "frozen_fraction")


def _command(out, cache, *extra):
    return [sys.executable, "train/pretrain.py", "--output_dir", str(out), "--cache_dir", str(cache), *ARGS, *extra]


def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def _run(out, cache, *extra):
    result = subprocess.run(_command(out, cache, *extra), cwd=REPO, env=_env(), capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


def _history(out, step=15):
    state = json.loads((out / f"checkpoint-{step}" / "trainer_state.json").read_text())
    return {h["step"]: h for h in state["log_history"] if "loss" in h}, [
        h for h in state["log_history"] if "closed_epoch" in h
    ]


def _assert_same_continuation(reference, resumed, after_step):
    ref_steps, ref_epochs = _history(reference)
    res_steps, res_epochs = _history(resumed)
    later = [s for s in ref_steps if s > after_step]
    assert later == [s for s in res_steps if s > after_step] and len(later) == 15 - after_step
    for step in later:
        for key in STEP_KEYS:
            assert res_steps[step][key] == ref_steps[step][key], (step, key)
    assert res_epochs[-1] == ref_epochs[-1]  # epoch accuracies, eq. 2 weights and frozen fraction at epoch 1's end
    ref_state = json.loads((reference / "process_state-0.json").read_text())
    res_state = json.loads((resumed / "process_state-0.json").read_text())
    assert ref_state["freeze_updates"] == 1 and ref_state["frozen_fraction"] > 0
    assert res_state["freeze_book_digest"] == ref_state["freeze_book_digest"]
    assert res_state["attribute_weights"] == ref_state["attribute_weights"]
    ref_weights, res_weights = load_file(reference / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert all(np.array_equal(ref_weights[k], res_weights[k]) for k in ref_weights)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    _run(root / "reference", root / "cache")
    return root


def test_kill_9_then_resume_continues_exactly(uninterrupted):
    root = uninterrupted
    out = root / "killed"
    process = subprocess.Popen(_command(out, root / "cache"), cwd=REPO, env=_env(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    # trainer_state.json is the last file the Trainer writes into a checkpoint.
    while not (out / "checkpoint-5" / "trainer_state.json").is_file():
        assert process.poll() is None, "training ended before its first checkpoint"
        assert time.time() < deadline
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    assert not (out / "checkpoint-15").exists(), "the run was not interrupted"
    # The newest complete checkpoint: 5, or 10 if the run got that far before the kill.
    resume_step = int(last_complete_checkpoint(str(out)).rsplit("-", 1)[1])
    _run(out, root / "cache", "--resume_from_checkpoint", "last")
    _assert_same_continuation(root / "reference", out, after_step=resume_step)


def test_resume_from_the_last_step_of_an_epoch_closes_that_epoch(uninterrupted):
    # checkpoint-10 is saved on epoch 1's last step, before the epoch closes (weights, freeze-book update): the
    # resumed run must close it exactly as the uninterrupted run did.
    root = uninterrupted
    out = root / "from10"
    out.mkdir()
    shutil.copytree(root / "reference" / "checkpoint-10", out / "checkpoint-10")
    _run(out, root / "cache", "--resume_from_checkpoint", str(out / "checkpoint-10"))
    _assert_same_continuation(root / "reference", out, after_step=10)


def test_last_complete_checkpoint_skips_a_partly_written_one(tmp_path):
    for step, files in ((5, ("trainer_state.json", "adversarial_state.pt")), (10, ("adversarial_state.pt",)),
                        (7, ("trainer_state.json",))):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        for name in files:
            (folder / name).write_text("{}")
    (tmp_path / "checkpoint-x").mkdir()
    assert last_complete_checkpoint(str(tmp_path)) == str(tmp_path / "checkpoint-5")
    assert last_complete_checkpoint(str(tmp_path / "missing")) is None


def test_resume_is_exact_when_an_epoch_end_evaluation_follows_the_checkpoint(tmp_path):
    # A checkpoint saved on an epoch's last step, then the epoch-end evaluation: the resumed run skips that
    # evaluation, so it must not have moved the RNG the next steps draw dropout from.
    args = ["--validation_fraction", "0.25", "--eval_strategy", "epoch", "--save_steps", "1", "--save_total_limit",
            "20"]
    _run(tmp_path / "reference", tmp_path / "cache", *args)
    _, epochs = _history(tmp_path / "reference")
    epoch_end = epochs[0]["step"]
    assert 1 < epoch_end < 15
    out = tmp_path / "resumed"
    out.mkdir()
    shutil.copytree(tmp_path / "reference" / f"checkpoint-{epoch_end}", out / f"checkpoint-{epoch_end}")
    _run(out, tmp_path / "cache", *args, "--resume_from_checkpoint", "last")
    ref_steps, _ = _history(tmp_path / "reference")
    res_steps, _ = _history(out)
    later = [s for s in ref_steps if s > epoch_end]
    assert later and later == [s for s in res_steps if s > epoch_end]
    for step in later:
        for key in STEP_KEYS:
            assert res_steps[step][key] == ref_steps[step][key], (step, key)
    ref_weights, res_weights = load_file(tmp_path / "reference" / "model.safetensors"), load_file(out / "model.safetensors")
    assert all(np.array_equal(ref_weights[k], res_weights[k]) for k in ref_weights)


def test_a_torn_checkpoint_is_skipped_with_a_warning_naming_it(tmp_path):
    for step in (5, 10):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        (folder / "adversarial_state.pt").write_text("{}")
        (folder / "trainer_state.json").write_text('{"global_step": %d}' % step)
    (tmp_path / "checkpoint-10" / "trainer_state.json").write_text('{"global_step": 10, "log_hist')  # cut short
    with pytest.warns(UserWarning, match="checkpoint-10"):
        assert last_complete_checkpoint(str(tmp_path)) == str(tmp_path / "checkpoint-5")
