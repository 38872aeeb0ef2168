"""Checkpoints load through every Auto class with `trust_remote_code=True` in a FRESH process, from a folder
copied away from the repository, and give the saving process's outputs; a pre-training checkpoint loads into
both classification heads with only the new head initialised."""
import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import load_file

from configuration_adversarial_midibert import AdversarialMidiBertConfig
from modeling_adversarial_midibert import (
    AdversarialMidiBertForPreTraining,
    AdversarialMidiBertForSequenceClassification,
    AdversarialMidiBertForTokenClassification,
)

AUTO_MODELS = ["AutoModel", "AutoModelForPreTraining", "AutoModelForSequenceClassification",
               "AutoModelForTokenClassification"]
HEADS = ["pretrain", "sequence", "token"]

# Runs in the fresh process: load every Auto class from every folder, record outputs, classes and load reports.
LOADER = textwrap.dedent(
    """
    import json, sys, torch, transformers
    from transformers.utils import logging
    logging.set_verbosity_error()
    root = sys.argv[1]
    inputs = torch.load(f"{root}/inputs.pt")
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    results, report = {}, {}
    for folder in %r:
        for name in %r:
            model, info = getattr(transformers, name).from_pretrained(
                f"{root}/{folder}", trust_remote_code=True, output_loading_info=True)
            with torch.no_grad():
                if name == "AutoModel":
                    value = model(input_ids=ids, attention_mask=mask).last_hidden_state
                elif name == "AutoModelForPreTraining":
                    value = model.masking_probabilities(ids, mask)
                else:
                    value = model(input_ids=ids, attention_mask=mask).logits
            results[f"{folder}/{name}"] = value
            report[f"{folder}/{name}"] = {
                "module": type(model).__module__, "class": type(model).__name__, "training": model.training,
                "missing": sorted(info["missing_keys"]), "unexpected": sorted(info["unexpected_keys"]),
                "mismatched": sorted(str(k) for k in info["mismatched_keys"])}
    tokenizer = transformers.AutoTokenizer.from_pretrained(f"{root}/pretrain", trust_remote_code=True)
    report["tokenizer"] = {"module": type(tokenizer).__module__, "class": type(tokenizer).__name__}
    torch.save(results, f"{root}/results.pt")
    with open(f"{root}/report.json", "w") as f:
        json.dump(report, f)
    """
) % (HEADS, AUTO_MODELS)


def tiny_config(**overrides):
    fields = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                  attribute_embedding_size=8, masker_hidden_size=16, max_position_embeddings=64,
                  pooling_attention_size=8, classifier_hidden_size=16, num_labels=3)
    return AdversarialMidiBertConfig.from_preset("tiny", **{**fields, **overrides})


def head_keys(state_dict, prefixes):
    return sorted(k for k in state_dict if k.startswith(prefixes))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A pre-training checkpoint and the two classification heads built from it, saved by this process."""
    root = tmp_path_factory.mktemp("checkpoints")
    torch.manual_seed(0)
    pretrain = AdversarialMidiBertForPreTraining(tiny_config()).eval()
    pretrain.save_pretrained(root / "pretrain")
    tokenization = pytest.importorskip("tokenization_octuple")
    tokenization.OctupleTokenizer().save_pretrained(root / "pretrain")
    heads, reports = {}, {}
    for folder, cls in (("sequence", AdversarialMidiBertForSequenceClassification),
                        ("token", AdversarialMidiBertForTokenClassification)):
        model, info = cls.from_pretrained(root / "pretrain", output_loading_info=True)
        model.save_pretrained(root / folder)
        heads[folder], reports[folder] = model.eval(), info
    generator = torch.Generator().manual_seed(1)
    ids = torch.stack([torch.randint(0, n, (3, 12), generator=generator) for n in pretrain.config.attribute_vocab_sizes], -1)
    mask = torch.ones(3, 12, dtype=torch.long)
    mask[1, 9:] = 0
    mask[2, 4:] = 0
    ids[~mask.bool()] = torch.tensor(pretrain.config.pad_token_ids)
    torch.save({"input_ids": ids, "attention_mask": mask}, root / "inputs.pt")
    with torch.no_grad():
        expected = {"AutoModel": pretrain.midibert(input_ids=ids, attention_mask=mask).last_hidden_state,
                    "AutoModelForPreTraining": pretrain.masking_probabilities(ids, mask),
                    "sequence": heads["sequence"](input_ids=ids, attention_mask=mask).logits,
                    "token": heads["token"](input_ids=ids, attention_mask=mask).logits}
    return root, expected, reports


@pytest.fixture(scope="module")
def fresh_process(saved, tmp_path_factory):
    root = saved[0]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    # A private dynamic-modules cache proves the code came from the checkpoint folder, not a stale copy.
    env.update(HF_MODULES_CACHE=str(tmp_path_factory.mktemp("modules")), HF_HUB_OFFLINE="1",
               TRANSFORMERS_VERBOSITY="error")
    elsewhere = tmp_path_factory.mktemp("cwd")
    done = subprocess.run([sys.executable, "-c", LOADER, str(root)], cwd=elsewhere, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return torch.load(root / "results.pt"), json.loads((root / "report.json").read_text())


def test_saved_folder_holds_safetensors_code_and_full_auto_map(saved):
    root = saved[0]
    for folder in HEADS:
        files = set(os.listdir(root / folder))
        assert {"model.safetensors", "config.json", "modeling_adversarial_midibert.py",
                "configuration_adversarial_midibert.py"} <= files, files
        assert not any(name.endswith(".bin") for name in files)
        auto_map = json.loads((root / folder / "config.json").read_text())["auto_map"]
        assert set(AUTO_MODELS) | {"AutoConfig", "AutoTokenizer"} <= set(auto_map)


def test_pretraining_checkpoint_loads_into_classification_heads_with_only_the_new_head_missing(saved):
    root, _, reports = saved
    state = load_file(root / "pretrain" / "model.safetensors")
    assert head_keys(state, ("recoverer.", "masker.")) and not head_keys(state, ("classifier.", "pooler.", "token_"))
    sequence = load_file(root / "sequence" / "model.safetensors")
    assert sorted(reports["sequence"]["missing_keys"]) == head_keys(sequence, ("classifier.", "pooler."))
    token = load_file(root / "token" / "model.safetensors")
    assert sorted(reports["token"]["missing_keys"]) == head_keys(token, ("token_classifier.",))
    for report in reports.values():
        assert not report["unexpected_keys"] and not report["mismatched_keys"]
    # the backbone arrived intact
    for key, value in state.items():
        if key.startswith("midibert."):
            assert torch.equal(sequence[key], value) and torch.equal(token[key], value), key


def test_every_auto_class_loads_from_the_checkpoint_code_in_a_fresh_process(fresh_process):
    _, report = fresh_process
    expected_class = {"AutoModel": "AdversarialMidiBertModel",
                      "AutoModelForPreTraining": "AdversarialMidiBertForPreTraining",
                      "AutoModelForSequenceClassification": "AdversarialMidiBertForSequenceClassification",
                      "AutoModelForTokenClassification": "AdversarialMidiBertForTokenClassification"}
    for folder in HEADS:
        for name in AUTO_MODELS:
            entry = report[f"{folder}/{name}"]
            assert entry["class"] == expected_class[name]
            assert entry["module"].startswith("transformers_modules."), entry["module"]
            assert not entry["training"]
            assert not entry["unexpected"] and not entry["mismatched"], (folder, name, entry)
    assert report["tokenizer"]["class"] == "OctupleTokenizer"
    assert report["tokenizer"]["module"].startswith("transformers_modules.")


def test_fresh_process_outputs_equal_the_saving_process(fresh_process, saved):
    results, report = fresh_process
    expected = saved[1]
    for folder in HEADS:  # every folder holds the same backbone
        assert torch.allclose(results[f"{folder}/AutoModel"], expected["AutoModel"], atol=1e-6), folder
    assert torch.allclose(results["pretrain/AutoModelForPreTraining"], expected["AutoModelForPreTraining"], atol=1e-6)
    assert torch.allclose(results["sequence/AutoModelForSequenceClassification"], expected["sequence"], atol=1e-6)
    assert torch.allclose(results["token/AutoModelForTokenClassification"], expected["token"], atol=1e-6)
    # a pre-training folder loads into a head with only that head new
    assert report["pretrain/AutoModelForSequenceClassification"]["missing"] == sorted(
        k for k in load_file(saved[0] / "sequence" / "model.safetensors") if k.startswith(("classifier.", "pooler.")))
    assert report["pretrain/AutoModelForTokenClassification"]["missing"] == sorted(
        k for k in load_file(saved[0] / "token" / "model.safetensors") if k.startswith("token_classifier."))
    # classification heads never swap weights: each is new when loaded from the other's folder
    assert all(k.startswith("token_classifier.") for k in report["sequence/AutoModelForTokenClassification"]["missing"])
    assert all(k.startswith(("classifier.", "pooler.")) for k in report["token/AutoModelForSequenceClassification"]["missing"])
    # and a classification folder into the pre-training class with only its heads new
    assert all(k.startswith(("recoverer.", "masker.")) for k in report["sequence/AutoModelForPreTraining"]["missing"])
