"""Model cards say what was trained (issue 14): the window length of the run's own tokenizer, Hub ids only in the
`datasets` / `base_model` metadata, no text-task pipeline tag on a MIDI classifier, no local absolute paths."""
import os

import pytest
import yaml

from adversarial_midibert.hub.model_card import write_model_card
from adversarial_midibert.pretraining.run import main
from tokenization_octuple import OctupleTokenizer


def front_matter(path):
    return yaml.safe_load(path.read_text().split("---\n")[1])


def test_pretrained_card_states_the_tokenizers_window_not_a_fixed_1024(tmp_path):
    card = write_model_card(tmp_path / "a", "pretrained", tokenizer=OctupleTokenizer(max_length=256)).read_text()
    assert "windows of at most 254 notes (256 tokens with BOS and EOS) and 256 bars" in card
    assert "A window holds at most 254 notes and 256 bars" in card and "1024" not in card
    # Without an explicit tokenizer, the one saved in the checkpoint folder is the truth.
    OctupleTokenizer(max_length=64, stride=8, max_bars=32).save_pretrained(tmp_path / "b")
    card = write_model_card(tmp_path / "b", "pretrained").read_text()
    assert "at most 62 notes (64 tokens with BOS and EOS) and 32 bars, consecutive windows sharing 8 notes" in card


def test_metadata_holds_hub_ids_only(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pop909").mkdir()
    (tmp_path / "runs" / "pretrain").mkdir(parents=True)  # a local parent looks like `owner/name` but exists
    meta = front_matter(write_model_card(tmp_path / "c", "finetuned", task="melody", datasets=["pop909", "alice/midi"],
                                         base_model="runs/pretrain", metrics={"accuracy": 0.5}))
    assert meta["datasets"] == ["alice/midi"]  # the local folder is described in the body, not linked
    assert "base_model" not in meta
    meta = front_matter(write_model_card(tmp_path / "d", "finetuned", task="emotion", base_model="alice/backbone",
                                         datasets=["emopia"], metrics={"accuracy": 0.5}))
    assert meta["base_model"] == "alice/backbone" and "datasets" not in meta


def test_classifier_cards_claim_no_text_task(tmp_path):
    for task in ("emotion", "melody"):
        meta = front_matter(write_model_card(tmp_path / task, "finetuned", task=task, metrics={"accuracy": 0.5}))
        assert "pipeline_tag" not in meta
        assert meta["model-index"][0]["results"][0]["task"]["type"] == {"emotion": "emotion-classification",
                                                                          "melody": "melody-extraction"}[task]
    assert front_matter(write_model_card(tmp_path / "p", "pretrained"))["pipeline_tag"] == "feature-extraction"


def test_card_has_no_home_folder_or_working_directory_paths(tmp_path, monkeypatch):
    home, work = tmp_path / "home" / "alice", tmp_path / "home" / "alice" / "project"
    work.mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    command = (f"accelerate launch train/pretrain.py --data {home}/midi --output_dir {work}/runs/x "
               f"--cache_dir={home}/cache --other /data{home}/keep")
    card = write_model_card(work / "runs" / "x", "pretrained", command=command,
                            settings={"data": f"{home}/midi"}).read_text()
    assert "--data ~/midi --output_dir runs/x --cache_dir=~/cache" in card and "| data | ~/midi |" in card
    assert f"/data{home}/keep" in card  # another folder that merely contains the home path is left alone
    assert str(home) not in card.replace(f"/data{home}", "")
    assert 'from_pretrained("runs/x"' in card


def test_pretrain_run_card_from_its_data_tokenizer_and_parent(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    main(["--output_dir", str(tmp_path / "run"), "--cache_dir", str(tmp_path / "cache"), "--max_songs", "3",
          "--max_length", "64", "--max_steps", "1", "--save_strategy", "no", "--eval_strategy", "no",
          "--validation_fraction", "0", "--disable_tqdm", "true"])
    path = tmp_path / "run" / "README.md"
    card, meta = path.read_text(), front_matter(path)
    assert "at most 62 notes (64 tokens with BOS and EOS)" in card and "1024 notes" not in card
    assert "datasets" not in meta and "base_model" not in meta  # local sample folder; trained from scratch
    assert "| initialised from | random weights (seed 42) |" in card and "sample_midi" in card
    assert str(tmp_path) not in card and "\naccelerate launch train/pretrain.py --output_dir run " in card  # one process
    assert os.path.expanduser("~") not in card


@pytest.mark.parametrize("kind", ["pretrained", "finetuned"])
def test_every_placeholder_is_filled(tmp_path, kind):
    card = write_model_card(tmp_path, kind, task="composer").read_text()
    assert "{" not in card.split("## Citation")[0]
