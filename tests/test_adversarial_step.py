"""The adversarial pre-training step: the pure selection / corruption / masker-target functions on hand-built
batches (SPEC.md steps 1-5), then the whole step as `AdversarialMidiBertForPreTraining.forward` runs it."""
import pytest
import torch
import torch.nn.functional as F

from conftest import tiny_config, window_batch
from modeling_adversarial_midibert import (
    AdversarialMidiBertForPreTraining,
    AdversarialMidiBertForTokenClassification,
    choose_notes,
    corrupt_notes,
    fine_tuning_inputs,
    masker_targets,
    real_note_mask,
)

REGULAR = (256, 128, 129, 256, 128, 32, 254, 49)
MASK = tuple(n + 1 for n in REGULAR)


# --- choose_notes -------------------------------------------------------------------------------------------


def test_choose_notes_takes_top_scores_among_selectable_only():
    scores = torch.tensor([[0.0, 0.9, 0.8, 0.99, 0.1, 0.7, 0.0]])
    selectable = torch.tensor([[False, True, True, False, True, True, False]])  # 0/6 BOS/EOS, 3 frozen
    chosen = choose_notes(scores, selectable, torch.tensor([5]), 40)  # round(0.4 * 5) = 2
    assert chosen.tolist() == [[False, True, True, False, False, False, False]]


def test_choose_notes_count_rounds_half_up_with_at_least_one():
    scores = torch.rand(4, 30, generator=torch.Generator().manual_seed(1))
    selectable = torch.zeros(4, 30, dtype=torch.bool)
    real = torch.tensor([10, 3, 20, 1])
    for b, n in enumerate(real.tolist()):
        selectable[b, 1 : n + 1] = True
    chosen = choose_notes(scores, selectable, real, 15)
    # 15 % of 10 = 1.5 -> 2; of 3 = 0.45 -> 0 -> at least 1; of 20 = 3; of 1 = 0.15 -> 1
    assert chosen.sum(-1).tolist() == [2, 1, 3, 1]
    assert not (chosen & ~selectable).any()


def test_choose_notes_counts_real_notes_but_caps_at_selectable():
    scores = torch.rand(2, 12)
    selectable = torch.zeros(2, 12, dtype=torch.bool)
    selectable[0, 1:3] = True  # 10 real notes, only 2 not frozen
    chosen = choose_notes(scores, selectable, torch.tensor([10, 10]), 50)
    assert chosen.sum(-1).tolist() == [2, 0]  # the second sequence has every note frozen


def test_choose_notes_zero_percent_chooses_nothing():
    assert not choose_notes(torch.rand(2, 5), torch.ones(2, 5, dtype=torch.bool), torch.tensor([5, 5]), 0).any()


# --- corrupt_notes ------------------------------------------------------------------------------------------


def _chosen_batch(batch=8, length=50, seed=0):
    generator = torch.Generator().manual_seed(seed)
    ids = torch.stack([torch.randint(0, n, (batch, length), generator=generator) for n in REGULAR], -1)
    chosen = torch.rand(batch, length, generator=generator) < 0.5
    return ids, chosen


def test_corrupt_notes_masks_every_attribute_of_chosen_and_leaves_others():
    ids, chosen = _chosen_batch()
    out = corrupt_notes(ids, chosen, MASK, REGULAR, mask_token_ratio=1.0, random_token_ratio=0.0)
    assert (out[chosen] == torch.tensor(MASK)).all()
    assert torch.equal(out[~chosen], ids[~chosen])
    assert torch.equal(ids, _chosen_batch()[0])  # input not modified in place


def test_corrupt_notes_random_ids_are_regular_ids_only():
    ids, chosen = _chosen_batch(batch=64, length=64)
    out = corrupt_notes(ids, chosen, MASK, REGULAR, mask_token_ratio=0.0, random_token_ratio=1.0,
                        generator=torch.Generator().manual_seed(3))
    assert (out < torch.tensor(REGULAR)).all()  # never PAD / MASK / BOS / EOS
    assert (out[chosen] != ids[chosen]).float().mean() > 0.9  # random ids, not copies
    assert torch.equal(out[~chosen], ids[~chosen])
    # every regular id of the smallest table is reachable, including the last one
    assert set(out[chosen][:, 5].tolist()) == set(range(REGULAR[5]))


def test_corrupt_notes_split_follows_ratios_and_keeps_the_rest():
    ids, _ = _chosen_batch(batch=100, length=100)
    chosen = torch.ones(100, 100, dtype=torch.bool)
    out = corrupt_notes(ids, chosen, MASK, REGULAR, 0.8, 0.1, generator=torch.Generator().manual_seed(0))
    masked = (out == torch.tensor(MASK)).all(-1).float().mean().item()
    kept = (out == ids).all(-1).float().mean().item()
    assert masked == pytest.approx(0.8, abs=0.02)
    assert kept == pytest.approx(0.1, abs=0.02)


def test_corrupt_notes_is_reproducible_with_a_generator():
    ids, chosen = _chosen_batch()
    one = corrupt_notes(ids, chosen, MASK, REGULAR, generator=torch.Generator().manual_seed(7))
    two = corrupt_notes(ids, chosen, MASK, REGULAR, generator=torch.Generator().manual_seed(7))
    other = corrupt_notes(ids, chosen, MASK, REGULAR, generator=torch.Generator().manual_seed(8))
    assert torch.equal(one, two) and not torch.equal(one, other)


# --- masker_targets -----------------------------------------------------------------------------------------


def test_masker_targets_top_gets_one_bottom_gets_zero_per_sequence():
    losses = torch.tensor([
        [9.0, 1.0, 5.0, 3.0, 2.0, 8.0, 4.0, 7.0, 6.0, 0.5, 100.0],
        [1.0, 2.0, 3.0, 4.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
    ])
    chosen = torch.ones(2, 11, dtype=torch.bool)
    chosen[0, 10] = False  # an unchosen note with the highest loss never gets a target
    chosen[1, 4:] = False
    targets, has_target = masker_targets(losses, chosen, 30)
    # sequence 0: 10 chosen -> 3 each: top {9, 8, 7} -> 1, bottom {0.5, 1, 2} -> 0
    assert has_target[0].nonzero().flatten().tolist() == [0, 1, 4, 5, 7, 9]
    assert targets[0, [0, 5, 7]].tolist() == [1, 1, 1] and targets[0, [1, 4, 9]].tolist() == [0, 0, 0]
    # sequence 1: 4 chosen -> round(1.2) = 1 each
    assert has_target[1].nonzero().flatten().tolist() == [0, 3]
    assert targets[1, 3] == 1 and targets[1, 0] == 0


def test_masker_targets_need_two_chosen_notes_and_never_overlap():
    losses = torch.tensor([[3.0, 1.0, 2.0], [1.0, 2.0, 0.0], [5.0, 0.0, 0.0]])
    chosen = torch.tensor([[True, True, True], [True, True, False], [True, False, False]])
    targets, has_target = masker_targets(losses, chosen, 50)
    assert has_target.sum(-1).tolist() == [2, 2, 0]  # 3 chosen: 1 each (half, rounded down); 1 chosen: none
    assert targets[0].tolist() == [1, 0, 0] and has_target[0].tolist() == [True, True, False]
    assert targets[1].tolist() == [0, 1, 0]


# --- real notes and fine-tuning inputs ----------------------------------------------------------------------


def test_real_note_mask_excludes_bos_eos_pad():
    config = tiny_config()
    ids, mask = window_batch(config, [3, 1])
    assert real_note_mask(ids, mask, 256).tolist() == [[False, True, True, True, False],
                                                      [False, True, False, False, False]]


def test_fine_tuning_masks_only_in_training_and_hides_attributes_always():
    config = tiny_config(finetune_mask_percent=20, hidden_attributes=["velocity"])
    ids, mask = window_batch(config, [20, 10], seed=1)
    notes = real_note_mask(ids, mask, 256)
    for training in (False, True):
        new_ids, out_notes, masked = fine_tuning_inputs(ids, mask, config, training, torch.Generator().manual_seed(0))
        assert torch.equal(out_notes, notes)
        assert (new_ids[..., 5][notes] == config.mask_token_ids[5]).all()  # velocity hidden on every note
        assert torch.equal(new_ids[~notes], ids[~notes])  # BOS / EOS / PAD untouched
        if training:
            assert masked.sum(-1).tolist() == [4, 2]
            assert (new_ids[masked] == torch.tensor(config.mask_token_ids)).all()
        else:
            assert not masked.any()
            assert torch.equal(new_ids[..., :5], ids[..., :5]) and torch.equal(new_ids[..., 6:], ids[..., 6:])


def test_token_classification_ignores_masked_notes_in_the_loss():
    config = tiny_config(num_labels=3, finetune_mask_percent=30, hidden_dropout_prob=0.0,
                         attention_probs_dropout_prob=0.0)
    torch.manual_seed(0)
    model = AdversarialMidiBertForTokenClassification(config).train()
    ids, mask = window_batch(config, [12, 7])
    labels = torch.randint(0, 3, mask.shape).masked_fill(~real_note_mask(ids, mask, 256), -100)
    out = model(input_ids=ids, attention_mask=mask, labels=labels, generator=torch.Generator().manual_seed(5))
    _, _, masked = fine_tuning_inputs(ids, mask, config, True, torch.Generator().manual_seed(5))
    assert masked.any()
    kept = labels.masked_fill(masked, -100)
    expected = F.cross_entropy(out.logits.flatten(0, 1), kept.flatten(), ignore_index=-100)
    assert torch.allclose(out.loss, expected)
    assert not torch.allclose(out.loss, F.cross_entropy(out.logits.flatten(0, 1), labels.flatten(), ignore_index=-100))


# --- the whole step ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pretraining_model():
    torch.manual_seed(0)
    return AdversarialMidiBertForPreTraining(tiny_config()).eval()  # dropout off: repeated forwards agree


def test_step_chooses_p_percent_of_real_selectable_notes(pretraining_model):
    config = pretraining_model.config
    ids, mask = window_batch(config, [40, 20, 7], total=45)
    selectable = real_note_mask(ids, mask, 256)
    selectable[0, 1:30] = False  # frozen notes
    out = pretraining_model(input_ids=ids, attention_mask=mask, selectable_mask=selectable,
                            generator=torch.Generator().manual_seed(0))
    assert out.chosen_mask.sum(-1).tolist() == [6, 3, 1]  # round(15 % of 40, 20, 7)
    assert not (out.chosen_mask & ~selectable).any()
    assert out.num_chosen.item() == 10
    # masker probabilities on real notes only; the masker's own picks = its highest logits among the selectable
    # notes, the rest (masker_random_share of the count) drawn at random from the other selectable notes
    assert (out.masker_probabilities[~real_note_mask(ids, mask, 256)] == 0).all()
    assert out.explored_mask.sum(-1).tolist() == [3, 2, 1]  # round half up of 0.5 x (6, 3, 1)
    assert not (out.explored_mask & ~out.chosen_mask).any()
    logits = out.masker_logits.masked_fill(~selectable, float("-inf"))
    own = out.chosen_mask & ~out.explored_mask
    for b in range(3):
        k = int(own[b].sum())
        assert set(logits[b].topk(k).indices.tolist()) == set(own[b].nonzero().flatten().tolist())


def test_step_losses_follow_equations_1_and_3(pretraining_model):
    config = pretraining_model.config
    ids, mask = window_batch(config, [30, 25], seed=3)
    weights = torch.tensor([0.3, 0.1, 0.1, 0.2, 0.1, 0.1, 0.05, 0.05])
    out = pretraining_model(input_ids=ids, attention_mask=mask, attribute_weights=weights,
                            generator=torch.Generator().manual_seed(1))
    chosen = out.chosen_mask
    per_note = sum(
        weights[j] * F.cross_entropy(out.logits[j], ids[..., j][chosen], reduction="none") for j in range(8)
    )
    assert torch.allclose(out.note_losses[chosen], per_note.detach(), atol=1e-5)
    assert (out.note_losses[~chosen] == 0).all()
    assert torch.allclose(out.recoverer_loss, per_note.sum() / chosen.sum(), atol=1e-5)
    targets, has_target = masker_targets(out.note_losses, chosen, config.masker_target_percent)
    expected = F.binary_cross_entropy(out.masker_probabilities[has_target], targets[has_target])
    assert torch.allclose(out.masker_loss, expected, atol=1e-5)
    assert torch.allclose(out.loss, out.recoverer_loss + out.masker_loss)
    correct = torch.stack([(out.logits[j].argmax(-1) == ids[..., j][chosen]).sum() for j in range(8)])
    assert torch.equal(out.attribute_correct, correct)
    halved = pretraining_model(input_ids=ids, attention_mask=mask, attribute_weights=weights,
                               num_items_in_batch=2 * chosen.sum(), generator=torch.Generator().manual_seed(1))
    assert torch.allclose(halved.recoverer_loss, out.recoverer_loss / 2, atol=1e-5)


def test_step_works_on_a_batch_of_one(pretraining_model):
    config = pretraining_model.config
    for length in (1, 2, 9):
        ids, mask = window_batch(config, [length])
        out = pretraining_model(input_ids=ids, attention_mask=mask)
        out.loss.backward()
        assert out.num_chosen.item() == 1 and torch.isfinite(out.loss)
    pretraining_model.zero_grad()


def _grads(model):
    return {name: None if p.grad is None else p.grad.clone() for name, p in model.named_parameters()}


def test_every_parameter_takes_part_in_every_mode():
    """DDP with find_unused_parameters=False needs a gradient (possibly zero) on every parameter."""
    torch.manual_seed(0)
    model = AdversarialMidiBertForPreTraining(tiny_config())
    ids, mask = window_batch(model.config, [15, 10])
    labels = torch.full_like(ids, -100)
    labels[:, 2] = ids[:, 2]
    for kwargs in ({}, {"masking": "random"}, {"labels": labels}):
        model.zero_grad(set_to_none=True)
        model(input_ids=ids, attention_mask=mask, generator=torch.Generator().manual_seed(0), **kwargs).loss.backward()
        grads = _grads(model)
        assert all(g is not None for g in grads.values()), [n for n, g in grads.items() if g is None]
        masker_zero = all((g == 0).all() for n, g in grads.items() if n.startswith("masker."))
        assert masker_zero == bool(kwargs)  # the masker learns only in adversarial mode


def test_random_mode_is_uniform_and_reproducible():
    torch.manual_seed(0)
    model = AdversarialMidiBertForPreTraining(tiny_config(masking="random")).eval()
    ids, mask = window_batch(model.config, [40, 40])
    one = model(input_ids=ids, attention_mask=mask, generator=torch.Generator().manual_seed(4))
    two = model(input_ids=ids, attention_mask=mask, generator=torch.Generator().manual_seed(4))
    other = model(input_ids=ids, attention_mask=mask, generator=torch.Generator().manual_seed(5))
    assert torch.equal(one.chosen_mask, two.chosen_mask) and torch.equal(one.loss, two.loss)
    assert not torch.equal(one.chosen_mask, other.chosen_mask)
    assert one.masker_probabilities is None and one.masker_loss.item() == 0


@pytest.mark.parametrize("updates_backbone", [True, False])
def test_masker_updates_backbone_switch(updates_backbone):
    torch.manual_seed(0)
    config = tiny_config(masker_updates_backbone=updates_backbone, hidden_dropout_prob=0.0,
                         attention_probs_dropout_prob=0.0)
    model = AdversarialMidiBertForPreTraining(config)
    ids, mask = window_batch(config, [30, 30])
    out = model(input_ids=ids, attention_mask=mask, generator=torch.Generator().manual_seed(0))
    assert out.masker_loss > 0
    backbone = [p for p in model.midibert.parameters()]
    grads = torch.autograd.grad(out.masker_loss, backbone + list(model.masker.parameters()), allow_unused=True)
    backbone_norm = sum(0.0 if g is None else g.norm().item() for g in grads[: len(backbone)])
    assert all(g is not None and g.norm() > 0 for g in grads[len(backbone):])  # the masker head always learns
    assert (backbone_norm > 0) == updates_backbone


def test_head_only_masker_sees_the_features_it_is_scored_on():
    """With `masker_updates_backbone=False` the clean pass runs without dropout, so the masker head is trained on
    the same features that score the training set for freezing (eval mode), and the backbone stays in training."""
    torch.manual_seed(0)
    config = tiny_config(masker_updates_backbone=False, hidden_dropout_prob=0.3, attention_probs_dropout_prob=0.3)
    model = AdversarialMidiBertForPreTraining(config).train()
    ids, mask = window_batch(config, [30, 12])
    out = model(input_ids=ids, attention_mask=mask, generator=torch.Generator().manual_seed(0))
    assert model.training and model.midibert.training
    model.eval()
    with torch.no_grad():
        scored = model.masking_probabilities(ids, mask)
    torch.testing.assert_close(out.masker_probabilities, scored, rtol=0, atol=1e-6)
