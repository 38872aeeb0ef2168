"""The network: config fields and presets, the relative_key_query bias against transformers 4.x's formula,
padding invariance, sdpa / eager agreement, gradient checkpointing, the heads, and the paper's parameter count."""
import math

import pytest
import torch
import torch.nn.functional as F

from configuration_adversarial_midibert import AdversarialMidiBertConfig
from conftest import tiny_config, window_batch
from modeling_adversarial_midibert import (
    AdversarialMidiBertForPreTraining,
    AdversarialMidiBertForSequenceClassification,
    AdversarialMidiBertForTokenClassification,
    AdversarialMidiBertModel,
    apply_rotary,
    real_note_mask,
    relative_key_query_bias,
    rotary_cos_sin,
)

POSITION_TYPES = ["relative_key_query", "absolute", "rotary"]


def build(cls, config, seed=0):
    torch.manual_seed(seed)
    return cls(config).eval()


# --- config ---------------------------------------------------------------------------------------------------


def test_paper_preset_is_table_1():
    config = AdversarialMidiBertConfig.from_preset("paper")
    assert (config.num_hidden_layers, config.hidden_size, config.intermediate_size, config.num_attention_heads,
            config.max_position_embeddings) == (12, 768, 3072, 12, 1024)
    assert config.position_embedding_type == "relative_key_query"
    assert (config.mask_percent, config.masker_target_percent, config.freeze_percent, config.unfreeze_percent,
            config.freeze_every_epochs) == (15, 30, 30, 10, 15)
    assert config.hidden_dropout_prob == config.attention_probs_dropout_prob == 0.1


def test_config_ids_agree_with_the_tokenizer():
    tokenization = pytest.importorskip("tokenization_octuple")
    config = AdversarialMidiBertConfig()
    tok = tokenization.OctupleTokenizer
    assert tuple(config.attribute_vocab_sizes) == tuple(tok.regular_vocab_sizes)
    assert config.attributes == tuple(tok.ATTRIBUTES)
    assert config.vocab_sizes == tuple(tok.vocab_sizes)
    for name in ("pad", "mask", "bos", "eos"):
        assert getattr(config, f"{name}_token_ids") == tuple(getattr(tok, f"{name}_ids")), name


@pytest.mark.parametrize(
    "field, value",
    [
        ("mask_percent", 101),
        ("freeze_percent", -1),
        ("masker_target_percent", 60),
        ("mask_token_ratio", 0.9),  # 0.9 + 0.2 > 1
        ("classifier_pooling", "max"),
        ("masking", "span"),
        ("position_embedding_type", "alibi"),
        ("layer_norm_position", "sandwich"),
        ("rotary_base", 1.0),
        ("hidden_size", 30),  # not divisible by 4 heads
        ("attribute_vocab_sizes", [256, 128, 129]),
        ("hidden_attributes", ["loudness"]),
        ("num_hidden_layers", 0),
        ("classifier_hidden_size", 0),
    ],
)
def test_config_rejects_invalid_values_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field if field != "mask_token_ratio" else "random_token_ratio"):
        tiny_config(**{field: value})


def test_config_round_trip_keeps_fields_and_full_auto_map(tmp_path):
    config = tiny_config(num_labels=5, hidden_attributes=["velocity"], masking="random")
    config.save_pretrained(tmp_path)
    loaded = AdversarialMidiBertConfig.from_pretrained(tmp_path)
    assert loaded.to_dict() == config.to_dict()
    assert set(loaded.auto_map) == {"AutoConfig", "AutoModel", "AutoModelForPreTraining", "AutoTokenizer",
                                    "AutoModelForSequenceClassification", "AutoModelForTokenClassification"}
    with pytest.raises(ValueError, match="unknown preset"):
        AdversarialMidiBertConfig.from_preset("huge")


# --- relative_key_query -----------------------------------------------------------------------------------------


def relative_key_query_4x(query, key, table, max_positions):
    """transformers 4.x BertSelfAttention, verbatim in substance: a (L, L, head_dim) gather and two einsums."""
    length = query.shape[2]
    distance = torch.arange(length).view(-1, 1) - torch.arange(length).view(1, -1)
    positional = table[distance + max_positions - 1]
    return torch.einsum("bhld,lrd->bhlr", query, positional) + torch.einsum("bhrd,lrd->bhlr", key, positional)


@pytest.mark.parametrize("length", [1, 2, 7, 16])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_relative_bias_equals_the_4x_formula_with_gradients(length, dtype):
    # bf16 queries and keys with an fp32 table are what a GPU's autocast hands the bias (on a CPU the model keeps
    # attention in fp32, so the training tests here no longer reach this case).
    generator = torch.Generator().manual_seed(length)
    query = torch.randn(2, 3, length, 8, generator=generator).to(dtype).requires_grad_()
    key = torch.randn(2, 3, length, 8, generator=generator).to(dtype).requires_grad_()
    table = torch.randn(2 * 20 - 1, 8, generator=generator, requires_grad=True)
    ours = relative_key_query_bias(query, key, table, 20)
    reference = relative_key_query_4x(query.float(), key.float(), table, 20)
    tolerance = 1e-5 if dtype == torch.float32 else 0.1  # bf16 keeps 8 bits of mantissa; the sums are of 8 terms
    assert ours.dtype == dtype
    assert torch.allclose(ours.float(), reference, atol=tolerance)
    upstream = torch.randn(ours.shape, generator=generator)
    grads = torch.autograd.grad((ours.float() * upstream).sum(), (query, key, table))
    expected = torch.autograd.grad((reference * upstream).sum(), (query, key, table))
    for got, want in zip(grads, expected):
        assert torch.allclose(got.float(), want.float(), atol=10 * tolerance)


def test_relative_self_attention_equals_4x_attention():
    """A whole layer's attention probabilities against 4.x's eager relative_key_query computation."""
    config = tiny_config(num_hidden_layers=1)
    model = build(AdversarialMidiBertModel, config)
    model.set_attn_implementation("eager")
    ids, mask = window_batch(config, [9, 5])
    embeddings = model.embeddings(ids)
    attention = model.encoder.layer[0].attention.self
    out = model(input_ids=ids, attention_mask=mask, output_attentions=True)
    heads = lambda layer: layer(embeddings).view(2, 11, 4, 8).transpose(1, 2)
    q, k = heads(attention.query), heads(attention.key)
    scores = q @ k.transpose(-1, -2) + relative_key_query_4x(q, k, attention.distance_embedding.weight, 64)
    scores = scores / math.sqrt(8) + (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
    assert torch.allclose(out.attentions[0], scores.softmax(-1), atol=1e-5)


def test_position_tables_exist_only_for_their_type():
    relative = AdversarialMidiBertModel(tiny_config())
    absolute = AdversarialMidiBertModel(tiny_config(position_embedding_type="absolute"))
    relative_names = {n for n, _ in relative.named_parameters()}
    absolute_names = {n for n, _ in absolute.named_parameters()}
    assert any("distance_embedding" in n for n in relative_names) and "embeddings.position_embeddings.weight" not in relative_names
    assert "embeddings.position_embeddings.weight" in absolute_names and not any("distance" in n for n in absolute_names)


def test_longer_than_max_positions_is_a_clear_error():
    config = tiny_config(max_position_embeddings=8)
    with pytest.raises(ValueError, match="max_position_embeddings"):
        AdversarialMidiBertModel(config)(input_ids=window_batch(config, [8])[0])


# --- backbone behaviour -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("implementation", ["sdpa", "eager"])
@pytest.mark.parametrize("position", POSITION_TYPES)
def test_padding_does_not_change_real_tokens(position, implementation):
    config = tiny_config(position_embedding_type=position)
    model = build(AdversarialMidiBertModel, config)
    model.set_attn_implementation(implementation)
    ids, mask = window_batch(config, [12, 5, 1], total=20)
    batched = model(input_ids=ids, attention_mask=mask).last_hidden_state
    for b, n in enumerate([12, 5, 1]):
        alone = model(input_ids=ids[b : b + 1, : n + 2]).last_hidden_state[0]
        assert torch.allclose(batched[b, : n + 2], alone, atol=1e-5)


@pytest.mark.parametrize("position", POSITION_TYPES)
def test_sdpa_and_eager_agree_in_outputs_and_gradients(position):
    config = tiny_config(position_embedding_type=position)
    assert AdversarialMidiBertModel(config).config._attn_implementation == "sdpa"  # the default
    ids, mask = window_batch(config, [14, 6])
    results = {}
    for implementation in ("sdpa", "eager"):
        model = build(AdversarialMidiBertForSequenceClassification, config)
        model.set_attn_implementation(implementation)
        out = model(input_ids=ids, attention_mask=mask, labels=torch.tensor([0, 1]))
        out.loss.backward()
        results[implementation] = (out.logits, {n: p.grad for n, p in model.named_parameters()})
    assert torch.allclose(results["sdpa"][0], results["eager"][0], atol=1e-5)
    for name, grad in results["sdpa"][1].items():
        assert torch.allclose(grad, results["eager"][1][name], atol=1e-5), name


@pytest.mark.parametrize("position", POSITION_TYPES)
def test_gradient_checkpointing_gives_the_same_gradients(position):
    config = tiny_config(position_embedding_type=position)  # dropout on: checkpointing must replay the same masks
    ids, mask = window_batch(config, [10, 7])
    grads = []
    for checkpointing in (False, True):
        model = build(AdversarialMidiBertForPreTraining, config).train()
        if checkpointing:
            model.activation_checkpointing_enable()
            assert model.midibert.encoder.layer[0].gradient_checkpointing
        torch.manual_seed(11)
        model(input_ids=ids, attention_mask=mask, generator=torch.Generator().manual_seed(0)).loss.backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    for name, grad in grads[0].items():
        assert torch.allclose(grad, grads[1][name], atol=1e-6), name


def test_batch_of_one_and_output_options():
    config = tiny_config()
    model = build(AdversarialMidiBertModel, config)
    ids = window_batch(config, [1])[0]
    out = model(input_ids=ids, output_hidden_states=True)
    assert out.last_hidden_state.shape == (1, 3, 32)
    assert len(out.hidden_states) == config.num_hidden_layers + 1
    assert torch.equal(out.hidden_states[-1], out.last_hidden_state)
    assert model(input_ids=ids, return_dict=False)[0].shape == (1, 3, 32)


def test_embedding_is_the_authors_layout():
    """Scaled per-attribute tables, concatenated, projected with bias, LayerNorm (relative positions: no table)."""
    config = tiny_config()
    model = build(AdversarialMidiBertModel, config)
    ids = window_batch(config, [4])[0]
    embeddings = model.embeddings
    tables = torch.cat([embeddings.attribute_embeddings[j](ids[..., j]) for j in range(8)], -1) * math.sqrt(8)
    expected = embeddings.LayerNorm(embeddings.projection(tables))
    assert torch.allclose(embeddings(ids), expected, atol=1e-6)
    assert [table.num_embeddings for table in embeddings.attribute_embeddings] == list(config.vocab_sizes)


# --- heads ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("pooling", ["attention", "bos", "mean"])
def test_sequence_pooling_is_padding_invariant(pooling):
    config = tiny_config(classifier_pooling=pooling, num_labels=3)
    model = build(AdversarialMidiBertForSequenceClassification, config)
    ids, mask = window_batch(config, [10, 3], total=16)
    batched = model(input_ids=ids, attention_mask=mask).logits
    alone = model(input_ids=ids[1:, :5]).logits
    assert torch.allclose(batched[1], alone[0], atol=1e-5)


@pytest.mark.parametrize("pooling", ["attention", "mean"])
def test_pooling_reads_only_the_notes(pooling):
    config = tiny_config(classifier_pooling=pooling, num_labels=3)
    model = build(AdversarialMidiBertForSequenceClassification, config)
    ids, mask = window_batch(config, [6], total=10)
    notes = real_note_mask(ids, mask, 256)
    hidden = torch.randn(1, 10, 32)
    changed = hidden.clone()
    changed[~notes] = torch.randn(int((~notes).sum()), 32)  # BOS, EOS and padding rows
    assert torch.allclose(model.pool(hidden, notes, mask), model.pool(changed, notes, mask))
    changed[0, 3] += 1.0
    assert not torch.allclose(model.pool(hidden, notes, mask), model.pool(changed, notes, mask))
    if pooling == "mean":
        assert torch.allclose(model.pool(hidden, notes, mask)[0], hidden[0, 1:7].mean(0))


@pytest.mark.parametrize(
    "num_labels, labels, loss_fn",
    [
        (3, torch.tensor([2, 0]), lambda logits, y: F.cross_entropy(logits, y)),
        (3, torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]]), lambda logits, y: F.binary_cross_entropy_with_logits(logits, y)),
        (1, torch.tensor([0.5, -1.0]), lambda logits, y: F.mse_loss(logits.squeeze(-1), y)),
    ],
    ids=["single_label", "multi_label", "regression"],
)
def test_sequence_classification_problem_types(num_labels, labels, loss_fn):
    config = tiny_config(num_labels=num_labels)
    model = build(AdversarialMidiBertForSequenceClassification, config)
    ids, mask = window_batch(config, [8, 4])
    out = model(input_ids=ids, attention_mask=mask, labels=labels)
    assert out.logits.shape == (2, num_labels)
    assert torch.allclose(out.loss, loss_fn(out.logits, labels))


def test_token_classification_ignores_minus_100():
    config = tiny_config(num_labels=4)
    model = build(AdversarialMidiBertForTokenClassification, config)
    ids, mask = window_batch(config, [6, 3])
    labels = torch.randint(0, 4, mask.shape).masked_fill(~real_note_mask(ids, mask, 256), -100)
    out = model(input_ids=ids, attention_mask=mask, labels=labels)
    valid = labels != -100
    assert torch.allclose(out.loss, F.cross_entropy(out.logits[valid], labels[valid]))
    nothing = model(input_ids=ids, attention_mask=mask, labels=torch.full_like(labels, -100)).loss
    assert nothing.item() == 0.0


@pytest.mark.parametrize("cls", [AdversarialMidiBertForSequenceClassification, AdversarialMidiBertForTokenClassification])
def test_heads_tuple_outputs_follow_return_dict_false(cls):
    config = tiny_config(num_labels=3)
    model = build(cls, config)
    ids, mask = window_batch(config, [4, 2])
    labels = torch.tensor([0, 2]) if cls is AdversarialMidiBertForSequenceClassification else \
        torch.zeros(mask.shape, dtype=torch.long).masked_fill(~mask.bool(), -100)
    out = model(input_ids=ids, attention_mask=mask, labels=labels, output_hidden_states=True)
    loss, logits, hidden = model(input_ids=ids, attention_mask=mask, labels=labels, output_hidden_states=True,
                                 return_dict=False)
    assert torch.equal(loss, out.loss) and torch.equal(logits, out.logits) and len(hidden) == len(out.hidden_states)
    (only_logits,) = model(input_ids=ids, attention_mask=mask, return_dict=False)  # no labels: no loss, no None
    assert torch.equal(only_logits, out.logits)


def test_evaluation_never_masks_and_hidden_attributes_do_not_leak():
    config = tiny_config(num_labels=6, hidden_attributes=["velocity"], finetune_mask_percent=50)
    model = build(AdversarialMidiBertForTokenClassification, config)
    ids, mask = window_batch(config, [10])
    first = model(input_ids=ids, attention_mask=mask).logits
    assert torch.equal(first, model(input_ids=ids, attention_mask=mask).logits)  # deterministic in eval
    louder = ids.clone()
    louder[0, 1:11, 5] = (louder[0, 1:11, 5] + 7) % 32
    assert torch.equal(first, model(input_ids=louder, attention_mask=mask).logits)  # velocity is not read
    louder[0, 1:11, 4] = (louder[0, 1:11, 4] + 7) % 128
    assert not torch.allclose(first, model(input_ids=louder, attention_mask=mask).logits)  # duration is


def test_every_classification_parameter_gets_a_gradient():
    for cls in (AdversarialMidiBertForSequenceClassification, AdversarialMidiBertForTokenClassification):
        for pooling in ("attention", "bos"):
            config = tiny_config(num_labels=2, classifier_pooling=pooling)
            model = build(cls, config).train()
            ids, mask = window_batch(config, [5, 9])
            labels = torch.tensor([0, 1]) if cls is AdversarialMidiBertForSequenceClassification else \
                torch.zeros(mask.shape, dtype=torch.long).masked_fill(~mask.bool(), -100)
            model(input_ids=ids, attention_mask=mask, labels=labels).loss.backward()
            missing = [n for n, p in model.named_parameters() if p.grad is None]
            assert not missing, (cls.__name__, pooling, missing)


# --- the paper's parameter count -----------------------------------------------------------------------------------


def test_paper_parameter_count_against_the_papers_115m(capsys):
    config = AdversarialMidiBertConfig.from_preset("paper")
    with torch.device("meta"):
        model = AdversarialMidiBertForPreTraining(config)
    count = lambda module: sum(p.numel() for p in module.parameters())
    backbone, recoverer, masker = count(model.midibert), count(model.recoverer), count(model.masker)
    hidden = config.hidden_size
    # What the authors' checkpoint carries beyond ours (transformers 4.x BertModel fed inputs_embeds):
    unused_word_table = 30522 * hidden  # BERT's word embeddings, never read
    unused_absolute_table = config.max_position_embeddings * hidden  # built even with relative_key_query
    token_type_table = 2 * hidden  # row 0 is a constant, folded into our projection bias
    pooler = hidden * hidden + hidden  # BertPooler, never used by their heads
    authors = backbone + recoverer + masker + unused_word_table + unused_absolute_table + token_type_table + pooler
    with capsys.disabled():
        print(
            f"\npaper preset: backbone {backbone:,} + recoverer {recoverer:,} + masker {masker:,} = "
            f"{backbone + recoverer + masker:,} parameters.\n"
            f"The authors' model also carried BERT's unused 30522 x {hidden} word table ({unused_word_table:,}), "
            f"an unused absolute-position table ({unused_absolute_table:,}), the token-type table "
            f"({token_type_table:,}) and the pooler ({pooler:,}): {authors:,} = the paper's '115 Million'."
        )
    assert backbone == 88_525_312
    assert round(authors / 1e6) == 115


@pytest.mark.parametrize("position", POSITION_TYPES)
def test_bf16_autocast_with_padding_stays_finite_and_close(position):
    """Under autocast the queries are bf16 while the embeddings are fp32: the mask must follow the queries."""
    config = tiny_config(position_embedding_type=position)
    model = build(AdversarialMidiBertModel, config)
    ids, mask = window_batch(config, [12, 4], total=16)
    reference = model(input_ids=ids, attention_mask=mask).last_hidden_state
    for implementation in ("sdpa", "eager"):
        model.set_attn_implementation(implementation)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state
        assert torch.isfinite(hidden).all()
        real = mask.bool()
        assert (hidden.float()[real] - reference[real]).abs().max() < 0.1


def test_cpu_autocast_keeps_attention_in_fp32_and_the_rest_in_bf16():
    """On a CPU, bf16 pays in the linear layers but torch's attention kernels are slower in bf16 than in fp32
    (benchmarks/cpu_precision.py), so the attention weights come out fp32 while the layers around them run bf16."""
    config = tiny_config()
    model = build(AdversarialMidiBertModel, config)
    ids, mask = window_batch(config, [12, 4], total=16)
    seen = set()
    model.encoder.layer[0].attention.self.query.register_forward_hook(lambda m, i, out: seen.add(out.dtype))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(input_ids=ids, attention_mask=mask, output_attentions=True)
        out.last_hidden_state.float().sum().backward()
    assert seen == {torch.bfloat16}
    assert all(weights.dtype == torch.float32 for weights in out.attentions)
    assert out.last_hidden_state.dtype == torch.bfloat16
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.encoder.parameters())


def test_attn_implementation_is_selectable_at_load_time(tmp_path):
    config = tiny_config()
    model = build(AdversarialMidiBertModel, config)
    model.save_pretrained(tmp_path)
    ids, mask = window_batch(config, [9, 4])
    expected = model(input_ids=ids, attention_mask=mask).last_hidden_state
    for implementation in ("eager", "sdpa"):
        loaded = AdversarialMidiBertModel.from_pretrained(tmp_path, attn_implementation=implementation)
        assert loaded.config._attn_implementation == implementation
        assert torch.allclose(loaded(input_ids=ids, attention_mask=mask).last_hidden_state, expected, atol=1e-5)


def test_initialisation_follows_initializer_range():
    config = tiny_config(initializer_range=0.05, hidden_size=64, intermediate_size=256)
    model = AdversarialMidiBertForPreTraining(config)
    dense = model.midibert.encoder.layer[0].intermediate.dense
    assert dense.weight.std().item() == pytest.approx(0.05, rel=0.1) and (dense.bias == 0).all()
    table = model.midibert.encoder.layer[1].attention.self.distance_embedding.weight
    assert table.std().item() == pytest.approx(0.05, rel=0.1)
    assert (model.midibert.embeddings.LayerNorm.weight == 1).all() and (model.recoverer[3].bias == 0).all()


def test_stock_trainer_averages_classification_losses_over_accumulation(tmp_path):
    """The heads return a mean loss: a stock Trainer must then divide by the accumulation steps itself."""
    from transformers import Trainer, TrainingArguments

    from modeling_adversarial_midibert import (
        AdversarialMidiBertForSequenceClassification,
        AdversarialMidiBertForTokenClassification,
    )

    args = TrainingArguments(str(tmp_path), report_to="none", use_cpu=True, gradient_accumulation_steps=2)
    config = AdversarialMidiBertConfig.from_preset("tiny", num_labels=2)
    for head in (AdversarialMidiBertForSequenceClassification, AdversarialMidiBertForTokenClassification):
        assert Trainer(model=head(config), args=args).model_accepts_loss_kwargs is False


# --- rotary positions, pitch-class sharing, sparse recoverer ------------------------------------------------------


def test_rotary_scores_depend_on_the_distance_only():
    cos, sin = rotary_cos_sin(40, 8, 10000.0, "cpu", torch.float64)
    q, k = torch.randn(8, dtype=torch.float64), torch.randn(8, dtype=torch.float64)
    rotated_q, rotated_k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)  # (40, 8): every position
    scores = rotated_q @ rotated_k.T
    for distance in (-7, 0, 3, 20):
        diagonal = torch.diagonal(scores, offset=distance)
        assert torch.allclose(diagonal, diagonal[0].expand_as(diagonal))
    assert torch.allclose(scores[0, 0], q @ k)  # position 0 is not rotated
    assert not torch.allclose(scores[0, 1], scores[0, 5])


def test_rotary_model_has_no_position_parameters_and_sees_order():
    config = tiny_config(position_embedding_type="rotary")
    model = build(AdversarialMidiBertModel, config)
    assert not [name for name, _ in model.named_parameters() if "position" in name or "distance" in name]
    with torch.no_grad():  # sharpen attention: at init (std 0.02) every score is ~0 and order barely shows
        for layer in model.encoder.layer:
            layer.attention.self.query.weight.mul_(30)
            layer.attention.self.key.weight.mul_(30)
    ids, _ = window_batch(config, [6])
    swapped = ids.clone()
    swapped[0, [2, 4]] = ids[0, [4, 2]]
    hidden, hidden_swapped = (model(input_ids=x).last_hidden_state[0] for x in (ids, swapped))
    # the same notes at other places: a position-blind encoder would give notes 2 and 4 swapped vectors
    assert not torch.allclose(hidden[2], hidden_swapped[4], atol=1e-2)


def test_rotary_needs_an_even_head_width():
    with pytest.raises(ValueError, match="must be even"):
        AdversarialMidiBertConfig.from_preset("tiny", position_embedding_type="rotary", hidden_size=132,
                                              num_attention_heads=4)


def test_pitch_class_sharing_ties_every_octave_of_a_class():
    config = tiny_config(pitch_class_sharing=True)
    model = build(AdversarialMidiBertForPreTraining, config)
    embeddings = model.midibert.embeddings
    with torch.no_grad():
        embeddings.attribute_embeddings[3].weight.zero_()
        embeddings.octave_embeddings.weight.zero_()
    pitch = embeddings.attribute_embeddings[3]
    rows = lambda ids: pitch(ids) + embeddings.pitch_class_embeddings(ids % 12) + embeddings.octave_embeddings(ids // 12)
    assert torch.equal(rows(torch.tensor(60)), rows(torch.tensor(72)))  # C4 and C5: the same class row
    assert not torch.equal(rows(torch.tensor(60)), rows(torch.tensor(61)))
    head = model.recoverer[3]
    hidden = torch.randn(5, config.hidden_size)
    before = head(hidden)
    with torch.no_grad():
        head.pitch_class.bias[4] += 1.0  # evidence for "an E"
    moved = (head(hidden) - before).abs() > 1e-6
    e_ids = [p for p in range(config.vocab_sizes[3]) if p < 128 and p % 12 == 4]
    assert moved[:, e_ids].all() and moved.sum() == 5 * len(e_ids)  # drums (128+) and specials are not E
    with torch.no_grad():
        head.octave.bias[11] += 1.0  # the "none" octave: drum and special ids only
    assert ((head(hidden) - before).abs() > 1e-6)[:, 128:].all()


def test_pitch_class_sharing_survives_a_save_and_load(tmp_path):
    config = tiny_config(pitch_class_sharing=True, position_embedding_type="rotary")
    model = build(AdversarialMidiBertForPreTraining, config)
    model.save_pretrained(tmp_path)
    loaded = AdversarialMidiBertForPreTraining.from_pretrained(tmp_path).eval()
    ids, mask = window_batch(config, [9, 4])
    assert torch.allclose(model.midibert(ids, attention_mask=mask).last_hidden_state,
                          loaded.midibert(ids, attention_mask=mask).last_hidden_state, atol=1e-6)
    hidden = torch.randn(3, config.hidden_size)
    assert torch.allclose(model.recoverer[3](hidden), loaded.recoverer[3](hidden))


def test_pre_layer_norm_normalises_each_sublayer_input_and_the_output():
    config = tiny_config(layer_norm_position="pre", position_embedding_type="rotary")
    model = build(AdversarialMidiBertModel, config)
    ids, mask = window_batch(config, [7, 3])
    out = model(ids, attention_mask=mask, output_hidden_states=True)
    x = out.hidden_states[0]
    for layer in model.encoder.layer:  # x + attention(LN(x)), then h + feed_forward(LN(h)): no norm on the sum
        attention = layer.attention
        attended = attention.self(attention.output.LayerNorm(x), mask.bool()[:, None, None, :])[0]
        h = x + attention.output.dense(attended)
        x = h + layer.output.dense(layer.intermediate(layer.output.LayerNorm(h)))
    assert torch.allclose(out.last_hidden_state, model.encoder.final_layer_norm(x), atol=1e-5)
    assert torch.equal(out.hidden_states[-1], out.last_hidden_state)
    # post-LN (the default, the paper's) has no final norm, so BERT-layout checkpoints keep their keys
    post = build(AdversarialMidiBertModel, tiny_config())
    assert post.encoder.final_layer_norm is None
    assert {n for n, _ in model.named_parameters()} - {n for n, _ in post.named_parameters()} == {
        "encoder.final_layer_norm.weight", "encoder.final_layer_norm.bias"}


def test_pre_layer_norm_survives_a_save_and_load_and_ignores_padding(tmp_path):
    config = tiny_config(layer_norm_position="pre", position_embedding_type="rotary")
    model = build(AdversarialMidiBertForPreTraining, config)
    with torch.no_grad():
        model.midibert.encoder.final_layer_norm.weight.uniform_(0.5, 1.5)  # not the init, so a lost load shows
    model.save_pretrained(tmp_path)
    loaded = AdversarialMidiBertForPreTraining.from_pretrained(tmp_path).eval()
    assert loaded.config.layer_norm_position == "pre"
    ids, mask = window_batch(config, [9, 4])
    hidden = model.midibert(ids, attention_mask=mask).last_hidden_state
    assert torch.allclose(hidden, loaded.midibert(ids, attention_mask=mask).last_hidden_state, atol=1e-6)
    alone = model.midibert(ids[1:, :6], attention_mask=mask[1:, :6]).last_hidden_state
    assert torch.allclose(hidden[1, :6], alone[0], atol=1e-5)


def test_recoverer_logits_cover_the_chosen_notes_only():
    config = tiny_config()
    model = build(AdversarialMidiBertForPreTraining, config)
    ids, mask = window_batch(config, [30, 12])
    out = model(input_ids=ids, attention_mask=mask, masking="random", generator=torch.Generator().manual_seed(2))
    chosen = out.chosen_mask
    assert [logits.shape for logits in out.logits] == [(int(chosen.sum()), size) for size in config.vocab_sizes]
    # row i of every attribute's logits belongs to the i-th chosen note in row-major order
    targets = ids[chosen]
    losses = sum(F.cross_entropy(out.logits[j], targets[:, j], reduction="none") for j in range(8)) / 8
    assert torch.allclose(out.note_losses[chosen], losses, atol=1e-5)
