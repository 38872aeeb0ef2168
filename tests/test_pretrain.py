"""Single-process pre-training: presets, eq. 2 weights, frozen notes, loss scaling, evaluation, the script."""
import copy
import json

import numpy as np
import pytest
import torch
from conftest import SAMPLE_MIDI
from transformers import AutoModel, AutoTokenizer, TrainingArguments

from adversarial_midibert.presets import load_preset
from adversarial_midibert.pretraining.arguments import parse_pretraining_args
from adversarial_midibert.data.dataset import build_window_dataset, find_midi_files
from adversarial_midibert.pretraining.run import main
from adversarial_midibert.pretraining.trainer import ATTRIBUTES, AdversarialTrainer, attribute_weights_from_accuracy
from configuration_adversarial_midibert import AdversarialMidiBertConfig
from modeling_adversarial_midibert import AdversarialMidiBertForPreTraining
from tokenization_octuple import OctupleTokenizer


def tiny_model(seed=0, **overrides):
    torch.manual_seed(seed)
    config = AdversarialMidiBertConfig.from_preset(
        "tiny", hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
        attribute_embedding_size=8, masker_hidden_size=16, **overrides,
    )
    return AdversarialMidiBertForPreTraining(config)


def training_args(tmp_path, **overrides):
    kwargs = dict(output_dir=str(tmp_path / "run"), use_cpu=True, report_to="none", disable_tqdm=True,
                  save_strategy="no", per_device_train_batch_size=4, per_device_eval_batch_size=8, logging_steps=1,
                  seed=0, learning_rate=1e-3)
    kwargs.update(overrides)
    return TrainingArguments(**kwargs)


@pytest.fixture(scope="module")
def tok():
    return OctupleTokenizer(max_length=48)


@pytest.fixture(scope="module")
def windows(tok):
    ds, _ = build_window_dataset(find_midi_files(SAMPLE_MIDI / "emopia")[:4], tok)
    return ds


class RecordingTrainer(AdversarialTrainer):
    """Keeps what every forward saw and returned, to check the trainer's bookkeeping from outside."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.records = []

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss, outputs = super().compute_loss(model, inputs, True, num_items_in_batch)
        record = {"training": model.training, "epoch": self.epochs_closed,
                  "correct": outputs.attribute_correct.detach().clone(), "chosen": outputs.chosen_mask.clone(),
                  "num_chosen": int(outputs.num_chosen), "attention_mask": inputs["attention_mask"].clone(),
                  "input_ids": inputs["input_ids"].clone(), "masker_probabilities": outputs.masker_probabilities}
        if model.training:
            record.update(selectable=inputs["selectable_mask"].clone(), song_index=inputs["song_index"].clone(),
                          window_start=inputs["window_start"].clone(),
                          book_bits=self.freeze_book.bits.copy(), weights=self.attribute_weights.clone())
        self.records.append(record)
        return (loss, outputs) if return_outputs else loss


def test_presets_parse_and_command_line_wins(tmp_path):
    tiny = load_preset("tiny")
    assert tiny["model"]["config_preset"] == "tiny" and "num_train_epochs" in tiny["training"]
    assert load_preset("paper")["data"]["max_length"] == 1024
    model_args, data_args, args = parse_pretraining_args(["--max_length", "64", "--num_train_epochs", "2"])
    assert data_args.max_length == 64 and args.num_train_epochs == 2
    assert args.learning_rate == tiny["training"]["learning_rate"] and args.output_dir == "runs/pretrain"
    with pytest.raises(ValueError, match="known presets"):
        load_preset("huge")
    bad = tmp_path / "bad.yaml"
    bad.write_text("training:\n  learning_rat: 0.1\n")
    with pytest.raises(ValueError, match="learning_rat"):
        parse_pretraining_args(["--preset", str(bad)])


def test_validation_songs_follow_the_split_seed_not_the_training_seed(tmp_path, monkeypatch):
    """A replicate with another --seed, or a run continued from a checkpoint, holds out the same songs; only
    --split_seed moves them (else a continued run would measure recovery on songs its checkpoint trained on)."""
    from adversarial_midibert.pretraining.run import tokenized_song_split

    monkeypatch.setenv("ADVERSARIAL_MIDIBERT_CACHE", str(tmp_path / "cache"))

    def held_out(*flags):
        _, data_args, args = parse_pretraining_args(["--data", str(SAMPLE_MIDI), "--validation_fraction", "0.3",
                                                     "--max_length", "64", "--output_dir", str(tmp_path), *flags])
        tokenizer = OctupleTokenizer(max_length=data_args.max_length)
        sources, _, valid_songs, _, _ = tokenized_song_split(data_args, args, tokenizer)
        return sorted(sources[i].path for i in valid_songs)

    default = held_out()
    assert len(default) >= 3
    assert held_out("--seed", "7") == default
    assert held_out("--split_seed", "7") != default


def test_attribute_weights_eq2_by_hand():
    correct = torch.tensor([10.0, 20, 40, 40, 40, 40, 40, 0])
    weights = attribute_weights_from_accuracy(correct, 40)
    # accuracies 0.25, 0.5, 1 (x5), 0 -> floored at 0.01; w_j proportional to 1/a_j.
    inverse = torch.tensor([4.0, 2, 1, 1, 1, 1, 1, 100])
    torch.testing.assert_close(weights, inverse / inverse.sum())


def test_epochs_close_with_training_accuracy_and_frozen_notes_are_never_chosen(tmp_path, windows, tok):
    model = tiny_model(freeze_every_epochs=1)
    train_ds = windows.select(range(16))
    args = training_args(tmp_path, num_train_epochs=2, eval_strategy="steps", eval_steps=3)
    trainer = RecordingTrainer(model=model, args=args, train_dataset=train_ds,
                               eval_dataset=windows.select(range(16, 24)), processing_class=tok)
    trainer.train()
    train_records = [r for r in trainer.records if r["training"]]
    assert any(not r["training"] for r in trainer.records)  # evaluation ran inside the epochs...
    assert len(train_records) == 8  # ...but only the 4 + 4 training batches count for eq. 2
    for epoch in (0, 1):
        correct = sum(r["correct"] for r in train_records if r["epoch"] == epoch).double()
        chosen = sum(r["num_chosen"] for r in train_records if r["epoch"] == epoch)
        expected = attribute_weights_from_accuracy(correct, chosen)
        if epoch == 0:
            # The weights used by epoch 1's steps and logged with them.
            used = [r["weights"] for r in train_records if r["epoch"] == 1]
            assert all(torch.allclose(w, expected) for w in used)
            logged = [h for h in trainer.state.log_history if "loss" in h and h["epoch"] > 1]
            assert logged and logged[0]["weight_pitch"] == pytest.approx(float(expected[3]), rel=1e-5)
        else:
            torch.testing.assert_close(trainer.attribute_weights, expected)
    assert all(torch.allclose(r["weights"], torch.full((8,), 0.125)) for r in train_records if r["epoch"] == 0)

    # The book was updated after each epoch; in epoch 1 the frozen notes (read here straight from the bits, not
    # through the trainer's path) are exactly the unselectable real notes, in every sequence of the batch.
    assert trainer.freeze_book.num_updates == 2 and trainer.freeze_book.frozen_fraction() > 0
    book = copy.deepcopy(trainer.freeze_book)
    song_id_of = dict(zip(train_ds["song_index"], train_ds["song_id"]))
    n_frozen_seen = 0
    for r in (r for r in train_records if r["epoch"] == 1):
        book.bits = r["book_bits"]
        real = (r["input_ids"][..., 3] < 256) & r["attention_mask"].bool()
        assert not (r["chosen"] & ~r["selectable"]).any()
        for b in range(len(real)):
            song_id = song_id_of[int(r["song_index"][b])]
            n = int(real[b].sum())
            start = int(r["window_start"][b])
            frozen = book.frozen(book.row_of[song_id], start, start + n)
            assert torch.equal(r["selectable"][b, 1 : 1 + n], torch.from_numpy(~frozen))
            assert not r["selectable"][b][~real[b]].any()
            n_frozen_seen += int(frozen.sum())
    assert n_frozen_seen > 0
    step_logs = [h for h in trainer.state.log_history if "loss" in h]
    for key in ["recoverer_loss", "masker_loss", "masker_spread", "frozen_fraction", "accuracy"] + [
            f"accuracy_{a}" for a in ATTRIBUTES]:
        assert key in step_logs[0]
    # One batch per logged step: the spread is the std of that batch's masker scores over its real notes.
    assert len(step_logs) == len(train_records)
    for log, r in zip(step_logs, train_records):
        real = (r["input_ids"][..., 3] < 256) & r["attention_mask"].bool()
        expected = r["masker_probabilities"].detach()[real].double().std(correction=0)
        assert log["masker_spread"] == pytest.approx(float(expected), rel=1e-5) and log["masker_spread"] > 0
    assert any(h.get("frozen_fraction", 0) > 0 for h in step_logs)


def test_attribute_weights_every_steps_refreshes_eq2_within_the_epoch_and_resumes_exactly(tmp_path, windows, tok):
    # 16 windows at batch 4: one epoch of 4 steps, refreshed after steps 2 and 4 (4 is also the epoch's end).
    def trainer_for(output, **overrides):
        args = training_args(tmp_path, output_dir=str(tmp_path / output), num_train_epochs=1, **overrides)
        return RecordingTrainer(model=tiny_model(attribute_weights_every_steps=2), args=args,
                                train_dataset=windows.select(range(16)), processing_class=tok)

    trainer = trainer_for("run", save_strategy="steps", save_steps=3)
    trainer.train()
    steps = [r for r in trainer.records if r["training"]]
    assert len(steps) == 4 and all(r["epoch"] == 0 for r in steps)
    uniform = torch.full((8,), 0.125)
    assert torch.equal(steps[0]["weights"], uniform) and torch.equal(steps[1]["weights"], uniform)
    first_two = attribute_weights_from_accuracy(sum(r["correct"] for r in steps[:2]).double(),
                                                sum(r["num_chosen"] for r in steps[:2]))
    assert not torch.allclose(first_two, uniform)
    assert all(torch.allclose(r["weights"], first_two) for r in steps[2:])
    whole_epoch = attribute_weights_from_accuracy(sum(r["correct"] for r in steps).double(),
                                                  sum(r["num_chosen"] for r in steps))
    torch.testing.assert_close(trainer.attribute_weights, whole_epoch)

    # Resumed from step 3 (between two refreshes), step 4 sees the same weights and ends with the same ones.
    resumed = trainer_for("resumed")
    resumed.train(resume_from_checkpoint=str(tmp_path / "run" / "checkpoint-3"))
    [step4] = [r for r in resumed.records if r["training"]]
    torch.testing.assert_close(step4["weights"], steps[3]["weights"])
    torch.testing.assert_close(resumed.attribute_weights, trainer.attribute_weights)


def test_freeze_update_freezes_the_masker_top_notes(tmp_path, windows, tok):
    model = tiny_model(freeze_percent=30, unfreeze_percent=0)
    train_ds = windows.select(range(12))
    trainer = AdversarialTrainer(model=model, args=training_args(tmp_path), train_dataset=train_ds,
                                 processing_class=tok)
    trainer.update_freeze_book()
    model.eval()
    book = trainer.freeze_book
    scores = {song_id: np.zeros(int(book.num_notes[book.row_of[song_id]])) for song_id in book.song_ids}
    with torch.no_grad():
        for row in train_ds:
            ids = torch.tensor([row["input_ids"]])
            probs = model.masking_probabilities(ids, torch.ones(ids.shape[:2], dtype=torch.long))[0, 1:-1]
            scores[row["song_id"]][row["window_start"] : row["window_start"] + len(probs)] = probs.numpy()
    for song_id, song_scores in scores.items():
        frozen = book.frozen(book.row_of[song_id])
        n = len(song_scores)
        assert frozen.sum() == int(np.floor(0.3 * n + 0.5))
        assert song_scores[frozen].min() >= song_scores[~frozen].max()


def _grads(model):
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("masking", ["adversarial", "random"])
def test_two_accumulation_steps_equal_one_double_batch(tmp_path, windows, tok, masking):
    # No dropout and no random replacement: the only difference left is how the loss is split into micro-batches.
    # Random mode draws its scores per micro-batch, so there every selectable note is chosen (p = 100 %); for the
    # same reason the adversarial choice takes no random picks here (masker_random_share = 0).
    model = tiny_model(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, mask_token_ratio=1.0,
                       random_token_ratio=0.0, mask_percent=15 if masking == "adversarial" else 100,
                       masker_random_share=0.0)
    lengths = [len(x) for x in windows["input_ids"]]
    long_rows = [i for i, n in enumerate(lengths) if n == max(lengths)][:4]
    rows = windows.select(long_rows)
    short = windows.select(range(len(windows))).map(lambda r: {"input_ids": r["input_ids"][:12]})
    features = [rows[i] for i in range(4)] + [short[i] for i in range(4, 8)]
    collate = AdversarialTrainer(model=model, args=training_args(tmp_path), train_dataset=windows,
                                 processing_class=tok).data_collator
    micro = [collate(features[:4]), collate(features[4:])]
    whole = [collate(features)]

    grads, totals, prepared_batches = [], [], []
    for batches, accumulation in ((micro, 2), (whole, 1)):
        m = copy.deepcopy(model)
        args = training_args(tmp_path, gradient_accumulation_steps=accumulation)
        trainer = AdversarialTrainer(model=m, args=args, train_dataset=windows, processing_class=tok,
                                     masking=masking, transpose_semitones=0)
        # Some frozen notes, so selectable counts differ from real-note counts.
        trainer.freeze_book.set_frozen(0, np.arange(trainer.freeze_book.num_notes[0]) % 3 == 0)
        prepared, num_items = trainer.get_batch_samples(iter(copy.deepcopy(batches)), accumulation, args.device)
        m.train()
        for batch in prepared:
            trainer.training_step(m, batch, num_items)
        grads.append(_grads(m))
        totals.append(int(num_items))
        prepared_batches.append(prepared)
    assert totals[0] == totals[1]
    counts = [int(b["selectable_mask"].sum()) for b in prepared_batches[0]]  # the micro-batches differ in size
    assert counts[0] != counts[1]
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], atol=1e-6, rtol=1e-4, msg=name)


@pytest.mark.parametrize("masking", ["adversarial", "random"])
def test_evaluation_is_deterministic_and_never_masks_padding(tmp_path, windows, tok, masking):
    model = tiny_model()
    trainer = RecordingTrainer(model=model, args=training_args(tmp_path), train_dataset=windows.select(range(8)),
                               eval_dataset=windows.select(range(8, 21)), processing_class=tok, masking=masking)
    state = trainer.masking_generator.get_state()
    first = trainer.evaluate()
    second = trainer.evaluate()
    for key in first:
        if "runtime" not in key and "per_second" not in key:
            assert first[key] == second[key], key
    assert 0 <= first["eval_accuracy_pitch"] <= 1 and "eval_masker_loss" in first
    # Evaluation draws from its own seeded generator: the training masking stream is untouched.
    assert torch.equal(trainer.masking_generator.get_state(), state)
    for r in trainer.records:
        real = (r["input_ids"][..., 3] < 256) & r["attention_mask"].bool()
        assert r["chosen"].any() and not (r["chosen"] & ~real).any()


def test_random_mode_trains_without_freezing(tmp_path, windows, tok):
    model = tiny_model(freeze_every_epochs=1)
    masker_before = copy.deepcopy(model.masker.state_dict())
    trainer = AdversarialTrainer(model=model, args=training_args(tmp_path, num_train_epochs=2, weight_decay=0.0),
                                 train_dataset=windows.select(range(8)), processing_class=tok, masking="random")
    trainer.train()
    assert trainer.freeze_book.frozen_fraction() == 0 and trainer.freeze_book.num_updates == 0
    # The masker takes part in every step (DDP) with an exactly-zero gradient: AdamW leaves it unchanged.
    for name, value in model.masker.state_dict().items():
        assert torch.equal(value, masker_before[name]), name
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert all(h["masker_loss"] == 0 and "masker_spread" not in h for h in logs)


@pytest.mark.parametrize("updates_backbone", [True, False])
def test_bf16_mixed_precision_trains_freezes_and_evaluates(tmp_path, windows, tok, updates_backbone):
    # `--bf16` goes through Accelerate's autocast: on CPU here, the same code path as on a GPU except attention,
    # which stays fp32 on a CPU (scores, top-k and BCE must cope with bf16 activations and fp32 weights; the
    # relative bias in bf16: tests/test_modeling.py).
    model = tiny_model(freeze_every_epochs=1, masker_updates_backbone=updates_backbone,
                       position_embedding_type="relative_key_query")
    args = training_args(tmp_path, bf16=True, num_train_epochs=1, eval_strategy="epoch")
    trainer = AdversarialTrainer(model=model, args=args, train_dataset=windows.select(range(8)),
                                 eval_dataset=windows.select(range(8, 16)), processing_class=tok)
    # Accelerate hands the outputs back in fp32; inside the model the masker and recoverer ran in bf16.
    seen = set()
    for head in (model.masker, model.recoverer[3]):
        head.register_forward_hook(lambda module, inputs, output: seen.add(output.dtype))
    trainer.train()
    assert seen == {torch.bfloat16}
    assert all(p.dtype == torch.float32 for p in model.parameters())  # mixed precision: fp32 master weights
    losses = [h for h in trainer.state.log_history if "loss" in h]
    assert losses and all(np.isfinite([h["loss"], h["recoverer_loss"], h["masker_loss"]]).all() for h in losses)
    assert all(np.isfinite(p.detach().numpy()).all() for p in model.parameters())
    assert trainer.freeze_book.num_updates == 1 and trainer.freeze_book.frozen_fraction() > 0
    evaluated = [h for h in trainer.state.log_history if "eval_loss" in h]
    assert evaluated and np.isfinite(evaluated[0]["eval_loss"])


def test_pretrain_script_leaves_a_loadable_checkpoint(tmp_path):
    out = tmp_path / "pretrain"
    trainer = main(["--output_dir", str(out), "--cache_dir", str(tmp_path / "cache"), "--max_songs", "5",
                    "--max_length", "64", "--max_steps", "3", "--logging_steps", "1", "--eval_strategy", "steps",
                    "--eval_steps", "3", "--save_strategy", "no", "--validation_fraction", "0.4", "--disable_tqdm",
                    "true", "--seed", "7"])
    assert trainer.eval_seed == 42  # the held-out notes follow --split_seed, so another --seed is scored alike
    names = {p.name for p in out.iterdir()}
    assert {"model.safetensors", "config.json", "README.md", "tokenizer_config.json", "tokenization_octuple.py",
            "modeling_adversarial_midibert.py", "configuration_adversarial_midibert.py"} <= names
    auto_map = json.loads((out / "config.json").read_text())["auto_map"]
    assert {"AutoModel", "AutoModelForSequenceClassification", "AutoModelForTokenClassification"} <= set(auto_map)
    card = (out / "README.md").read_text()
    assert "pipeline_tag: feature-extraction" in card and "adversarial" in card
    assert "| mixed precision | no (fp32) |" in card   # a bf16 run says so (the shipped checkpoint's card)
    backbone = AutoModel.from_pretrained(out, trust_remote_code=True)
    for name, value in backbone.state_dict().items():
        torch.testing.assert_close(value, trainer.model.midibert.state_dict()[name])
    loaded_tok = AutoTokenizer.from_pretrained(out, trust_remote_code=True)
    assert loaded_tok.max_length == 64
    evals = [h for h in trainer.state.log_history if "eval_loss" in h]
    assert evals and "eval_accuracy_tempo" in evals[-1]


def test_masker_targets_on_a_hand_built_batch(tmp_path, windows, tok):
    # Eq. 3 recomputed from the outputs, sequence by sequence: the published code flipped the targets of every
    # other sequence, which would change this loss.
    model = tiny_model(masker_target_percent=30)
    with torch.no_grad():  # a masker far from 0.5 everywhere, so that BCE(p, 1) and BCE(p, 0) differ clearly
        for parameter in model.masker.parameters():
            parameter.normal_(0.0, 0.5)
    features = [windows[i] for i in (0, 5, 9)]
    trainer = AdversarialTrainer(model=model, args=training_args(tmp_path), train_dataset=windows,
                                 processing_class=tok, transpose_semitones=0)
    batches, num_items = trainer.get_batch_samples(iter([trainer.data_collator(features)]), 1, trainer.args.device)
    model.train()
    _, outputs = trainer.compute_loss(model, batches[0], return_outputs=True, num_items_in_batch=num_items)
    probabilities, targets = [], []
    for b in range(len(features)):
        chosen = torch.nonzero(outputs.chosen_mask[b]).flatten()
        losses = outputs.note_losses[b, chosen]
        n = min(max(int(np.floor(0.3 * len(chosen) + 0.5)), 1), len(chosen) // 2)
        order = torch.argsort(losses, descending=True)
        hardest, easiest = chosen[order[:n]], chosen[order[-n:]]
        assert outputs.note_losses[b, hardest].min() > outputs.note_losses[b, easiest].max()
        logits = outputs.masker_logits[b]  # BCE on logits, as the model: probabilities near 0 / 1 lose precision
        probabilities += [logits[hardest], logits[easiest]]
        targets += [torch.ones(n), torch.zeros(n)]
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    expected = bce(torch.cat(probabilities), torch.cat(targets))
    torch.testing.assert_close(outputs.masker_loss, expected, atol=1e-5, rtol=1e-5)
    flipped = [1 - t if i in (2, 3) else t for i, t in enumerate(targets)]  # sequence 1's targets inverted
    assert abs(float(bce(torch.cat(probabilities), torch.cat(flipped)) - expected)) > 1e-3


def test_streaming_shards_train_freeze_and_restore_the_sharded_book(tmp_path, tok):
    from adversarial_midibert.pretraining.streaming import streaming_training_inputs, write_shards

    write_shards(find_midi_files(SAMPLE_MIDI / "emopia")[:6], tok, tmp_path / "shards", songs_per_shard=2,
                 validation_fraction=0.2, seed=0)
    args = training_args(tmp_path, num_train_epochs=2, save_strategy="epoch", eval_strategy="epoch",
                         per_device_train_batch_size=8)
    stream, eval_ds, extra = streaming_training_inputs(tmp_path / "shards", args)
    extra.pop("data_summary")
    assert len(extra["freeze_book_shards"]) == 3 and eval_ds is not None  # 5 training songs, 2 per shard
    trainer = AdversarialTrainer(model=tiny_model(freeze_every_epochs=1), args=args, train_dataset=stream,
                                 eval_dataset=eval_ds, processing_class=tok, **extra)
    trainer.train()
    steps_per_epoch = -(-len(stream) // 8)
    assert trainer.state.global_step == 2 * steps_per_epoch
    book = trainer.freeze_book
    assert book.num_updates == 2 and book.frozen_fraction() > 0
    checkpoint = tmp_path / "run" / f"checkpoint-{trainer.state.global_step}"
    assert sorted(p.name for p in (checkpoint / "freeze_books").iterdir()) == [f"train-0000{i}.npz" for i in range(3)]

    stream2, _, extra2 = streaming_training_inputs(tmp_path / "shards", args)
    extra2.pop("data_summary")
    fresh = AdversarialTrainer(model=tiny_model(), args=training_args(tmp_path), train_dataset=stream2,
                               processing_class=tok, **extra2)
    assert fresh.freeze_book.frozen_fraction() == 0
    fresh.load_adversarial_state(str(checkpoint))
    assert fresh.freeze_book.digest() == book.digest()
    torch.testing.assert_close(fresh.attribute_weights, trainer.attribute_weights)
