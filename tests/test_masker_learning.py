"""What makes the masker learn and what measures it: exploration picks, window-standardised features, the masker
head's learning rate, the pairwise AUC, the fixed random-masking probe and the masking controls."""
import numpy as np
import pytest
import torch
from conftest import SAMPLE_MIDI, tiny_config, window_batch
from transformers import TrainingArguments

from adversarial_midibert.data.dataset import build_window_dataset, find_midi_files
from adversarial_midibert.pretraining.masker_metrics import auc, pairwise_auc_counts
from adversarial_midibert.pretraining.trainer import AdversarialTrainer
from modeling_adversarial_midibert import (
    AdversarialMidiBertForPreTraining,
    _standardise_over_notes,
    choose_adversarial_notes,
    choose_notes,
)
from tokenization_octuple import OctupleTokenizer


# ------------------------------------------------------------------ AUC on hand-built scores


def test_auc_is_one_for_a_perfect_ranking_zero_reversed_and_half_for_constant_scores():
    losses = torch.tensor([[5.0, 4.0, 3.0, 2.0, 1.0, 0.0]])
    positive = torch.tensor([[True, True, False, False, False, False]])
    negative = torch.tensor([[False, False, False, False, True, True]])
    assert auc(*pairwise_auc_counts(losses, positive, negative)) == 1.0
    assert auc(*pairwise_auc_counts(-losses, positive, negative)) == 0.0
    assert auc(*pairwise_auc_counts(torch.zeros_like(losses), positive, negative)) == 0.5


def test_auc_pairs_never_cross_sequences():
    # Sequence 0's positive scores below sequence 1's negative: pooled across windows that would be a wrong
    # order, but only pairs inside one window count, and both windows are ordered right.
    scores = torch.tensor([[1.0, 0.0], [10.0, 9.0]])
    positive = torch.tensor([[True, False], [True, False]])
    negative = torch.tensor([[False, True], [False, True]])
    concordant, pairs = pairwise_auc_counts(scores, positive, negative)
    assert (float(concordant), float(pairs)) == (2.0, 2.0)
    assert np.isnan(auc(0.0, 0.0))


# ------------------------------------------------------------------ the choice with exploration


def test_exploration_keeps_the_count_takes_top_scores_and_draws_the_rest_from_the_others():
    scores = torch.arange(40, dtype=torch.float32).flip(0).repeat(3, 1)  # note 0 scores highest
    selectable = torch.ones(3, 40, dtype=torch.bool)
    selectable[1, :4] = False  # frozen notes can never be chosen, by the masker or at random
    real = torch.full((3,), 40)
    generator = torch.Generator().manual_seed(0)
    chosen, explored = choose_adversarial_notes(scores, selectable, real, 25, random_share=0.4, generator=generator)
    plain = choose_notes(scores, selectable, real, 25)
    assert torch.equal(chosen.sum(-1), plain.sum(-1))  # p % of the real notes, as without exploration
    assert explored.sum(-1).tolist() == [4, 4, 4]  # round(0.4 * 10)
    own = chosen & ~explored
    assert own[0, :6].all() and own[1, 4:10].all()  # the masker's picks are its top 6 selectable scores
    assert not (chosen & ~selectable).any()
    assert not (explored & own).any()
    # Random picks differ between sequences that the masker scores identically.
    assert not torch.equal(explored[0], explored[2])
    none_explored = choose_adversarial_notes(scores, selectable, real, 25, random_share=0.0)
    assert torch.equal(none_explored[0], plain) and not none_explored[1].any()


def test_the_model_ranks_by_logits_so_saturated_probabilities_do_not_tie():
    # float32 sigmoid rounds every logit above ~16.7 to exactly 1.0; a choice by probability would then take
    # the earliest notes. Ranked by logits, the masker's top notes are the highest logits.
    logits = torch.tensor([[17.0, 18.0, 19.0, 20.0, 21.0, 22.0, 23.0, 24.0, 25.0, 26.0]])
    assert bool((torch.sigmoid(logits) == 1.0).all())
    chosen, _ = choose_adversarial_notes(logits, torch.ones_like(logits, dtype=torch.bool), torch.tensor([10]), 20)
    assert chosen[0].nonzero().flatten().tolist() == [8, 9]


def test_window_standardisation_ignores_padding_and_the_common_part_of_every_note():
    hidden = torch.randn(2, 6, 4, generator=torch.Generator().manual_seed(0)) + 100 * torch.tensor([11.0, -3.0, 0.5, 2.0])  # a large common vector
    notes = torch.tensor([[False, True, True, True, True, False], [False, True, True, False, False, False]])
    out = _standardise_over_notes(hidden, notes)
    for b in range(2):
        kept = out[b][notes[b]]
        torch.testing.assert_close(kept.mean(0), torch.zeros(4), atol=1e-4, rtol=0)
        torch.testing.assert_close(kept.std(0, correction=0), torch.ones(4), atol=1e-2, rtol=0)
    # Padding rows do not move the statistics of the real notes.
    changed = hidden.clone()
    changed[:, -1] = 1e4
    torch.testing.assert_close(_standardise_over_notes(changed, notes)[notes], out[notes])


@pytest.mark.parametrize("updates_backbone", [True, False])
def test_masker_features_come_from_the_configured_layer(updates_backbone):
    config = tiny_config(masker_feature_layer=0, masker_updates_backbone=updates_backbone)
    model = AdversarialMidiBertForPreTraining(config).eval()
    ids, mask = window_batch(config, [20, 12])
    with torch.no_grad():
        embeddings = model.midibert(ids, attention_mask=mask, output_hidden_states=True).hidden_states[0]
        notes = model._note_mask(ids, mask)
        expected = model.masker(embeddings, notes).masked_fill(~notes, float("-inf"))
        torch.testing.assert_close(model.masking_logits(ids, mask), expected)
        out = model(input_ids=ids, attention_mask=mask, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out.masker_logits[notes], expected[notes])


# ------------------------------------------------------------------ the trainer


def _args(tmp_path, **overrides):
    fields = dict(output_dir=str(tmp_path / "run"), per_device_train_batch_size=4, per_device_eval_batch_size=8,
                  max_steps=2, learning_rate=1e-3, logging_steps=1, report_to="none", use_cpu=True,
                  save_strategy="no", disable_tqdm=True, seed=3)
    return TrainingArguments(**{**fields, **overrides})


@pytest.fixture(scope="module")
def sample_windows():
    tok = OctupleTokenizer(max_length=64)
    windows, _ = build_window_dataset(find_midi_files(SAMPLE_MIDI / "pop909")[:3], tok)
    return tok, windows


def test_masker_head_learns_at_its_own_scale_of_the_learning_rate(tmp_path, sample_windows):
    tok, windows = sample_windows
    model = AdversarialMidiBertForPreTraining(tiny_config(masker_lr_scale=10.0))
    trainer = AdversarialTrainer(model=model, args=_args(tmp_path), train_dataset=windows, processing_class=tok)
    optimizer = trainer.create_optimizer()
    masker = {id(p) for p in model.masker.parameters()}
    by_lr = {}
    for group in optimizer.param_groups:
        for p in group["params"]:
            by_lr.setdefault(id(p) in masker, set()).add(group["lr"])
    assert {k: sorted(v) for k, v in by_lr.items()} == {False: [1e-3], True: [pytest.approx(1e-2)]}
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(list(model.parameters()))


def test_random_recovery_probe_masks_the_same_notes_for_every_model_and_mode(tmp_path, sample_windows):
    tok, windows = sample_windows
    train, held_out = windows.select(range(6)), windows.select(range(6, len(windows)))
    results = []
    for seed, masking in ((0, "adversarial"), (1, "random"), (2, "random_freeze")):
        torch.manual_seed(seed)
        model = AdversarialMidiBertForPreTraining(tiny_config())
        trainer = AdversarialTrainer(model=model, args=_args(tmp_path), train_dataset=train, eval_dataset=held_out,
                                     processing_class=tok, masking=masking)
        results.append((masking, trainer.evaluate(), trainer.evaluate()))
    for masking, first, second in results:
        assert first["eval_random_recovery_accuracy"] == second["eval_random_recovery_accuracy"]
        assert first["eval_random_masked_notes"] == results[0][1]["eval_random_masked_notes"] > 0
        assert ("eval_masker_auc" in first) == (masking == "adversarial")
    assert 0.0 <= results[0][1]["eval_masker_auc"] <= 1.0
    # Different weights recover differently: the probe measures the model, not only the data.
    assert len({r[1]["eval_random_recovery_accuracy"] for r in results}) > 1


def test_random_freeze_control_freezes_from_random_scores_and_never_chooses_frozen_notes(tmp_path, sample_windows):
    tok, windows = sample_windows
    model = AdversarialMidiBertForPreTraining(tiny_config(masking="random_freeze"))
    trainer = AdversarialTrainer(model=model, args=_args(tmp_path), train_dataset=windows, processing_class=tok)
    trainer.update_freeze_book()
    assert trainer.freeze_book.frozen_fraction() == pytest.approx(0.27, abs=0.02)
    batch = trainer.data_collator([windows[i] for i in range(4)])
    real = trainer._real_notes(batch)
    selectable = trainer._selectable(batch, real)
    assert (real & ~selectable).any()
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], selectable_mask=selectable,
                masking="random_freeze", generator=torch.Generator().manual_seed(0))
    assert out.num_chosen > 0 and not (out.chosen_mask & ~selectable).any()


def test_training_logs_say_how_well_the_masker_ranks_and_when_freezing_caps_the_choice(tmp_path, sample_windows):
    tok, windows = sample_windows
    model = AdversarialMidiBertForPreTraining(tiny_config())
    trainer = AdversarialTrainer(model=model, args=_args(tmp_path), train_dataset=windows, processing_class=tok)
    # Freeze 95 % of every song: most windows then hold fewer selectable notes than p % of their notes.
    for row in range(len(trainer.freeze_book)):
        n = int(trainer.freeze_book.num_notes[row])
        trainer.freeze_book.set_frozen(row, np.arange(n) % 20 != 0)
    trainer.train()
    logs = [h for h in trainer.state.log_history if "masker_auc" in h]
    assert logs and all(0.0 <= h["masker_auc"] <= 1.0 for h in logs)
    assert all(h["capped_fraction"] > 0.5 for h in logs)


def test_masker_defaults_follow_the_mode_and_explicit_values_win():
    backbone, head = tiny_config(), tiny_config(masker_updates_backbone=False)
    assert (backbone.masker_feature_index, backbone.masker_learning_rate_scale) == (backbone.num_hidden_layers, 1.0)
    assert (head.masker_feature_index, head.masker_learning_rate_scale) == (0, 20.0)
    explicit = tiny_config(masker_updates_backbone=False, masker_feature_layer=1, masker_lr_scale=2.0)
    assert (explicit.masker_feature_index, explicit.masker_learning_rate_scale) == (1, 2.0)
    with pytest.raises(ValueError, match="masker_feature_layer"):
        tiny_config(masker_feature_layer=3)


def test_per_sequence_auc_counts_add_up_to_the_totals():
    scores = torch.randn(4, 12, generator=torch.Generator().manual_seed(1))
    positive = torch.zeros(4, 12, dtype=torch.bool)
    negative = torch.zeros(4, 12, dtype=torch.bool)
    positive[:, :3], negative[:, 6:8] = True, True
    positive[3] = False  # a window with nothing to rank counts no pair
    concordant, pairs = pairwise_auc_counts(scores, positive, negative, per_sequence=True)
    assert pairs.tolist() == [6.0, 6.0, 6.0, 0.0]
    totals = pairwise_auc_counts(scores, positive, negative)
    assert float(concordant.sum()) == float(totals[0]) and float(pairs.sum()) == float(totals[1])
