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

from adversarial_midibert.hub.model_card import write_model_card

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
    assert "datasets" not in meta  # "emopia" names the data but is no Hub dataset id (owner/name)
    assert meta["base_model"] == "alice/adversarial-midibert"
    assert "pipeline_tag" not in meta  # no Hub task covers symbolic music; a text tag would be false
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
    assert "pipeline_tag" not in token_card
    assert token_card["model-index"][0]["results"][0]["task"]["type"] == "melody-extraction"
    with pytest.raises(ValueError, match="kind"):
        write_model_card(tmp_path, "other")
    with pytest.raises(ValueError, match="task"):
        write_model_card(tmp_path, "finetuned")


# Our model and tokenizer: pushed by one process, loaded through the Auto classes by a fresh one

SAMPLE = REPO / "adversarial_midibert" / "sample_midi" / "pop909" / "098.mid"

LOAD_FROM_HUB = """
    import sys, torch
    from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer
    repo, out = sys.argv[1], sys.argv[2]
    tok = AutoTokenizer.from_pretrained(repo, trust_remote_code=True)
    model = AutoModel.from_pretrained(repo, trust_remote_code=True).eval()
    enc = tok([{sample!r}], max_length=64, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
    clf = AutoModelForSequenceClassification.from_pretrained(repo, trust_remote_code=True, num_labels=3)
    torch.save({{"hidden": hidden, "input_ids": enc["input_ids"], "modules": [type(tok).__module__,
                type(model).__module__, type(clf).__module__], "auto_map": dict(model.config.auto_map)}}, out)
""".format(sample=str(SAMPLE))


def load_in_fresh_process(repo_id: str, env: dict, out: Path) -> dict:
    code = textwrap.dedent(LOAD_FROM_HUB)
    result = subprocess.run([sys.executable, "-c", code, repo_id, str(out)], env={**os.environ, **env},
                            capture_output=True, text=True, timeout=300, cwd=out.parent)
    assert result.returncode == 0, result.stderr[-6000:]
    import torch

    return torch.load(out, weights_only=False)


def assert_complete_repo(hub, repo_id: str) -> None:
    files = set(hub.files(repo_id))
    assert {"config.json", "model.safetensors", "configuration_adversarial_midibert.py",
            "modeling_adversarial_midibert.py", "tokenization_octuple.py", "tokenizer_config.json",
            "octuple_tokenizer.json", "README.md"} <= files, files
    config = json.loads(hub.read(repo_id, "config.json"))
    assert set(config["auto_map"]) >= {"AutoConfig", "AutoModel", "AutoModelForPreTraining",
                                       "AutoModelForSequenceClassification", "AutoModelForTokenClassification"}


def test_model_and_tokenizer_push_then_fresh_process_load(hub, tmp_path):
    env = hub.client_env(tmp_path / "hf_push")
    run_python(f"""
        import torch
        from configuration_adversarial_midibert import AdversarialMidiBertConfig
        from modeling_adversarial_midibert import AdversarialMidiBertForPreTraining
        from tokenization_octuple import OctupleTokenizer
        from adversarial_midibert.hub.model_card import write_model_card
        torch.manual_seed(0)
        model = AdversarialMidiBertForPreTraining(AdversarialMidiBertConfig.from_preset("tiny")).eval()
        tok = OctupleTokenizer(max_length=64)
        model.push_to_hub("alice/tiny")
        tok.push_to_hub("alice/tiny")
        card = write_model_card({str(tmp_path / "card")!r}, "pretrained", repo_id="alice/tiny",
                                settings={{"preset": "tiny"}})
        from huggingface_hub import HfApi
        HfApi().upload_file(path_or_fileobj=str(card), path_in_repo="README.md", repo_id="alice/tiny")
        enc = tok([{str(SAMPLE)!r}], max_length=64, padding=True, return_tensors="pt")
        with torch.no_grad():
            hidden = model.midibert(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
        torch.save(hidden, {str(tmp_path / "reference.pt")!r})
    """, env)
    assert_complete_repo(hub, "alice/tiny")

    loaded = load_in_fresh_process("alice/tiny", hub.client_env(tmp_path / "hf_load"), tmp_path / "loaded.pt")
    import torch

    reference = torch.load(tmp_path / "reference.pt")
    assert loaded["hidden"].shape == reference.shape and loaded["hidden"].shape[1] == 64
    torch.testing.assert_close(loaded["hidden"], reference, rtol=0, atol=1e-6)
    # The classes came from the repo's own code (transformers' remote-code modules), not from this checkout.
    assert all(module.startswith("transformers_modules.") for module in loaded["modules"]), loaded["modules"]
    head = hub.store.resolve("model", "alice/tiny", "main")["oid"]  # transformers pins the commit, then downloads
    assert ("GET", f"/alice/tiny/resolve/{head}/model.safetensors") in hub.requests


def test_pretrain_push_to_hub_then_fresh_process_load(hub, tmp_path):
    """Issue 4's acceptance: `pretrain.py --push_to_hub` fills a Hub repo that a fresh process loads."""
    env = hub.client_env(tmp_path / "hf_push")
    out = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, str(REPO / "train" / "pretrain.py"), "--preset", "tiny", "--max_steps", "2",
         "--output_dir", str(out), "--push_to_hub", "--hub_model_id", "alice/pretrained", "--report_to", "none",
         "--save_strategy", "steps", "--save_steps", "1", "--hub_strategy", "every_save", "--hub_always_push",
         "--per_device_train_batch_size", "4", "--max_length", "128"],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-6000:]
    assert_complete_repo(hub, "alice/pretrained")
    # Every revision, mid-training checkpoint pushes included, carries the code its auto_map names.
    commits = hub.store.commits("model", "alice/pretrained")[1:]  # after the repo's empty initial commit
    assert len(commits) >= 3  # two checkpoint pushes and the final one
    for commit in commits:
        assert {"modeling_adversarial_midibert.py", "configuration_adversarial_midibert.py"} <= set(
            hub.files("alice/pretrained", revision=commit["oid"])), commit
    card = hub.read("alice/pretrained", "README.md").decode()
    meta = yaml.safe_load(card.split("---\n")[1])
    assert meta["library_name"] == "transformers" and meta["pipeline_tag"] == "feature-extraction"
    assert "| optimizer steps | 2 |" in card and "--push_to_hub" in card  # the run's real settings

    loaded = load_in_fresh_process("alice/pretrained", hub.client_env(tmp_path / "hf_load"), tmp_path / "l.pt")
    import torch
    from transformers import AutoModel

    local = AutoModel.from_pretrained(out, trust_remote_code=True).eval()
    with torch.no_grad():
        expected = local(input_ids=loaded["input_ids"], attention_mask=(loaded["input_ids"][..., 0] < 256)
                         | (loaded["input_ids"][..., 0] == 258) | (loaded["input_ids"][..., 0] == 259)).last_hidden_state
    torch.testing.assert_close(loaded["hidden"], expected, rtol=0, atol=1e-5)
