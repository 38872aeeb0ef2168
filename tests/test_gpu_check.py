"""`benchmarks/gpu_check.py --dry-run`: the accelerator check's code paths on CPU (tiny preset), and its JSON.

One subprocess runs the whole dry run (about 20 s on an idle 2-core machine, under a minute on a loaded one); the
tests below read what it wrote. The FLOP formula and the peak look-up are checked in-process.
"""
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import gpu_check  # noqa: E402

STEP_CASES = list(gpu_check.STEP_CASES)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_check")
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--dry-run", "--out", str(out)],
                          capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    data = json.loads((out / "gpu_check.json").read_text())
    data["_markdown"] = (out / "gpu_check.md").read_text()
    return data


def cases(report):
    return {c["name"]: c for c in report["cases"]}


def test_every_case_ran_and_is_recorded(report):
    assert [c["name"] for c in report["cases"]] == list(gpu_check.ORDER)
    for name, case in cases(report).items():
        assert case["status"] == "ok", f"{name}: {case['error']}"
        assert case["error"] is None


def test_step_cases_have_every_field_or_a_reason(report):
    for name in STEP_CASES:
        case = cases(report)[name]
        for field in gpu_check.STEP_FIELDS:
            assert field in case, (name, field)
            if case[field] is None:
                assert case["null_reasons"].get(field), (name, field)
        # On CPU: measured times, no CUDA memory, no peak hence no MFU, each with its reason.
        assert case["steps_measured"] == report["settings"]["steps"]
        assert case["step_ms_min"] <= case["step_ms_median"] <= case["step_ms_max"]
        assert case["losses_finite"]
        assert len(case["losses"]) == report["settings"]["warmup"] + report["settings"]["steps"]
        assert case["peak_memory_gb"] is None and "CUDA" in case["null_reasons"]["peak_memory_gb"]
        assert case["mfu"] is None and "--peak_tflops" in case["null_reasons"]["mfu"]
        assert case["notes_per_s"] == pytest.approx(case["real_notes_per_step"] / (case["step_ms_median"] / 1e3))
    compiled = cases(report)["adversarial-compile"]
    assert compiled["compile"] and compiled["compile_backend"] == report["settings"]["compile_backend"]
    assert compiled["graph_breaks_and_recompiles"]["unique_graphs"] >= 1


def test_modes_differ_as_configured(report):
    c = cases(report)
    assert (c["random"]["masking"], c["adversarial"]["masking"], c["head_only"]["masking"]) == \
        ("random", "adversarial", "adversarial")
    assert c["adversarial"]["masker_updates_backbone"] and not c["head_only"]["masker_updates_backbone"]
    assert c["random-eager"]["attention"] == "eager" and c["random"]["attention"] == "sdpa"
    # Same seed, same batch: masking random vs adversarial gives different first losses (the masker is in the loss).
    assert c["random"]["losses"][0] != c["adversarial"]["losses"][0]
    # Compiling changes nothing in the numbers of the first step (same weights, same batch, same generator).
    assert c["adversarial-compile"]["losses"][0] == pytest.approx(c["adversarial"]["losses"][0], abs=1e-4)


def test_pretrain_run_checkpoints_and_resumes_exactly(report):
    run = cases(report)["pretrain"]
    assert "accelerate launch" in run["command"] and "train/pretrain.py" in run["command"]
    assert "--resume_from_checkpoint" in run["resume_command"]
    assert [step for step, _ in run["losses"]] == list(range(1, run["steps"] + 1))
    assert run["losses_finite"] and all(math.isfinite(loss) for _, loss in run["losses"])
    needed = {"model.safetensors", "optimizer.pt", "adversarial_state.pt", "trainer_state.json"}
    assert needed <= set(run["checkpoint_files"])
    assert run["resumed_global_step"] == run["steps"]
    assert [step for step, _ in run["resumed_losses"]] == list(range(run["checkpoint_step"] + 1, run["steps"] + 1))
    # On CPU a resumed run continues exactly (the trainer restores generators, weights and freeze book).
    assert run["resume_max_abs_loss_difference"] < 1e-6


def test_summary_and_markdown(report):
    assert set(report["ratios"]) and set(report["goals"])
    assert report["ratios"]["adversarial / random (step time)"] > 0
    assert report["goals"]["pretrain: finite losses, checkpoint, resume"] is True
    assert report["goals"]["random-masking MFU >= 40 %"] is None  # not measurable on CPU
    assert report["goals"]["adversarial step <= 1.8x random"] is None and report["goals_note"]  # not the paper setting
    assert report["machine"]["torch"] and report["machine"]["null_reasons"]["peak_tflops"]
    assert report["flop_formula"] == gpu_check.FLOP_FORMULA
    table = report["_markdown"]
    for name in STEP_CASES:
        assert f"| {name} |" in table
    assert "FLOP formula" in table and "Pre-training run" in table


def test_flops_of_the_paper_shape():
    from configuration_adversarial_midibert import AdversarialMidiBertConfig

    config = AdversarialMidiBertConfig.from_preset("paper")
    per_token = gpu_check.forward_flops_per_token(config, 1024)
    # 12 layers of BERT-base: 2 * (4 H^2 + 2 H I) = 14.2 MFLOP per token and layer before attention.
    dense = 12 * 2 * (4 * 768**2 + 2 * 768 * 3072)
    attention = 12 * (4 * 1024 * 768 + 4 * 1024 * 768)  # QK^T and PV; the relative bias's two sides
    assert per_token["backbone"] == 2 * 8 * 256 * 768 + dense + attention
    random = gpu_check.step_flops(config, 8, 1024, "random", True)
    adversarial = gpu_check.step_flops(config, 8, 1024, "adversarial", True)
    head_only = gpu_check.step_flops(config, 8, 1024, "adversarial", False)
    assert random < head_only < adversarial < 2.01 * random
    assert 5.5e12 < random < 6.5e12  # about 6.0 TFLOP per optimizer step at 8 x 1024


@pytest.mark.parametrize("name, peak", [("NVIDIA H100 80GB HBM3", 989.0), ("NVIDIA H100 PCIe", 756.0),
                                        ("NVIDIA H200", 989.0), ("NVIDIA A100-SXM4-80GB", 312.0),
                                        ("NVIDIA L4", 121.0), ("Tesla V100-SXM2-16GB", None)])
def test_peak_lookup(name, peak):
    assert gpu_check.peak_tflops(name, None)[0] == peak
    assert gpu_check.peak_tflops(name, 500.0) == (500.0, "--peak_tflops")
