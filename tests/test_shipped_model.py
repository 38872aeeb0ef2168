"""The pre-trained checkpoints that ship in the package (`adversarial_midibert/pretrained/small`, adversarial, and
`small-random`, its random-masking control): they load through every Auto class in a fresh process with no
network, they answer to their short names wherever a model is named, and their weights are the trained ones: on
the shipped MIDI sample, whose songs were held out of their pre-training (scripts/pretraining_manifest.py), they
recover masked notes far above what the same network with random weights can, exactly as their cards state."""
import json
import os
import subprocess
import sys

import pytest
import torch

from adversarial_midibert.data.dataset import build_window_dataset, find_midi_files
from adversarial_midibert.evaluation.recovery import masked_recovery
from adversarial_midibert.presets import PRETRAINED_DIR, SAMPLE_MIDI, SHIPPED_MODELS, resolve_model_name
from conftest import REPO
from modeling_adversarial_midibert import AdversarialMidiBertForPreTraining
from tokenization_octuple import OctupleTokenizer

SHIPPED = PRETRAINED_DIR / "small"
# Held-out recovery on the sample (fixed random 15 %, seed 0) measured with the shipped weights is in each card;
# these floors sit below it, and far above the same network with random weights (about 1 / vocabulary size).
FLOORS = {
    "small": {"pitch": 0.15, "duration": 0.08, "position": 0.3},
    "small-random": {"pitch": 0.25, "duration": 0.15, "position": 0.45},  # the 5,000-step control (pitch 0.238) fails
}


@pytest.fixture(scope="module")
def sample_windows():
    tokenizer = OctupleTokenizer.from_pretrained(SHIPPED)
    windows, report = build_window_dataset(find_midi_files(SAMPLE_MIDI), tokenizer)
    assert not report.skipped
    return windows


@pytest.mark.parametrize("folder", sorted(FLOORS))
def test_shipped_weights_are_the_trained_ones(sample_windows, folder):
    floors = FLOORS[folder]
    shipped = AdversarialMidiBertForPreTraining.from_pretrained(PRETRAINED_DIR / folder).eval()
    torch.manual_seed(0)
    untrained = AdversarialMidiBertForPreTraining(shipped.config).eval()
    trained, control = masked_recovery(shipped, sample_windows), masked_recovery(untrained, sample_windows)
    for name, floor in floors.items():
        assert trained[name] >= floor, (name, trained[name])
        assert control[name] < floor / 3, (name, control[name])
    for name in ("pitch", "position"):  # and they know more than copying the window's most common value
        assert trained[name] > 1.5 * trained[f"{name}_copy"], (name, trained[name], trained[f"{name}_copy"])
    card = (PRETRAINED_DIR / folder / "README.md").read_text()
    for name in floors:  # the card states what this test measures, to the reported precision
        assert (f"| {name} | {trained[name]:.3f} | {control[name]:.3f} | {trained[name + '_copy']:.3f} |"
                in card), (name, trained[name])


def test_shipped_checkpoint_loads_through_every_auto_class_offline(tmp_path):
    script = f"""
import json
from transformers import (AutoModel, AutoModelForPreTraining, AutoModelForSequenceClassification,
                          AutoModelForTokenClassification, AutoTokenizer)
folder = {str(SHIPPED)!r}
tok = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
enc = tok([{str(SAMPLE_MIDI / "pop909" / "098.mid")!r}], padding=True, return_tensors="pt")
hidden = AutoModel.from_pretrained(folder, trust_remote_code=True)(
    input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
clf = AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True, num_labels=4)
notes = AutoModelForTokenClassification.from_pretrained(folder, trust_remote_code=True, num_labels=3)
pre = AutoModelForPreTraining.from_pretrained(folder, trust_remote_code=True)
print(json.dumps({{"hidden": list(hidden.shape), "classes": clf(input_ids=enc["input_ids"][:1]).logits.shape[-1],
                  "note_classes": notes(input_ids=enc["input_ids"][:1]).logits.shape[-1],
                  "types": [type(m).__name__ for m in (clf, notes, pre)]}}))
"""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": ""}
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    config = json.loads((SHIPPED / "config.json").read_text())
    assert result["hidden"][-1] == config["hidden_size"] and result["classes"] == 4 and result["note_classes"] == 3
    assert result["types"] == ["AdversarialMidiBertForSequenceClassification",
                               "AdversarialMidiBertForTokenClassification", "AdversarialMidiBertForPreTraining"]


def test_short_name_reaches_the_shipped_folder_everywhere(tmp_path):
    from adversarial_midibert.finetuning.inputs import check_model_name
    from adversarial_midibert.inference.predictor import MidiPredictor

    name = "adversarial-midibert-small"
    assert resolve_model_name(name) == str(SHIPPED)
    check_model_name(name)  # no "no such folder", even offline
    predictor = MidiPredictor.from_pretrained(name)
    vector = predictor.embed_piece(SAMPLE_MIDI / "emopia" / "Q1_1Qc15G0ZHIg_1.mid")["embedding"]
    assert vector.shape[-1] == predictor.model.config.hidden_size
    done = subprocess.run([sys.executable, "-m", "adversarial_midibert.cli", "embed", name,
                           str(SAMPLE_MIDI / "pop909" / "098.mid"), "-o", str(tmp_path / "e.parquet")],
                          cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0 and (tmp_path / "e.parquet").is_file(), done.stderr[-2000:]


def test_every_short_name_has_a_tested_folder():
    assert sorted(SHIPPED_MODELS.values()) == sorted(FLOORS)
    assert sorted(p.name for p in PRETRAINED_DIR.iterdir() if p.is_dir()) == sorted(FLOORS)


@pytest.mark.parametrize("folder", sorted(FLOORS))
def test_shipped_code_files_are_the_repository_s(folder):
    """`trust_remote_code` runs the folder's own copies of the Hub files: they must be today's, byte for byte
    (after a change to a root Hub file, refresh them with `python scripts/ship_checkpoint.py --refresh_code`)."""
    for name in ("configuration_adversarial_midibert.py", "modeling_adversarial_midibert.py",
                 "tokenization_octuple.py", "pipeline_adversarial_midibert.py"):
        assert (PRETRAINED_DIR / folder / name).read_bytes() == (REPO / name).read_bytes(), name
