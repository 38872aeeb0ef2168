"""Hub round trips against the local test Hub (`hub_server.py`): plain files, model cards, and our model and
tokenizer pushed by one process and loaded through the Auto classes by a fresh one."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

from conftest import REPO
from hub_server import HubServer, git_blob_sha1

from adversarial_midibert.model_card import write_model_card

TOKEN = "dummy-test-token"


@pytest.fixture
def hub(tmp_path):
    with HubServer(tmp_path / "hub") as server:
        yield server


@pytest.fixture
def api(hub):
    return HfApi(endpoint=hub.endpoint, token=TOKEN)


def run_python(code: str, env: dict, timeout: int = 300) -> str:
    """Run `code` in a fresh interpreter (nothing imported, Hub settings from `env`); return its stdout."""
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env={**os.environ, **env},
                            capture_output=True, text=True, timeout=timeout, cwd=REPO)
    assert result.returncode == 0, f"subprocess failed:\n{result.stdout}\n{result.stderr[-6000:]}"
    return result.stdout


def read_front_matter(path: Path) -> dict:
    text = path.read_text()
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


# The test Hub itself, through huggingface_hub's own client

def test_upload_download_revisions_and_errors(hub, api, tmp_path):
    url = api.create_repo("alice/songs")
    assert url.repo_id == "alice/songs"
    assert api.create_repo("alice/songs", exist_ok=True).repo_id == "alice/songs"
    with pytest.raises(Exception, match="409"):
        api.create_repo("alice/songs")

    first = api.upload_file(path_or_fileobj=b"first version", path_in_repo="notes/a.txt", repo_id="alice/songs")
    second = api.upload_file(path_or_fileobj=b"second version", path_in_repo="notes/a.txt", repo_id="alice/songs")
    assert first.oid != second.oid

    cache = tmp_path / "cache"
    latest = hf_hub_download("alice/songs", "notes/a.txt", endpoint=hub.endpoint, token=TOKEN, cache_dir=cache)
    assert Path(latest).read_bytes() == b"second version"
    # An older commit stays downloadable by its id, as on the Hub.
    older = hf_hub_download("alice/songs", "notes/a.txt", revision=first.oid, endpoint=hub.endpoint,
                            token=TOKEN, cache_dir=cache)
    assert Path(older).read_bytes() == b"first version"

    assert api.list_repo_files("alice/songs") == ["notes/a.txt"]
    assert api.model_info("alice/songs").sha == second.oid
    tree = {entry.path: entry for entry in api.list_repo_tree("alice/songs", recursive=True)}
    assert tree["notes/a.txt"].size == len(b"second version")
    assert tree["notes/a.txt"].blob_id == git_blob_sha1(b"second version")

    # Re-uploading identical content is a no-op: the client compares the server's blob id with its own.
    again = api.upload_file(path_or_fileobj=b"second version", path_in_repo="notes/a.txt", repo_id="alice/songs")
    assert again.oid == second.oid
    assert len(hub.store.commits("model", "alice/songs")) == 3  # creation + two real commits

    with pytest.raises(EntryNotFoundError):
        hf_hub_download("alice/songs", "missing.txt", endpoint=hub.endpoint, token=TOKEN, cache_dir=cache)
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("alice/nothing", "a.txt", endpoint=hub.endpoint, token=TOKEN, cache_dir=cache)
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download("alice/songs", "notes/a.txt", revision="0" * 40, endpoint=hub.endpoint, token=TOKEN,
                        cache_dir=cache)


def test_test_hub_rejects_an_invalid_model_index(hub, api):
    api.create_repo("alice/card")
    bad = "---\nmodel-index:\n- name: x\n  results:\n  - task: {type: t}\n---\n# card\n"
    with pytest.raises(ValueError, match="Invalid metadata"):
        api.upload_file(path_or_fileobj=bad.encode(), path_in_repo="README.md", repo_id="alice/card")
    assert hub.files("alice/card") == []


# Model cards

def test_finetuned_card_front_matter_holds_the_real_metrics(tmp_path, hub, api):
    path = write_model_card(
        tmp_path / "run", "finetuned", repo_id="alice/emotion", task="emotion", labels=["Q1", "Q2", "Q3", "Q4"],
        datasets=["emopia"], base_model="alice/adversarial-midibert",
        metrics={"window_accuracy": 0.625, "song_accuracy": 0.75, "macro_f1": 0.5}, eval_split="test",
        settings={"epochs": 3, "learning_rate": 2e-5}, data_summary={"songs": 12, "windows": 30},
        command="accelerate launch train/finetune.py --recipe emotion")
    meta = read_front_matter(path)
    assert meta["library_name"] == "transformers"
    assert meta["license"] == "mit"
    assert meta["datasets"] == ["emopia"]
    assert meta["base_model"] == "alice/adversarial-midibert"
    assert meta["pipeline_tag"] == "text-classification"
    assert {"adversarial-midibert", "midi", "emotion"} <= set(meta["tags"])
    (result,) = meta["model-index"][0]["results"]
    assert result["dataset"] == {"name": "emopia", "type": "emopia", "split": "test"}
    assert [(m["name"], m["value"]) for m in result["metrics"]] == [
        ("Window accuracy", 0.625), ("Song accuracy", 0.75), ("Macro-F1", 0.5)]
    body = path.read_text()
    assert "| Song accuracy | 0.75 |" in body and "| learning_rate | 2e-05 |" in body
    assert "`3`: Q4" in body and 'AutoModelForSequenceClassification.from_pretrained("alice/emotion"' in body
    assert "{" not in body.split("## Citation")[0]  # every placeholder was filled
    # The Hub's metadata check accepts it.
    api.create_repo("alice/emotion")
    api.upload_file(path_or_fileobj=str(path), path_in_repo="README.md", repo_id="alice/emotion")
    assert hub.read("alice/emotion", "README.md") == path.read_bytes()


def test_pretrained_card_and_argument_checks(tmp_path):
    (tmp_path / "base").mkdir()
    path = write_model_card(tmp_path / "pre", "pretrained", base_model=str(tmp_path / "base"),
                            settings={"masking": "random", "preset": "tiny"}, metrics={"eval_loss": 3.5})
    meta = read_front_matter(path)
    assert meta["pipeline_tag"] == "feature-extraction"
    assert "base_model" not in meta and "model-index" not in meta  # a local folder is not a Hub id
    assert "plain random masked modelling" in path.read_text()
    token_card = read_front_matter(write_model_card(tmp_path / "mel", "finetuned", task="melody",
                                                    metrics={"accuracy": 0.9}))
    assert token_card["pipeline_tag"] == "token-classification"
    with pytest.raises(ValueError, match="kind"):
        write_model_card(tmp_path, "other")
    with pytest.raises(ValueError, match="task"):
        write_model_card(tmp_path, "finetuned")
