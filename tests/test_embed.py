"""Embeddings: one vector per piece and one per note, the same from `MidiPredictor.embed`, the
`midi-feature-extraction` pipeline (in a FRESH process, code from the checkpoint) and `adversarial-midibert embed`;
from pre-trained, fine-tuned and `preset:` checkpoints; and the representation benchmark's metrics."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import symusic
import torch

from conftest import FIXTURES, LONG_SONG, sample_files
from configuration_adversarial_midibert import AdversarialMidiBertConfig
from modeling_adversarial_midibert import (
    AdversarialMidiBertForPreTraining,
    AdversarialMidiBertForSequenceClassification,
)
from pipeline_adversarial_midibert import FEATURE_TASK, register_pipelines
from tokenization_octuple import OctupleTokenizer

MAX_LENGTH = 128
PIECE = str(LONG_SONG)  # 851 notes: 7 windows of 126 notes

RUNNER = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from transformers import pipeline
    from transformers.utils import logging
    logging.set_verbosity_error()
    folder, midi, out = sys.argv[1], sys.argv[2], sys.argv[3]
    embed = pipeline(%r, model=folder, trust_remote_code=True)
    piece, notes = embed(midi), embed(midi, level="note")
    np.save(f"{out}/piece.npy", piece["embedding"])
    np.save(f"{out}/notes.npy", notes["embedding"])
    inferred = pipeline(model=folder, trust_remote_code=True)
    with open(f"{out}/report.json", "w") as f:
        json.dump({"module": type(embed).__module__, "class": type(embed).__name__, "num_windows": piece["num_windows"],
                   "num_notes": piece["num_notes"], "inferred_task": inferred.task}, f)
    """
) % FEATURE_TASK


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A tiny pre-training checkpoint saved as train/pretrain.py saves one, with its pipeline registered."""
    folder = tmp_path_factory.mktemp("pretrain")
    torch.manual_seed(0)
    model = AdversarialMidiBertForPreTraining(AdversarialMidiBertConfig.from_preset("tiny")).eval()
    assert register_pipelines(model, folder) == FEATURE_TASK
    model.save_pretrained(folder)
    OctupleTokenizer(max_length=MAX_LENGTH).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def finetuned(pretrained, tmp_path_factory):
    """A sequence classifier whose backbone is the pre-trained one (classifier and pooler random)."""
    folder = tmp_path_factory.mktemp("finetuned")
    config = AdversarialMidiBertConfig.from_preset("tiny", num_labels=3)
    model = AdversarialMidiBertForSequenceClassification(config)
    missing = model.load_state_dict(AdversarialMidiBertForPreTraining.from_pretrained(pretrained).state_dict(),
                                    strict=False).missing_keys
    assert missing and all(not key.startswith("midibert.") for key in missing)
    register_pipelines(model, folder)
    model.save_pretrained(folder)
    OctupleTokenizer(max_length=MAX_LENGTH).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def predictor(pretrained):
    from adversarial_midibert.inference.predictor import MidiPredictor

    return MidiPredictor.from_pretrained(pretrained, device="cpu")


@pytest.fixture(scope="module")
def fresh_process(pretrained, tmp_path_factory):
    out = tmp_path_factory.mktemp("fresh_out")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_MODULES_CACHE=str(tmp_path_factory.mktemp("modules")), HF_HUB_OFFLINE="1",
               TRANSFORMERS_VERBOSITY="error")
    done = subprocess.run([sys.executable, "-c", RUNNER, str(pretrained), PIECE, str(out)],
                          cwd=tmp_path_factory.mktemp("cwd"), env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    return report, np.load(out / "piece.npy"), np.load(out / "notes.npy")


def test_one_vector_per_piece_and_one_per_note(predictor):
    n_notes = symusic.Score(PIECE).note_num()
    result = predictor.embed_piece(PIECE)
    assert result["num_windows"] == len(predictor.tokenizer(PIECE)["input_ids"]) > 1
    assert result["num_notes"] == n_notes
    piece = predictor.embed(PIECE)
    notes = predictor.embed(PIECE, level="note")
    hidden = predictor.model.config.hidden_size
    assert piece.shape == (hidden,) and piece.dtype == np.float32
    assert notes.shape == (n_notes, hidden) and notes.dtype == np.float32
    # Windows do not overlap here (stride 0): the notes-weighted mean of window means is the mean over notes.
    np.testing.assert_allclose(piece, notes.mean(0), atol=1e-5)
    assert np.array_equal(predictor.embed([PIECE, PIECE]), np.stack([piece, piece]))
    assert len(predictor.embed([PIECE], level="note")) == 1


def test_note_vectors_follow_the_score_and_average_overlapping_windows(pretrained):
    from adversarial_midibert.inference.predictor import MidiPredictor

    predictor = MidiPredictor.from_pretrained(pretrained, stride=30, device="cpu")
    _, song, spans = predictor._windows(PIECE)
    assert spans[1][0] == spans[0][1] - 30
    sorted_note = spans[1][0] + 7  # held by windows 0 and 1
    backbone = predictor.model
    with torch.no_grad():
        rows = [backbone(input_ids=torch.from_numpy(predictor.tokenizer.window_ids(song, s, e))[None])
                .last_hidden_state[0, 1 + sorted_note - s] for s, e in spans[:2]]
    # Row k of the output is the k-th note of the parsed score, tracks in order.
    track, index = int(song.track_index[sorted_note]), int(song.note_index[sorted_note])
    counts = [t.note_num() for t in symusic.Score(PIECE).tracks]
    row = sum(counts[:track]) + index
    notes = predictor.embed(PIECE, level="note")
    np.testing.assert_allclose(notes[row], torch.stack(rows).mean(0).numpy(), atol=1e-5)


def test_fresh_process_pipeline_gives_the_same_vectors(fresh_process, predictor):
    report, piece, notes = fresh_process
    assert report["module"].startswith("transformers_modules.") and report["module"].endswith(
        ".pipeline_adversarial_midibert")
    assert report["class"] == "MidiFeatureExtractionPipeline"
    assert report["inferred_task"] == FEATURE_TASK  # the only task a pre-training checkpoint records
    expected = predictor.embed_piece(PIECE)
    assert (report["num_windows"], report["num_notes"]) == (expected["num_windows"], expected["num_notes"])
    np.testing.assert_allclose(piece, expected["embedding"], atol=1e-6)
    np.testing.assert_allclose(notes, predictor.embed(PIECE, level="note"), atol=1e-6)


def test_cli_writes_the_predictors_vectors(pretrained, predictor, tmp_path, capsys):
    import pyarrow.parquet as pq

    from adversarial_midibert.cli import main as cli

    other = str(sample_files("emopia")[0])
    out = tmp_path / "emb.parquet"
    assert cli(["embed", str(pretrained), PIECE, str(FIXTURES / "garbage.mid"), other, "-o", str(out),
                "--batch_size", "3", "--device", "cpu"]) == 0
    assert "garbage.mid" in capsys.readouterr().err  # skipped, named, the rest written
    table = pq.read_table(out).to_pydict()
    assert list(table) == ["file", "windows", "vector"]
    assert table["file"] == [PIECE, other]
    for file, windows, vector in zip(table["file"], table["windows"], table["vector"]):
        expected = predictor.embed_piece(file)
        assert windows == expected["num_windows"]
        # --batch_size 3 pads the windows into other batches than the predictor's: equal up to float rounding.
        np.testing.assert_allclose(np.asarray(vector, dtype=np.float32), expected["embedding"], atol=1e-6)
    assert cli(["embed", str(pretrained), str(FIXTURES / "garbage.mid"), "-o", str(tmp_path / "none.parquet")]) == 1
    assert not (tmp_path / "none.parquet").exists()


def test_finetuned_checkpoint_embeds_with_its_backbone(finetuned, predictor):
    from transformers import pipeline

    from adversarial_midibert.inference.predictor import MidiPredictor

    classifier = MidiPredictor.from_pretrained(finetuned, device="cpu")
    assert classifier.is_classifier
    np.testing.assert_allclose(classifier.embed(PIECE), predictor.embed(PIECE), atol=1e-6)
    # The checkpoint records only its head's task; importing the pipeline module registered the feature task.
    embed = pipeline(FEATURE_TASK, model=str(finetuned), trust_remote_code=True)
    np.testing.assert_allclose(embed(PIECE)["embedding"], predictor.embed(PIECE), atol=1e-6)
    with pytest.raises(ValueError, match="not a fine-tuned classifier"):
        predictor.classify(PIECE)


def test_hidden_attributes_stay_hidden(tmp_path):
    from adversarial_midibert.inference.predictor import MidiPredictor

    config = AdversarialMidiBertConfig.from_preset("tiny", num_labels=6, hidden_attributes=["velocity"])
    torch.manual_seed(0)
    AdversarialMidiBertForSequenceClassification(config).save_pretrained(tmp_path)
    OctupleTokenizer(max_length=MAX_LENGTH).save_pretrained(tmp_path)
    predictor = MidiPredictor.from_pretrained(tmp_path, device="cpu")
    loud = symusic.Score(PIECE)
    for track in loud.tracks:
        arr = track.notes.numpy()
        track.notes = symusic.Note.from_numpy(arr["time"], arr["duration"], arr["pitch"], np.full_like(arr["velocity"], 127))
    assert np.array_equal(predictor.embed(PIECE, level="note"), predictor.embed(loud, level="note"))


def test_preset_gives_fixed_random_weights(predictor, tmp_path):
    from adversarial_midibert.cli import main as cli
    from adversarial_midibert.inference.predictor import MidiPredictor

    first = MidiPredictor.from_pretrained("preset:tiny", device="cpu")
    assert type(first.model).__name__ == "AdversarialMidiBertModel"
    assert first.tokenizer.max_length == 256  # the tiny preset's windows
    vector = first.embed(PIECE)
    assert np.array_equal(vector, MidiPredictor.from_pretrained("preset:tiny", device="cpu").embed(PIECE))
    assert cli(["embed", "preset:tiny", PIECE, "-o", str(tmp_path / "p.parquet")]) == 0


# ------------------------------------------------------------------------------------------ the benchmark


def test_classification_metrics_match_scikit_learn():
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

    from adversarial_midibert.evaluation.representation import classification_metrics

    rng = np.random.default_rng(0)
    y_true, y_pred = rng.integers(0, 4, 60), rng.integers(0, 5, 60)  # class 4 predicted, never true
    got = classification_metrics(y_true, y_pred, 5)
    assert got["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    assert got["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro"))
    with pytest.warns(UserWarning):
        assert got["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y_true, y_pred))


def test_bootstrap_resamples_whole_groups():
    from adversarial_midibert.evaluation.representation import bootstrap_intervals

    # Two groups, one all right and one all wrong: a resample holds 0, 1 or 2 copies of each group, so the
    # accuracy is exactly 0, 0.5 or 1 - never what resampling single items would give.
    y_true = np.zeros(10, dtype=int)
    y_pred = np.array([0] * 5 + [1] * 5)
    groups = ["a"] * 5 + ["b"] * 5
    interval = bootstrap_intervals(y_true, y_pred, groups, 2, resamples=200, seed=1)["accuracy"]
    assert interval == [0.0, 1.0]
    assert bootstrap_intervals(y_true, y_pred, groups, 2, resamples=200, seed=1) == \
        bootstrap_intervals(y_true, y_pred, groups, 2, resamples=200, seed=1)


def test_retrieval_ranks_the_own_score():
    from adversarial_midibert.evaluation.representation import retrieval_metrics

    rng = np.random.default_rng(0)
    scores = rng.normal(size=(20, 8))
    near = scores[:10] + 0.01 * rng.normal(size=(10, 8))          # performances of pieces 0..9: found first
    far = scores[[11, 10]]                                        # pieces 10, 11 queried with each other's vector
    result = retrieval_metrics(np.concatenate([near, far]), list(range(12)), scores, list(range(20)))
    assert result["recall_at_1"] == pytest.approx(10 / 12)
    assert result["median_rank"] == 1.0
    assert result["queries"] == 12 and result["candidates"] == 20
    assert result["mean_cosine_own"] > result["mean_cosine_others"]


def test_window_states_of_a_chosen_layer(predictor):
    """`layer` picks one of the backbone's hidden states: the last one is the default's, 0 is the embeddings."""
    from pipeline_adversarial_midibert import read_piece, window_states

    _, song, spans = read_piece(predictor.tokenizer, PIECE, predictor.stride)
    model, tokenizer = predictor.model, predictor.tokenizer
    default = window_states(model, tokenizer, song, spans[:3], batch_size=2)
    layers = model.config.num_hidden_layers
    for last in (-1, layers):
        chosen = window_states(model, tokenizer, song, spans[:3], batch_size=2, layer=last)
        assert all(np.array_equal(a, b) for a, b in zip(default, chosen))
    embeddings = window_states(model, tokenizer, song, spans[:3], batch_size=2, layer=0)
    assert [a.shape for a in embeddings] == [a.shape for a in default]
    assert not np.allclose(embeddings[0], default[0])


def test_run_probe_on_a_small_set(predictor, shared_data, tmp_path):
    from adversarial_midibert.evaluation.representation import run_probe

    result = run_probe(predictor, tmp_path, data_root=shared_data, tasks=["composer_pianist8"], retrieval=False,
                       max_windows=1, max_train_groups=16, bootstrap=20, plot=False, progress=False, layer=1)
    assert list(result["rows"]) == ["checkpoint", "random_weights", "note_statistics"]
    assert result["settings"]["layer"] == 1
    info = result["tasks"]["composer_pianist8"]
    assert info["train_pieces"] == 16 and info["eval_pieces"] > 0
    for row in result["rows"].values():
        metrics = row["probe"]["composer_pianist8"]
        assert 0 <= metrics["accuracy"] <= 1 and metrics["accuracy_ci"][0] <= metrics["accuracy_ci"][1]
    assert json.loads((tmp_path / "representation.json").read_text())["tasks"] == result["tasks"]
    markdown = (tmp_path / "representation.md").read_text()
    assert "| composer_pianist8 (8; 16 /" in markdown and "layer 1's output" in markdown


def test_embeddings_page_snippet_runs_verbatim(tmp_path):
    """The Python block of docs/embeddings.md (the README's "### Embeddings" block before it moved there), in a
    fresh process, on a pre-training checkpoint saved without `register_pipelines` and two real MIDI files."""
    import shutil

    from conftest import REPO
    from test_readme import block

    snippet = block(REPO / "docs" / "embeddings.md", "# Embeddings and the representation benchmark", "python")
    checkpoint = tmp_path / "runs" / "pretrain"
    AdversarialMidiBertForPreTraining(AdversarialMidiBertConfig.from_preset("tiny")).save_pretrained(checkpoint)
    OctupleTokenizer(max_length=MAX_LENGTH).save_pretrained(checkpoint)
    shutil.copy(PIECE, tmp_path / "a.mid")
    shutil.copy(sample_files("pop909")[1], tmp_path / "b.mid")
    checks = textwrap.dedent("""
        import numpy as np, symusic
        assert pieces.shape == (2, 128) and notes.shape == (symusic.Score("a.mid").note_num(), 128)
        result = embed("a.mid")
        np.testing.assert_allclose(result["embedding"], pieces[0], atol=1e-6)
        print("docs snippet OK")
    """)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules")}
    done = subprocess.run([sys.executable, "-c", snippet + checks], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "docs snippet OK" in done.stdout
