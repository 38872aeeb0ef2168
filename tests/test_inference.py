"""Inference: song-level classification over all windows, per-note logits averaged over overlapping windows,
melody / velocity MIDI output whose notes equal the input's, the CLI, and loading from a Hub id."""
import json
from collections import Counter

import numpy as np
import pytest
import symusic
import torch
from conftest import FIXTURES, sample_files

from adversarial_midibert.cli import main as cli
from adversarial_midibert.inference.predictor import MidiPredictor
from adversarial_midibert.data.tasks import TrackNameLabeler, VelocityBinLabeler
from configuration_adversarial_midibert import AdversarialMidiBertConfig
from modeling_adversarial_midibert import (
    AdversarialMidiBertForSequenceClassification,
    AdversarialMidiBertForTokenClassification,
)
from tokenization_octuple import OctupleTokenizer

MAX_LENGTH = 64
POP909 = sample_files("pop909")[0]
PIANO = sample_files("emopia")[2]  # one unnamed piano track, 475 notes: 8 windows of 62 notes


def save_classifier(path, labels, token=False, labeler=None, hidden=()):
    """A tiny, untrained classifier saved like finetune.py saves one (labels and labeler in its config)."""
    config = AdversarialMidiBertConfig.from_preset(
        "tiny", num_labels=len(labels), id2label=dict(enumerate(labels)), label2id={l: i for i, l in enumerate(labels)},
        hidden_attributes=list(hidden), note_labeler=labeler.to_dict() if labeler else None)
    torch.manual_seed(0)
    model = (AdversarialMidiBertForTokenClassification if token else AdversarialMidiBertForSequenceClassification)(config)
    with torch.no_grad():  # spread the untrained logits so that several labels actually get predicted
        classifier = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
        classifier.weight.mul_(50)
    model.save_pretrained(path)
    OctupleTokenizer(max_length=MAX_LENGTH).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def composer_dir(tmp_path_factory):
    return save_classifier(tmp_path_factory.mktemp("composer"), ["bach", "chopin", "debussy"])


@pytest.fixture(scope="module")
def melody_dir(tmp_path_factory):
    labeler = TrackNameLabeler.pop909()
    return save_classifier(tmp_path_factory.mktemp("melody"), list(labeler.labels), token=True, labeler=labeler)


@pytest.fixture(scope="module")
def velocity_dir(tmp_path_factory):
    labeler = VelocityBinLabeler()
    return save_classifier(tmp_path_factory.mktemp("velocity"), list(labeler.labels), token=True, labeler=labeler,
                           hidden=["velocity"])


def note_tuples(score, with_velocity=True):
    return Counter((n.time, n.duration, n.pitch) + ((n.velocity,) if with_velocity else ())
                   for track in score.tracks for n in track.notes)


def test_classify_covers_every_window_and_averages_logits(composer_dir):
    predictor = MidiPredictor.from_pretrained(composer_dir)
    result = predictor.classify(str(PIANO))
    enc = predictor.tokenizer(str(PIANO), max_length=MAX_LENGTH, padding=True, return_tensors="pt")
    assert result["num_windows"] == len(enc["input_ids"]) > 1
    with torch.no_grad():
        logits = predictor.model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits
    expected = logits.mean(0).softmax(-1)
    assert list(result["probabilities"]) == ["bach", "chopin", "debussy"]
    assert np.allclose(list(result["probabilities"].values()), expected.numpy(), atol=1e-5)
    assert result["label"] == ["bach", "chopin", "debussy"][int(expected.argmax())]
    assert predictor.classify(PIANO.read_bytes()) == result  # bytes in, same answer; evaluation is deterministic


def test_note_logits_are_the_mean_over_overlapping_windows(melody_dir):
    predictor = MidiPredictor.from_pretrained(melody_dir, stride=20)
    pred = predictor.note_predictions(POP909)
    spans = predictor.tokenizer.window_spans(pred.song, stride=20)
    assert spans[1][0] == spans[0][1] - 20  # windows overlap
    note = spans[1][0] + 5  # a note seen by windows 0 and 1
    with torch.no_grad():
        per_window = []
        for start, end in spans[:2]:
            ids = torch.from_numpy(predictor.tokenizer.window_ids(pred.song, start, end))[None]
            per_window.append(predictor.model(input_ids=ids).logits[0, 1 + note - start])
    assert np.allclose(pred.logits[note], torch.stack(per_window).mean(0).numpy(), atol=1e-5)
    assert pred.labels.shape == (len(pred.song),)


def test_melody_output_keeps_every_note_and_groups_by_prediction(melody_dir, tmp_path):
    predictor = MidiPredictor.from_pretrained(melody_dir)
    out = predictor.extract_melody(POP909, tmp_path / "out.mid")
    source = symusic.Score(str(POP909))
    assert note_tuples(out) == note_tuples(source)
    assert note_tuples(symusic.Score(str(tmp_path / "out.mid"))) == note_tuples(source)
    pred = predictor.note_predictions(POP909)
    label_of = {}
    for t, i, label in zip(pred.song.track_index, pred.song.note_index, pred.labels):
        n = source.tracks[t].notes[int(i)]
        label_of.setdefault((n.time, n.duration, n.pitch, n.velocity), set()).add(predictor.id2label[int(label)])
    predicted = set()
    for track in out.tracks:
        label = track.name.split(":")[0]
        predicted.add(label)
        assert all(label in label_of[(n.time, n.duration, n.pitch, n.velocity)] for n in track.notes)
    assert len(predicted) >= 2


def test_melody_on_one_piano_track_gives_one_track_per_label_and_keeps_drums(melody_dir, tmp_path):
    score = symusic.Score(str(PIANO))
    drums = symusic.Score(str(FIXTURES / "drums_only.mid"))
    drum_tracks = [t for t in drums.tracks if t.is_drum]
    score.tracks.extend(drum_tracks)
    out = MidiPredictor.from_pretrained(melody_dir).extract_melody(score, tmp_path / "out.mid")
    melodic = [t for t in out.tracks if not t.is_drum]
    assert [t.name for t in melodic] == [l for l in ("melody", "bridge", "accompaniment") if l in {t.name for t in melodic}]
    assert [t.notes.numpy()["time"].tolist() for t in out.tracks if t.is_drum] == \
        [t.notes.numpy()["time"].tolist() for t in drum_tracks]
    assert note_tuples(out) == note_tuples(score)


def test_velocity_output_changes_only_velocities(velocity_dir, tmp_path):
    predictor = MidiPredictor.from_pretrained(velocity_dir)
    out = predictor.predict_velocities(POP909, tmp_path / "vel.mid")
    source = symusic.Score(str(POP909))
    written = symusic.Score(str(tmp_path / "vel.mid"))
    representative = set(VelocityBinLabeler().representative_velocities())
    for result in (out, written):
        assert [t.name for t in result.tracks] == [t.name for t in source.tracks]
        for a, b in zip(source.tracks, result.tracks):
            x, y = a.notes.numpy(), b.notes.numpy()
            for key in ("time", "duration", "pitch"):
                assert np.array_equal(x[key], y[key])
            assert set(y["velocity"].tolist()) <= representative
    assert len({int(v) for t in out.tracks for v in t.notes.numpy()["velocity"]}) >= 2


def test_velocity_predictions_ignore_input_velocities(velocity_dir):
    # The velocity attribute is hidden from the model: overwriting the input velocities changes nothing.
    predictor = MidiPredictor.from_pretrained(velocity_dir)
    loud = symusic.Score(str(POP909))
    for track in loud.tracks:
        arr = track.notes.numpy()
        track.notes = symusic.Note.from_numpy(arr["time"], arr["duration"], arr["pitch"], np.full_like(arr["velocity"], 127))
    assert np.array_equal(predictor.note_predictions(POP909).logits, predictor.note_predictions(loud).logits)


def test_wrong_task_is_refused(composer_dir, melody_dir):
    with pytest.raises(ValueError, match="labels whole pieces"):
        MidiPredictor.from_pretrained(composer_dir).note_predictions(POP909)
    with pytest.raises(ValueError, match="velocity bins"):
        MidiPredictor.from_pretrained(melody_dir).predict_velocities(POP909)
    with pytest.raises(ValueError, match="labels notes"):
        MidiPredictor.from_pretrained(melody_dir).classify(POP909)


def test_cli_classify_melody_velocity(composer_dir, melody_dir, velocity_dir, tmp_path, capsys):
    assert cli(["classify", str(composer_dir), str(PIANO), str(POP909), "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [r["file"] for r in results] == [str(PIANO), str(POP909)]
    assert results[0] == {"file": str(PIANO), **MidiPredictor.from_pretrained(composer_dir).classify(str(PIANO))}
    assert cli(["melody", str(melody_dir), str(POP909), "-o", str(tmp_path / "m.mid")]) == 0
    assert note_tuples(symusic.Score(str(tmp_path / "m.mid"))) == note_tuples(symusic.Score(str(POP909)))
    assert cli(["velocity", str(velocity_dir), str(POP909), "-o", str(tmp_path / "v.mid")]) == 0
    assert note_tuples(symusic.Score(str(tmp_path / "v.mid")), False) == note_tuples(symusic.Score(str(POP909)), False)
    capsys.readouterr()
    assert cli(["classify", str(composer_dir), str(FIXTURES / "garbage.mid")]) == 1
    assert "garbage.mid" in capsys.readouterr().err


def test_classify_from_a_hub_id(composer_dir, tmp_path):
    from huggingface_hub import HfApi
    from hub_server import HubServer
    from test_hub_push import TOKEN, run_python

    with HubServer(tmp_path / "hub") as hub:
        api = HfApi(endpoint=hub.endpoint, token=TOKEN)
        repo = api.create_repo("test-user/composer").repo_id
        api.upload_folder(repo_id=repo, folder_path=str(composer_dir))
        out = run_python(f"""
            from adversarial_midibert.cli import main
            raise SystemExit(main(["classify", "{repo}", "{PIANO}", "--json"]))
        """, hub.client_env(tmp_path / "hf_home"))
    result = json.loads(out[out.index("["):])[0]
    assert result["probabilities"] == pytest.approx(
        MidiPredictor.from_pretrained(composer_dir).classify(str(PIANO))["probabilities"], abs=1e-6)
