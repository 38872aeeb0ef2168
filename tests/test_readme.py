"""The README's Python snippets run verbatim against a checkpoint this package saved."""
import re
import shutil
import subprocess
import sys

import pytest

from conftest import REPO, sample_files


def python_blocks(heading: str) -> list[str]:
    """The ```python blocks of the README section that starts with `heading`."""
    text = (REPO / "README.md").read_text()
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    return re.findall(r"```python\n(.*?)```", text[start:end if end != -1 else None], flags=re.S)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A folder holding `runs/pretrain` (a tiny pre-training checkpoint) and two real MIDI files a.mid, b.mid."""
    from configuration_adversarial_midibert import AdversarialMidiBertConfig
    from modeling_adversarial_midibert import AdversarialMidiBertForPreTraining
    from tokenization_octuple import OctupleTokenizer

    root = tmp_path_factory.mktemp("readme")
    checkpoint = root / "runs" / "pretrain"
    AdversarialMidiBertForPreTraining(AdversarialMidiBertConfig.from_preset("tiny")).save_pretrained(checkpoint)
    OctupleTokenizer().save_pretrained(checkpoint)
    pop909 = sample_files("pop909")
    shutil.copy(pop909[0], root / "a.mid")
    shutil.copy(pop909[1], root / "b.mid")
    return root


def test_checkpoint_snippet_runs_verbatim_in_a_fresh_process(workdir):
    snippet = python_blocks("## Tokenizer and model from a checkpoint")[0]
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
    result = subprocess.run([sys.executable, "-c", snippet + checks], cwd=workdir, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "README snippet OK" in result.stdout


def test_tokenizer_snippet_runs_verbatim(workdir):
    (snippet,) = python_blocks("### Octuple tokens")
    result = subprocess.run([sys.executable, "-c", snippet], cwd=workdir, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
