"""Hardening of the inference CLI (issue 14): a checkpoint's own code never runs unless asked for, argument
errors are one-line messages, a checkpoint without tokenizer files says which default tokenizer it gets."""
import json
import logging
import os
import subprocess
import sys
import textwrap

import pytest
from conftest import REPO, sample_files

from adversarial_midibert.cli import main as cli
from adversarial_midibert.inference.predictor import MidiPredictor
from test_inference import save_classifier

PIANO = sample_files("emopia")[2]
EVIL_MODULE = """
from pathlib import Path
Path({marker!r}).write_text("the checkpoint's code ran")
raise ImportError("evil module imported")
"""


@pytest.fixture()
def evil_checkpoint(tmp_path):
    """A valid classifier whose config.json and tokenizer_config.json name an undeclared module `evil`, which
    writes a marker file as soon as it is imported."""
    folder = save_classifier(tmp_path / "evil_ckpt", ["a", "b"])
    marker = tmp_path / "marker.txt"
    (folder / "evil.py").write_text(EVIL_MODULE.format(marker=str(marker)))
    for name in ("config.json", "tokenizer_config.json"):
        path = folder / name
        config = json.loads(path.read_text())
        config["auto_map"] = {key: "evil.Evil" for key in ("AutoConfig", "AutoModelForSequenceClassification")}
        config["auto_map"]["AutoTokenizer"] = ["evil.Evil", None]
        path.write_text(json.dumps(config))
    return folder, marker


def test_default_cli_load_never_runs_the_checkpoints_code(evil_checkpoint, capsys):
    folder, marker = evil_checkpoint
    assert cli(["classify", str(folder), str(PIANO), "--json"]) == 0
    assert not marker.exists()
    assert json.loads(capsys.readouterr().out)[0]["label"] in ("a", "b")


def test_trust_remote_code_flag_does_run_it(evil_checkpoint, tmp_path):
    # The same checkpoint with the explicit flag imports `evil`: proof that the test above can fail. In a fresh
    # process, so that transformers' copy of the module lands in a temporary modules cache.
    folder, marker = evil_checkpoint
    code = f"""
        from adversarial_midibert.cli import main
        raise SystemExit(main(["classify", {str(folder)!r}, {str(PIANO)!r}, "--trust_remote_code"]))
    """
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules"), "HF_HUB_OFFLINE": "1"}
    subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, cwd=REPO, capture_output=True,
                   timeout=300)
    assert marker.exists()


def test_a_foreign_model_type_is_refused_without_trust_remote_code(tmp_path):
    folder = save_classifier(tmp_path / "other", ["a", "b"])
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "bert"}))
    with pytest.raises(ValueError, match="not an Adversarial-MidiBERT checkpoint.*--trust_remote_code"):
        MidiPredictor.from_pretrained(folder)


@pytest.mark.parametrize("flag, value, expected", [("--batch_size", "0", "must be at least 1"),
                                                   ("--batch_size", "x", "expected an integer"),
                                                   ("--stride", "-1", "must be at least 0")])
def test_cli_refuses_bad_counts_with_one_line(tmp_path, capsys, flag, value, expected):
    with pytest.raises(SystemExit) as exit_info:
        cli(["classify", str(tmp_path), str(PIANO), flag, value])
    assert exit_info.value.code == 2
    last_line = capsys.readouterr().err.strip().splitlines()[-1]
    assert flag in last_line and expected in last_line


def test_checkpoint_without_tokenizer_files_warns_naming_the_default(tmp_path, caplog):
    folder = save_classifier(tmp_path / "no_tok", ["a", "b"])
    for name in ("octuple_tokenizer.json", "tokenizer_config.json", "tokenization_octuple.py"):
        (folder / name).unlink()
    with caplog.at_level(logging.WARNING, logger="adversarial_midibert.data.compatibility"):
        predictor = MidiPredictor.from_pretrained(folder)
    assert predictor.tokenizer.max_length == 1024
    (message,) = [r.getMessage() for r in caplog.records if "no tokenizer files" in r.getMessage()]
    assert "max_length=1024" in message and "stride=0" in message and "max_bars=256" in message
