"""The converter of the authors' checkpoints (adversarial_midibert/hub/convert_authors.py).

Their code is not installable here, so this file writes out what their files hold: the key names and shapes of
their `MidiBert` / `MidiBertLM` (RS2002/Adversarial-MidiBERT `model.py`, built by `pretrain.py` with
`BertConfig(max_position_embeddings=1024, position_embedding_type="relative_key_query", hidden_size=768)` on
transformers 4.x), their PianoBART dictionary (`make_dict.py`: regular ids, then PAD, MASK, SOS, EOS, CLS, SEP),
and their forward pass, with transformers 4.x `BertSelfAttention`'s `relative_key_query` scores re-implemented
with the same gather-and-einsum as 4.x. Random weights in exactly that layout are converted, loaded through the
Auto classes, and compared tensor by tensor and output by output.
"""
import json
import math
import os
import pickle
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from huggingface_hub import HfApi
from safetensors.torch import save_file
from transformers import (AutoModel, AutoModelForPreTraining, AutoModelForSequenceClassification,
                          AutoModelForTokenClassification, AutoTokenizer)

from conftest import REPO
from hub_server import HubServer

from configuration_adversarial_midibert import AdversarialMidiBertConfig
from modeling_adversarial_midibert import AdversarialMidiBertForPreTraining

from adversarial_midibert.hub.convert_authors import (ConversionError, check_authors_dictionary,
                                                  convert_authors_checkpoint, main, plan_conversion)

REGULAR = (256, 128, 129, 256, 128, 32, 254, 49)
THEIR_SPECIALS = 6  # PAD, MASK, SOS, EOS, CLS, SEP
TINY = dict(hidden=32, layers=2, heads=4, intermediate=48, max_positions=40, width=8, text_vocab=50)
PAPER = dict(hidden=768, layers=12, heads=12, intermediate=3072, max_positions=1024, width=256, text_vocab=30522)
# Their keys that the converter must skip (and say so), per backbone prefix.
SKIPPED = ("bert.embeddings.word_embeddings.weight", "bert.embeddings.position_embeddings.weight",
           "bert.embeddings.token_type_embeddings.weight", "bert.pooler.dense.weight", "bert.pooler.dense.bias",
           "attention_linear.0.weight", "attention_linear.0.bias", "attention_linear.2.weight",
           "attention_linear.2.bias", "attention_linear.4.weight", "attention_linear.4.bias")


def authors_key_shapes(hidden, layers, heads, intermediate, max_positions, width, text_vocab, *,
                       backbone="", mlm=None, relative=True):
    """Key -> shape of their `MidiBert.state_dict()` (under `backbone`) and `MLM.state_dict()` (under `mlm`)."""
    shapes = {}
    for j, n in enumerate(REGULAR):  # word_emb[j] = Embeddings(n_tokens[j], 256): the `lut` table
        shapes[f"word_emb.{j}.lut.weight"] = (n + THEIR_SPECIALS, width)
    shapes["in_linear.weight"] = (hidden, 8 * width)
    shapes["in_linear.bias"] = (hidden,)
    shapes.update({  # BertModel(bertConfig) = self.bert
        "bert.embeddings.word_embeddings.weight": (text_vocab, hidden),
        "bert.embeddings.position_embeddings.weight": (max_positions, hidden),
        "bert.embeddings.token_type_embeddings.weight": (2, hidden),
        "bert.embeddings.LayerNorm.weight": (hidden,), "bert.embeddings.LayerNorm.bias": (hidden,),
    })
    for i in range(layers):
        p = f"bert.encoder.layer.{i}."
        for name in ("query", "key", "value"):
            shapes[p + f"attention.self.{name}.weight"] = (hidden, hidden)
            shapes[p + f"attention.self.{name}.bias"] = (hidden,)
        if relative:
            shapes[p + "attention.self.distance_embedding.weight"] = (2 * max_positions - 1, hidden // heads)
        shapes[p + "attention.output.dense.weight"] = (hidden, hidden)
        shapes[p + "attention.output.dense.bias"] = (hidden,)
        shapes[p + "attention.output.LayerNorm.weight"] = (hidden,)
        shapes[p + "attention.output.LayerNorm.bias"] = (hidden,)
        shapes[p + "intermediate.dense.weight"] = (intermediate, hidden)
        shapes[p + "intermediate.dense.bias"] = (intermediate,)
        shapes[p + "output.dense.weight"] = (hidden, intermediate)
        shapes[p + "output.dense.bias"] = (hidden,)
        shapes[p + "output.LayerNorm.weight"] = (hidden,)
        shapes[p + "output.LayerNorm.bias"] = (hidden,)
    shapes["bert.pooler.dense.weight"] = (hidden, hidden)
    shapes["bert.pooler.dense.bias"] = (hidden,)
    e = 8 * width  # attention_linear: Linear(e, e/2), ReLU, Linear(e/2, e/2), ReLU, Linear(e/2, e), Sigmoid
    shapes.update({"attention_linear.0.weight": (e // 2, e), "attention_linear.0.bias": (e // 2,),
                   "attention_linear.2.weight": (e // 2, e // 2), "attention_linear.2.bias": (e // 2,),
                   "attention_linear.4.weight": (e, e // 2), "attention_linear.4.bias": (e,)})
    shapes = {backbone + key: shape for key, shape in shapes.items()}
    if mlm is not None:
        for j, n in enumerate(REGULAR):  # MLM.proj[j] = Linear(hidden, n_tokens[j])
            shapes[f"{mlm}proj.{j}.weight"] = (n + THEIR_SPECIALS, hidden)
            shapes[f"{mlm}proj.{j}.bias"] = (n + THEIR_SPECIALS,)
    return shapes


def random_weights(shapes, seed=0):
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in shapes.items():
        if "LayerNorm.weight" in key:
            state[key] = 1 + 0.2 * torch.randn(shape, generator=g)
        else:
            state[key] = 0.3 * torch.randn(shape, generator=g) / math.sqrt(shape[-1] if len(shape) > 1 else 4)
    return state


def authors_forward(sd, ids, attention_mask, *, b, h, heads, relative, width, eps=1e-12):
    """Their `MidiBertLM.forward`: the Octuple embedding, then transformers 4.x `BertModel(inputs_embeds=...)`,
    then the MLM projections. Returns (hidden states of every layer, logits per attribute)."""
    tables = [F.embedding(ids[..., j], sd[f"{b}word_emb.{j}.lut.weight"]) * math.sqrt(width) for j in range(8)]
    x = F.linear(torch.cat(tables, -1), sd[f"{b}in_linear.weight"], sd[f"{b}in_linear.bias"])
    batch, length, hidden = x.shape
    x = x + sd[f"{b}bert.embeddings.token_type_embeddings.weight"][0]  # token_type_ids default to zeros
    if not relative:
        x = x + sd[f"{b}bert.embeddings.position_embeddings.weight"][:length]
    ln = lambda t, key: F.layer_norm(t, (hidden,), sd[key + ".weight"], sd[key + ".bias"], eps)  # noqa: E731
    lin = lambda t, key: F.linear(t, sd[key + ".weight"], sd[key + ".bias"])  # noqa: E731
    x = ln(x, f"{b}bert.embeddings.LayerNorm")
    extended = (1.0 - attention_mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
    size = hidden // heads
    states = [x]
    for i in range(sum(1 for k in sd if k.startswith(f"{b}bert.encoder.layer.") and k.endswith("query.weight"))):
        p = f"{b}bert.encoder.layer.{i}."
        q, k, v = (lin(x, p + f"attention.self.{n}").view(batch, length, heads, size).transpose(1, 2)
                   for n in ("query", "key", "value"))
        scores = q @ k.transpose(-1, -2)
        if relative:  # 4.x BertSelfAttention, position_embedding_type == "relative_key_query"
            table = sd[p + "attention.self.distance_embedding.weight"]
            max_positions = (table.shape[0] + 1) // 2
            distance = torch.arange(length)[:, None] - torch.arange(length)[None, :]
            positional = table[distance + max_positions - 1]
            scores = scores + torch.einsum("bhld,lrd->bhlr", q, positional) \
                + torch.einsum("bhrd,lrd->bhlr", k, positional)
        probs = (scores / math.sqrt(size) + extended).softmax(-1)
        context = (probs @ v).transpose(1, 2).reshape(batch, length, hidden)
        attended = ln(lin(context, p + "attention.output.dense") + x, p + "attention.output.LayerNorm")
        x = ln(lin(F.gelu(lin(attended, p + "intermediate.dense")), p + "output.dense") + attended,
               p + "output.LayerNorm")
        states.append(x)
    logits = [lin(x, f"{h}proj.{j}") for j in range(8)] if h is not None else None
    return states, logits


def authors_dictionary():
    """Their `e2w` as PianoBART's make_dict.py builds it: names in their loop order, then the six specials."""
    names = {
        "Bar": [f"Bar {i}" for i in range(256)],
        "Position": [f"Position {i}/64" for i in range(2 * 4 * 16)],
        "Instrument": [f"Instrument {i}" for i in range(128)] + ["Instrument percussion"],
        "Pitch": [f"Pitch {i}" if i <= 127 else f"Pitch percussion {i - 128}" for i in range(256)],
        "Duration": [f"Duration {i}" for i in range(8 * 16)],
        "Velocity": [f"Velocity {i * 4 + 2}" for i in range(127 // 4 + 1)],
        "TimeSig": [f"TimeSig {j}/{2 ** i}" for i in range(7) for j in range(1, 2 ** i * 2 + 1)],
        "Tempo": [f"Tempo {2 ** (i / 12) * 16}" for i in range(round(math.log2(256 / 16) * 12) + 1)],
    }
    e2w = {}
    for cls, regular in names.items():
        e2w[cls] = {name: i for i, name in enumerate(regular)}
        for s in ("PAD", "MASK", "SOS", "EOS", "CLS", "SEP"):
            e2w[cls][f"{cls} <{s}>"] = len(e2w[cls])
    return e2w, {cls: {i: name for name, i in table.items()} for cls, table in e2w.items()}


def sample_ids(batch=3, length=24, seed=1):
    """Windows in both layouts (they coincide): SOS/BOS, notes, EOS, PAD; a few MASK rows, as in pre-training."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.stack([torch.randint(0, n, (batch, length), generator=g) for n in REGULAR], -1)
    mask = torch.ones(batch, length, dtype=torch.long)
    lengths = [length, length - 7, 5]
    for row, n in enumerate(lengths):
        ids[row, 0] = torch.tensor(REGULAR) + 2  # their SOS = our BOS
        ids[row, n - 1] = torch.tensor(REGULAR) + 3  # EOS
        ids[row, n:] = torch.tensor(REGULAR)  # PAD
        mask[row, n:] = 0
    ids[0, 3] = torch.tensor(REGULAR) + 1  # MASK
    return ids, mask


def expected_tensor(our_key, sd, b, h):
    """Where each of our tensors comes from, written out independently of the converter's plan."""
    key = our_key.removeprefix("midibert.")
    if key.startswith("embeddings.attribute_embeddings."):
        j = int(key.split(".")[2])
        return sd[f"{b}word_emb.{j}.lut.weight"][: REGULAR[j] + 4]
    if key.startswith("recoverer."):
        j, part = key.split(".")[1:]
        return sd[f"{h}proj.{j}.{part}"][: REGULAR[int(j)] + 4]
    if key == "embeddings.projection.weight":
        return sd[f"{b}in_linear.weight"]
    if key == "embeddings.projection.bias":
        return sd[f"{b}in_linear.bias"] + sd[f"{b}bert.embeddings.token_type_embeddings.weight"][0]
    if key == "embeddings.position_embeddings.weight":
        return sd[f"{b}bert.embeddings.position_embeddings.weight"]
    return sd[f"{b}bert.{key}"]  # embeddings.LayerNorm.* and encoder.layer.{i}.*: same names under `bert.`


@pytest.fixture(scope="module")
def converted_tiny(tmp_path_factory):
    """Their `pretrain_model.pth` (MidiBertLM under DataParallel) at a tiny size, converted once."""
    root = tmp_path_factory.mktemp("authors")
    shapes = authors_key_shapes(**TINY, backbone="module.midibert.", mlm="module.mask_lm.")
    sd = random_weights(shapes)
    torch.save(sd, root / "pretrain_model.pth")
    report = convert_authors_checkpoint(root / "pretrain_model.pth", root / "converted")
    plain = {key.removeprefix("module."): value for key, value in sd.items()}
    return root / "converted", plain, report


def test_paper_sized_files_map_onto_the_paper_model_exactly():
    shapes = authors_key_shapes(**PAPER, backbone="module.midibert.", mlm="module.mask_lm.")
    plan = plan_conversion(shapes)
    paper = AdversarialMidiBertConfig.from_preset("paper")
    for name in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                 "max_position_embeddings", "attribute_embedding_size", "position_embedding_type",
                 "scale_attribute_embeddings", "hidden_act", "layer_norm_eps", "attribute_vocab_sizes"):
        assert getattr(plan.config, name) == getattr(paper, name), name
    with torch.device("meta"):  # shapes only: no 110 M parameters allocated
        ours = AdversarialMidiBertForPreTraining(plan.config).state_dict()
    assert set(plan.sources) == {key for key in ours if not key.startswith("masker.")}
    for key, (rule, sources) in plan.sources.items():
        theirs = shapes["module." + sources[0]]
        expected = (theirs[0] - 2, *theirs[1:]) if rule == "rows" else theirs  # CLS, SEP rows dropped
        assert tuple(ours[key].shape) == expected, key
    assert set(plan.skipped) == {"midibert." + key for key in SKIPPED}


def test_every_tensor_lands_where_the_mapping_says(converted_tiny):
    out, sd, report = converted_tiny
    files = set(os.listdir(out))
    assert {"config.json", "model.safetensors", "configuration_adversarial_midibert.py",
            "modeling_adversarial_midibert.py", "tokenization_octuple.py", "tokenizer_config.json",
            "README.md", "conversion.json"} <= files
    model, info = AutoModelForPreTraining.from_pretrained(out, trust_remote_code=True, output_loading_info=True)
    # The folder is complete (the masker is saved freshly initialised), and the report names what was new.
    assert not info["unexpected_keys"] and not info["missing_keys"]
    assert set(report.not_converted) == {k for k in model.state_dict() if k.startswith("masker.")}
    for key, value in model.state_dict().items():
        if key.startswith("masker."):
            continue
        torch.testing.assert_close(value, expected_tensor(key, sd, "midibert.", "mask_lm."), rtol=0, atol=0,
                                   msg=key)
    recorded = json.loads((out / "conversion.json").read_text())
    assert set(recorded["skipped"]) == {"midibert." + key for key in SKIPPED}
    assert "README.md" in files and "freshly initialised" in (out / "README.md").read_text()

    backbone = AutoModel.from_pretrained(out, trust_remote_code=True)
    for key, value in backbone.state_dict().items():
        torch.testing.assert_close(value, expected_tensor(key, sd, "midibert.", "mask_lm."), rtol=0, atol=0)
    for auto, labels in ((AutoModelForSequenceClassification, 4), (AutoModelForTokenClassification, 3)):
        head, info = auto.from_pretrained(out, trust_remote_code=True, num_labels=labels, output_loading_info=True)
        assert all(not key.startswith("midibert.") for key in info["missing_keys"]), auto.__name__
        torch.testing.assert_close(head.midibert.embeddings.projection.bias,
                                   expected_tensor("embeddings.projection.bias", sd, "midibert.", "mask_lm."))
    tok = AutoTokenizer.from_pretrained(out, trust_remote_code=True)
    assert tok.max_length == TINY["max_positions"]


def test_hidden_states_and_mlm_logits_equal_the_authors_forward(converted_tiny):
    out, sd, _ = converted_tiny
    model = AutoModelForPreTraining.from_pretrained(out, trust_remote_code=True).eval()
    ids, mask = sample_ids()
    theirs, their_logits = authors_forward(sd, ids, mask, b="midibert.", h="mask_lm.", heads=TINY["heads"],
                                           relative=True, width=TINY["width"])
    with torch.no_grad():
        ours = model.midibert(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
        # The recoverer's classifiers on every row (its forward reads only the predicted rows).
        our_logits = [head(ours[-1]) for head in model.recoverer]
    assert len(ours) == len(theirs) == TINY["layers"] + 1
    real = mask.bool()
    for layer, (a, b) in enumerate(zip(ours, theirs)):
        torch.testing.assert_close(a[real], b[real], rtol=0, atol=1e-4, msg=f"hidden state {layer}")
    for j, (a, b) in enumerate(zip(our_logits, their_logits)):
        torch.testing.assert_close(a[real], b[real][:, : REGULAR[j] + 4], rtol=0, atol=1e-4, msg=f"logits {j}")
    assert (theirs[-1][real] - theirs[0][real]).abs().mean() > 0.1  # the encoder does change the states


def test_backbone_only_file_absolute_positions(tmp_path):
    """Their `midibert_pretrain.pth` (MidiBert alone, no prefix), here with absolute positions, which their
    BertConfig also allows: the position table is used, not skipped, and AutoModel reproduces their forward."""
    shapes = authors_key_shapes(**TINY, relative=False)
    sd = random_weights(shapes, seed=3)
    torch.save(sd, tmp_path / "midibert_pretrain.pth")
    report = convert_authors_checkpoint(tmp_path / "midibert_pretrain.pth", tmp_path / "out",
                                        num_attention_heads=TINY["heads"])
    assert report.model_class == "AdversarialMidiBertModel"
    assert "bert.embeddings.position_embeddings.weight" not in report.plan.skipped
    model = AutoModel.from_pretrained(tmp_path / "out", trust_remote_code=True).eval()
    assert model.config.position_embedding_type == "absolute"
    ids, mask = sample_ids(seed=4)
    theirs, _ = authors_forward(sd, ids, mask, b="", h=None, heads=TINY["heads"], relative=False,
                                width=TINY["width"])
    with torch.no_grad():
        ours = model(input_ids=ids, attention_mask=mask).last_hidden_state
    torch.testing.assert_close(ours[mask.bool()], theirs[-1][mask.bool()], rtol=0, atol=1e-4)
    # A backbone-only checkpoint still opens as a pre-training model; only its heads are new.
    _, info = AutoModelForPreTraining.from_pretrained(tmp_path / "out", trust_remote_code=True,
                                                      output_loading_info=True)
    assert info["missing_keys"] and all(k.split(".")[0] in ("recoverer", "masker") for k in info["missing_keys"])


def write_release(folder, seed=5, dictionary=None):
    """Their Hub release layout: PyTorchModelHubMixin's model.safetensors + config.json, and Octuple.pkl."""
    folder.mkdir(parents=True, exist_ok=True)
    shapes = authors_key_shapes(**TINY, backbone="midibert.", mlm="mask_lm.")
    sd = random_weights(shapes, seed=seed)
    save_file(sd, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"hs": TINY["hidden"], "max_seq_len": TINY["max_positions"]}))
    with open(folder / "Octuple.pkl", "wb") as f:
        pickle.dump(dictionary or authors_dictionary(), f)
    return sd


def test_hub_release_folder_checks_the_dictionary(tmp_path):
    write_release(tmp_path / "release")
    report = convert_authors_checkpoint(tmp_path / "release", tmp_path / "out")
    assert report.dictionary_checked and report.model_class == "AdversarialMidiBertForPreTraining"

    e2w, w2e = authors_dictionary()
    swapped = dict(e2w["TimeSig"])
    swapped["TimeSig 1/2"], swapped["TimeSig 2/2"] = swapped["TimeSig 2/2"], swapped["TimeSig 1/2"]
    with open(tmp_path / "bad.pkl", "wb") as f:
        pickle.dump(({**e2w, "TimeSig": swapped}, w2e), f)
    with pytest.raises(ConversionError, match="TimeSig"):
        check_authors_dictionary(tmp_path / "bad.pkl")

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo should-never-run",))
    with open(tmp_path / "evil.pkl", "wb") as f:
        pickle.dump(Evil(), f)
    with pytest.raises(ConversionError, match="refusing to unpickle"):
        check_authors_dictionary(tmp_path / "evil.pkl")


def test_hub_repo_id_through_the_command_line(tmp_path):
    """`python -m adversarial_midibert.hub.convert_authors owner/repo out` downloads their release from the Hub."""
    write_release(tmp_path / "release", seed=6)
    with HubServer(tmp_path / "hub") as hub:
        api = HfApi(endpoint=hub.endpoint, token="dummy")
        api.create_repo("RS2002/Adversarial-MidiBERT")
        api.upload_folder(folder_path=tmp_path / "release", repo_id="RS2002/Adversarial-MidiBERT")
        env = {**os.environ, **hub.client_env(tmp_path / "hf_home")}
        result = subprocess.run([sys.executable, "-m", "adversarial_midibert.hub.convert_authors",
                                 "RS2002/Adversarial-MidiBERT", str(tmp_path / "out")],
                                env=env, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "AdversarialMidiBertForPreTraining" in result.stdout and "checked against ours" in result.stdout
    assert "bert.pooler.dense.weight: BERT pooler, never used" in result.stdout
    assert (tmp_path / "out" / "model.safetensors").is_file()


@pytest.mark.parametrize("change, message", [
    (lambda s: s.update({"midibert.extra_head.weight": (3, 3)}), "unrecognised key"),
    (lambda s: s.pop("midibert.bert.encoder.layer.1.output.dense.bias"), "missing key"),
    (lambda s: s.update({"midibert.word_emb.6.lut.weight": (250, TINY["width"])}), "TimeSig table has 250 rows"),
    (lambda s: s.update({"midibert.bert.pooler.dense.weight": (5, 5)}), "pooler.dense.weight: shape"),
    (lambda s: s.update({"mask_lm.proj.2.weight": (135, 7)}), r"proj.2.weight: shape"),
], ids=["unknown-key", "missing-key", "vocabulary", "skipped-shape", "head-shape"])
def test_refuses_unrecognised_keys_and_shapes(change, message):
    shapes = authors_key_shapes(**TINY, backbone="midibert.", mlm="mask_lm.")
    change(shapes)
    with pytest.raises(ConversionError, match=message):
        plan_conversion(shapes)


def test_command_line_reports_a_refusal(tmp_path, capsys):
    torch.save({"encoder.weight": torch.zeros(2, 2)}, tmp_path / "other.pth")
    assert main([str(tmp_path / "other.pth"), str(tmp_path / "out")]) == 2
    assert "not an Adversarial-MidiBERT checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("cls, name, their_id", [
    # Lines of PianoBART's Data/dict.txt (make_dict.py's printout), the dictionary their README points to.
    ("Bar", "Bar <CLS>", 260), ("Position", "Position 127/64", 127), ("Position", "Position <SOS>", 130),
    ("Instrument", "Instrument percussion", 128), ("Instrument", "Instrument <PAD>", 129),
    ("Pitch", "Pitch percussion 0", 128), ("Pitch", "Pitch <MASK>", 257), ("Duration", "Duration <EOS>", 131),
    ("Velocity", "Velocity 126", 31), ("Velocity", "Velocity <SEP>", 37), ("TimeSig", "TimeSig 4/4", 9),
    ("TimeSig", "TimeSig 6/8", 19), ("TimeSig", "TimeSig 128/64", 253), ("TimeSig", "TimeSig <SOS>", 256),
    ("Tempo", "Tempo 16.951409509748725", 1), ("Tempo", "Tempo 120.81591202325676", 35), ("Tempo", "Tempo <EOS>", 52),
])
def test_expected_dictionary_matches_their_published_one(cls, name, their_id):
    from adversarial_midibert.hub.convert_authors import authors_dictionary
    from tokenization_octuple import TIME_SIGNATURE_TABLE

    assert authors_dictionary()[cls][name] == their_id
    if cls == "TimeSig" and "<" not in name:  # and their time-signature id is ours
        numerator, denominator = map(int, name.split()[1].split("/"))
        assert TIME_SIGNATURE_TABLE.index((numerator, denominator)) == their_id


def test_convert_subcommand_parses_like_the_module_entry_point(tmp_path, capsys):
    import argparse

    from adversarial_midibert.hub.convert_authors import add_convert

    parser = argparse.ArgumentParser(prog="adversarial-midibert")
    add_convert(parser.add_subparsers(dest="command", required=True))
    torch.save({"encoder.weight": torch.zeros(2, 2)}, tmp_path / "other.pth")
    args = parser.parse_args(["convert", str(tmp_path / "other.pth"), str(tmp_path / "out"), "--revision", "v1"])
    assert args.revision == "v1" and args.func(args) == 2
    assert "not an Adversarial-MidiBERT checkpoint" in capsys.readouterr().err
