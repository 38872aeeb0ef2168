"""The README's snippets run verbatim, and so do the snippets of the docs pages that the README used to hold.

Every fenced block of the README is listed in `README_BLOCKS` with the test that runs it, so a new block
without a test fails `test_every_readme_block_is_run`. A ```python block runs in a fresh process and a ```bash
block as a shell script, both in a folder that holds what the recipes name: `runs/pretrain` (a tiny
pre-training checkpoint, saved as the main job saves one), the MIDI files `a.mid`, `b.mid`, `song.mid` and
`score.mid`, a folder per class `my_set/`, the POP909 songs `pop909/`, and `train/` (the scripts).
"""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import LONG_SONG, REPO, sample_files

README = REPO / "README.md"
# (heading the block sits under, its language) -> what runs it.
README_BLOCKS = {
    ("## Set-up: two commands", "bash"): ".ci/run (the install and the test suite); the main job: test_pretrain.py "
                                          "and test_resume.py run train/pretrain.py on the same sample",
    ("## A pre-trained model in the box", "python"): "test_shipped_model_recipe",
    ("## A pre-trained model in the box", "bash"): "test_shipped_model_recipe",
    ("### 1. Load a checkpoint: tokenizer and model (folder or Hub id)", "python"): "test_load_recipe",
    ("### 2. Embed pieces or notes", "python"): "test_embed_recipe",
    ("### 2. Embed pieces or notes", "bash"): "test_embed_recipe",
    ("### 3. Fine-tune on your folder", "bash"): "finetuned (fixture)",
    ("### 4. Classify, or write MIDI", "bash"): "test_classify_and_write_midi_recipe",
    ("### 4. Classify, or write MIDI", "python"): "test_classify_and_write_midi_recipe",
}


def blocks(path: Path) -> list[tuple[str, str, str]]:
    """`(heading, language, code)` of every fenced block of a markdown file, under the nearest heading above it."""
    found, heading = [], None
    for part in re.split(r"(^#{1,6} [^\n]*$|^```\w*\n.*?^```$)", path.read_text(), flags=re.M | re.S):
        if part.startswith("#"):
            heading = part.strip()
        elif part.startswith("```"):
            language, code = re.match(r"```(\w*)\n(.*)```", part, flags=re.S).groups()
            found.append((heading, language, code))
    return found


def block(path: Path, heading: str, language: str) -> str:
    (code,) = [c for h, lang, c in blocks(path) if h == heading and lang == language]
    return code


def run_python(code: str, cwd: Path) -> str:
    result = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stdout


def run_bash(code: str, cwd: Path) -> str:
    # The console scripts (accelerate, adversarial-midibert) of the environment the tests run in.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    result = subprocess.run(["bash", "-e", "-c", code], cwd=cwd, capture_output=True, text=True, timeout=900,
                            env={**os.environ, "PATH": path, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-4000:])
    return result.stdout


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """The folder the recipes run in (see the module docstring)."""
    from configuration_adversarial_midibert import AdversarialMidiBertConfig
    from modeling_adversarial_midibert import (
        AdversarialMidiBertForPreTraining,
        AdversarialMidiBertForTokenClassification,
    )
    from tokenization_octuple import OctupleTokenizer

    from adversarial_midibert.data.tasks import VelocityBinLabeler

    root = tmp_path_factory.mktemp("readme")
    checkpoint = root / "runs" / "pretrain"
    AdversarialMidiBertForPreTraining(AdversarialMidiBertConfig.from_preset("tiny")).save_pretrained(checkpoint)
    OctupleTokenizer(max_length=256).save_pretrained(checkpoint)  # the main job's windows
    pop909 = sample_files("pop909")
    shutil.copy(pop909[0], root / "a.mid")
    shutil.copy(pop909[1], root / "b.mid")
    shutil.copy(LONG_SONG, root / "song.mid")
    shutil.copy(pop909[2], root / "score.mid")
    shutil.copytree(LONG_SONG.parent, root / "pop909")
    for clip in sample_files("emopia"):  # my_set/<quadrant>/<clip>.mid
        (root / "my_set" / clip.name[:2]).mkdir(parents=True, exist_ok=True)
        shutil.copy(clip, root / "my_set" / clip.name[:2] / clip.name)
    (root / "train").symlink_to(REPO / "train", target_is_directory=True)
    # `runs/vel`, as `--task velocity` saves one (untrained: recipe 3 fine-tunes the other two for real).
    labels = list(VelocityBinLabeler().labels)
    config = AdversarialMidiBertConfig.from_preset(
        "tiny", num_labels=len(labels), id2label=dict(enumerate(labels)), label2id={l: i for i, l in enumerate(labels)},
        hidden_attributes=["velocity"], note_labeler=VelocityBinLabeler().to_dict())
    AdversarialMidiBertForTokenClassification(config).save_pretrained(root / "runs" / "vel")
    OctupleTokenizer(max_length=256).save_pretrained(root / "runs" / "vel")
    return root


@pytest.fixture(scope="module")
def finetuned(workdir):
    """Recipe 3, verbatim: `runs/my_task` (one label per piece) and `runs/mel` (one label per note)."""
    run_bash(block(README, "### 3. Fine-tune on your folder", "bash"), workdir)
    for name in ("my_task", "mel"):
        assert (workdir / "runs" / name / "finetune_results.json").is_file()
        assert (workdir / "runs" / name / "model.safetensors").is_file()
    return workdir


def test_every_readme_block_is_run():
    assert sorted({(h, lang) for h, lang, _ in blocks(README)}) == sorted(README_BLOCKS)
    assert len(blocks(README)) == len(README_BLOCKS)  # one block of each kind per heading
    assert len(README.read_text().splitlines()) < 300


def _anchors(path: Path) -> set[str]:
    """The heading anchors GitHub gives a markdown page: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#{1,6} (.*)$", path.read_text(), flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("page", [README, *sorted((REPO / "docs").glob("*.md"))], ids=lambda p: p.name)
def test_every_local_link_resolves(page):
    """Each moved section is one click from the README: its links, and the docs pages' own, lead somewhere."""
    for target, anchor in re.findall(r"\]\(([^)#:]*)(?:#([^)]*))?\)", page.read_text()):
        path = (page.parent / target).resolve() if target else page
        assert path.exists(), f"{page.name}: {target}"
        assert not anchor or anchor in _anchors(path), f"{page.name}: {target}#{anchor}"


def test_shipped_model_recipe(workdir):
    snippet = block(README, "## A pre-trained model in the box", "python")
    checks = """
import json
assert hidden.shape[-1] == model.config.hidden_size == json.load(open(folder + "/config.json"))["hidden_size"]
assert folder.endswith("pretrained/small")
print("shipped OK")
"""
    assert "shipped OK" in run_python(snippet + checks, workdir)
    run_bash(block(README, "## A pre-trained model in the box", "bash"), workdir)
    assert (workdir / "small.parquet").stat().st_size > 0


def test_load_recipe(workdir):
    snippet = block(README, "### 1. Load a checkpoint: tokenizer and model (folder or Hub id)", "python")
    # What the snippet's comments promise, checked after it ran.
    checks = """
import torch
assert enc["input_ids"].dtype == torch.int64 and enc["input_ids"].shape[-1] == 8
assert enc["attention_mask"].shape == enc["input_ids"].shape[:2]
assert sorted(set(enc["overflow_to_sample_mapping"].tolist())) == [0, 1]
assert hidden.shape[:2] == enc["input_ids"].shape[:2]
assert clf.config.id2label == {0: "bach", 1: "chopin"} and clf.classifier is not None
again = tok(midi, max_length=1024, return_tensors="pt")
n = int(enc["attention_mask"][0].sum())
assert torch.equal(again["input_ids"][0], enc["input_ids"][0, :n])
print("README snippet OK")
"""
    assert "README snippet OK" in run_python(snippet + checks, workdir)


def test_embed_recipe(workdir):
    snippet = block(README, "### 2. Embed pieces or notes", "python")
    checks = """
from tokenization_octuple import OctupleTokenizer
assert pieces.shape == (2, embedder.model.config.hidden_size)
assert notes.shape == (len(OctupleTokenizer().encode_song("a.mid")), embedder.model.config.hidden_size)
print("embed OK")
"""
    assert "embed OK" in run_python(snippet + checks, workdir)
    run_bash(block(README, "### 2. Embed pieces or notes", "bash"), workdir)
    import pyarrow.parquet as pq

    table = pq.read_table(workdir / "embeddings.parquet").to_pydict()
    assert table["file"] == ["a.mid", "b.mid"] and list(table) == ["file", "windows", "vector"]


def test_classify_and_write_midi_recipe(finetuned):
    printed = run_bash(block(README, "### 4. Classify, or write MIDI", "bash"), finetuned)
    assert printed.startswith("song.mid: ") and "windows" in printed  # label, probability, windows
    for written in ("song.melody.mid", "score.humanized.mid"):
        assert (finetuned / written).stat().st_size > 0
    snippet = block(README, "### 4. Classify, or write MIDI", "python")
    checks = """
result = classify("song.mid")
assert set(result) >= {"label", "score", "probabilities", "num_windows"}, result
first = notes("song.mid")[0]
assert {"index", "track_index", "note_index", "start_tick", "pitch", "label", "score"} <= set(first), first
print("pipelines OK")
"""
    assert "pipelines OK" in run_python(snippet + checks, finetuned)


def test_tokenizer_snippet_of_the_model_page_runs_verbatim(workdir):
    run_python(block(REPO / "docs" / "model.md", "## Octuple tokens", "python"), workdir)
