"""`transformers.pipeline(task, model=folder, trust_remote_code=True)` on checkpoints saved the way
train/finetune.py saves them runs the checkpoint's own copy of `pipeline_adversarial_midibert.py` in a FRESH
process (cwd elsewhere, private dynamic-modules cache) and returns MidiPredictor's results: the same label and
probabilities for a whole piece, the same label for every note."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from conftest import LONG_SONG, sample_files
from configuration_adversarial_midibert import AdversarialMidiBertConfig
from modeling_adversarial_midibert import (
    AdversarialMidiBertForSequenceClassification,
    AdversarialMidiBertForTokenClassification,
)
from pipeline_adversarial_midibert import NOTE_TASK, SEQUENCE_TASK, register_pipelines
from tokenization_octuple import OctupleTokenizer

MAX_LENGTH = 128
SEQUENCE_LABELS = ["calm", "happy", "sad"]
NOTE_LABELS = ["melody", "bridge", "accompaniment"]

# Runs in the fresh process: build each pipeline from its folder alone and record its outputs and class.
RUNNER = textwrap.dedent(
    """
    import json, sys
    from transformers import pipeline
    from transformers.utils import logging
    logging.set_verbosity_error()
    root, midi = sys.argv[1], sys.argv[2]
    report = {}
    for name, task in (("sequence", %r), ("token", %r)):
        pipe = pipeline(task, model=f"{root}/{name}", trust_remote_code=True)
        report[name] = {"result": pipe(midi), "module": type(pipe).__module__, "class": type(pipe).__name__,
                        "task": pipe.task, "training": pipe.model.training}
    inferred = pipeline(model=f"{root}/sequence", trust_remote_code=True)
    report["inferred"] = {"task": inferred.task, "class": type(inferred).__name__, "result": inferred(midi)}
    with open(f"{root}/report.json", "w") as f:
        json.dump(report, f)
    """
) % (SEQUENCE_TASK, NOTE_TASK)


def save_like_finetune(model, folder):
    """What train/finetune.py does at the end of a run: register the pipeline, then save model and tokenizer
    (`trainer.save_model` writes both)."""
    register_pipelines(model, folder)
    model.save_pretrained(folder)
    OctupleTokenizer(max_length=MAX_LENGTH).save_pretrained(folder)


@pytest.fixture(scope="module")
def midi_file():
    return str(LONG_SONG)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    root = tmp_path_factory.mktemp("checkpoints")
    for name, cls, labels in (("sequence", AdversarialMidiBertForSequenceClassification, SEQUENCE_LABELS),
                              ("token", AdversarialMidiBertForTokenClassification, NOTE_LABELS)):
        torch.manual_seed(0)
        config = AdversarialMidiBertConfig.from_preset(
            "tiny", num_labels=len(labels), id2label=dict(enumerate(labels)),
            label2id={label: i for i, label in enumerate(labels)})
        save_like_finetune(cls(config).eval(), root / name)
    return root


@pytest.fixture(scope="module")
def fresh_process(saved, midi_file, tmp_path_factory):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    # A private dynamic-modules cache: the pipeline code can only come from the checkpoint folder.
    env.update(HF_MODULES_CACHE=str(tmp_path_factory.mktemp("modules")), HF_HUB_OFFLINE="1",
               TRANSFORMERS_VERBOSITY="error")
    done = subprocess.run([sys.executable, "-c", RUNNER, str(saved), midi_file], cwd=tmp_path_factory.mktemp("cwd"),
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((saved / "report.json").read_text())


@pytest.fixture(scope="module")
def predictors(saved):
    from adversarial_midibert.inference.predictor import MidiPredictor

    return {name: MidiPredictor.from_pretrained(saved / name) for name in ("sequence", "token")}


def test_saved_folder_carries_the_pipeline_code_and_only_its_heads_task(saved):
    for name, task, cls in (("sequence", SEQUENCE_TASK, "MidiClassificationPipeline"),
                            ("token", NOTE_TASK, "MidiNoteClassificationPipeline")):
        assert (saved / name / "pipeline_adversarial_midibert.py").is_file()
        custom = json.loads((saved / name / "config.json").read_text())["custom_pipelines"]
        assert list(custom) == [task]
        assert custom[task]["impl"] == f"pipeline_adversarial_midibert.{cls}"


def test_pipeline_class_comes_from_the_checkpoint(fresh_process):
    for name, cls in (("sequence", "MidiClassificationPipeline"), ("token", "MidiNoteClassificationPipeline")):
        entry = fresh_process[name]
        assert entry["module"].startswith("transformers_modules."), entry["module"]
        assert entry["module"].endswith(".pipeline_adversarial_midibert"), entry["module"]
        assert entry["class"] == cls
        assert entry["training"] is False
    assert fresh_process["inferred"]["task"] == SEQUENCE_TASK
    assert fresh_process["inferred"]["class"] == "MidiClassificationPipeline"


def test_sequence_pipeline_matches_midi_predictor(fresh_process, predictors, midi_file):
    expected = predictors["sequence"].classify(midi_file)
    assert expected["num_windows"] >= 3  # the piece really spans several windows
    for got in (fresh_process["sequence"]["result"], fresh_process["inferred"]["result"]):
        assert got["label"] == expected["label"]
        assert got["num_windows"] == expected["num_windows"]
        assert list(got["probabilities"]) == SEQUENCE_LABELS
        for label, probability in expected["probabilities"].items():
            assert got["probabilities"][label] == pytest.approx(probability, abs=1e-5)
        assert got["score"] == pytest.approx(expected["score"], abs=1e-5)


def test_note_pipeline_matches_midi_predictor(fresh_process, predictors, midi_file):
    expected = predictors["token"].note_predictions(midi_file)
    got = fresh_process["token"]["result"]
    song = expected.song
    assert len(got) == len(song.track_index) > 3 * (MAX_LENGTH - 2)
    assert [note["index"] for note in got] == list(range(len(got)))
    assert [note["track_index"] for note in got] == song.track_index.tolist()
    assert [note["note_index"] for note in got] == song.note_index.tolist()
    id2label = predictors["token"].id2label
    assert [note["label"] for note in got] == [id2label[int(k)] for k in expected.labels]
    # The reported note is the score's note at (track_index, note_index).
    for note in got[:: max(1, len(got) // 50)]:
        source = expected.score.tracks[note["track_index"]].notes[note["note_index"]]
        assert (note["start_tick"], note["pitch"]) == (source.time, source.pitch)
    probabilities = torch.softmax(torch.from_numpy(expected.logits), dim=-1).numpy()
    scores = np.array([note["score"] for note in got])
    np.testing.assert_allclose(scores, probabilities[np.arange(len(got)), expected.labels], atol=1e-5)
