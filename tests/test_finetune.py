"""Fine-tuning end to end on the shipped sample: a sequence task and a note task with the tiny preset (loss falls,
the saved model reloads through the Auto classes and reproduces the reported metrics), an unseen folder-per-class
set in one command with bad files, manifests with a missing file, a datasets.Dataset of bytes, transposition
on training batches only, and a push to the (local test) Hub with the metrics in the card's model-index."""
import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import FIXTURES, REPO, needs_accelerate, sample_files, two_cpu_processes
from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification, TrainingArguments

from adversarial_midibert.data.collator import OctupleDataCollator
from adversarial_midibert.finetuning.arguments import parse_args
from adversarial_midibert.finetuning.inputs import build_split, load_model_and_tokenizer, resolve_task
from adversarial_midibert.finetuning.run import main
from adversarial_midibert.finetuning.trainer import FinetuneTrainer
from adversarial_midibert.evaluation.metrics import load_metric

FAST = ["--model", "preset:tiny", "--max_length", "64", "--save_strategy", "no", "--logging_steps", "1",
        "--per_device_train_batch_size", "8", "--use_cpu", "true"]


def emopia_class_folders(root):
    for path in sample_files("emopia"):
        folder = root / path.name[:2]  # Q1..Q4
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, folder / path.name)
    return root


@pytest.fixture(scope="module")
def emotion_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("emotion")
    argv = FAST + ["--data", str(emopia_class_folders(tmp / "set")), "--output_dir", str(tmp / "out"),
                   "--eval_fraction", "0.5", "--num_train_epochs", "8", "--learning_rate", "1e-3",
                   "--eval_strategy", "no"]  # the final evaluation still runs; per-epoch ones only cost time
    return argv, main(argv), tmp / "out"


@pytest.fixture(scope="module")
def melody_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("melody") / "out"
    argv = FAST + ["--task", "melody", "--data", str(sample_files("pop909")[0].parent), "--output_dir", str(out),
                   "--eval_fraction", "0.3", "--num_train_epochs", "2", "--learning_rate", "1e-3", "--eval_strategy", "no"]
    return argv, main(argv), out


def falls(curve, n=3):
    return np.mean(curve[-n:]) < np.mean(curve[:n])


def eval_windows(argv):
    args, _ = parse_args(argv)
    task = resolve_task(args)
    _, tokenizer = load_model_and_tokenizer(args, task)
    windows, _, song_ids = build_split(task.eval, tokenizer, task, args, stride=0)
    return windows, song_ids, tokenizer


def test_sequence_task_learns_saves_and_reloads(emotion_run):
    argv, results, out = emotion_run
    assert results["level"] == "sequence" and results["labels"] == ["Q1", "Q2", "Q3", "Q4"]
    assert falls(results["train_loss_curve"]), results["train_loss_curve"]
    model = AutoModelForSequenceClassification.from_pretrained(out, trust_remote_code=True)
    assert model.config.id2label == {0: "Q1", 1: "Q2", 2: "Q3", 3: "Q4"} and model.config.label2id["Q4"] == 3
    # The reloaded model, run on the dev windows, gives exactly the reported window and song metrics.
    windows, song_ids, tokenizer = eval_windows(argv)
    batch = OctupleDataCollator(tokenizer)(list(windows))
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.numpy()
    window = load_metric().compute(predictions=logits.argmax(-1), references=batch["labels"].numpy())
    song = load_metric("song").compute(predictions=logits, references=batch["labels"].numpy(), song_ids=song_ids)
    assert results["metrics"]["accuracy"] == pytest.approx(window["accuracy"])
    assert results["metrics"]["macro_f1"] == pytest.approx(window["macro_f1"])
    assert results["metrics"]["song_accuracy"] == pytest.approx(song["song_accuracy"])
    assert results["metrics"]["song_count"] == 4  # one song per class held out


def test_run_leaves_confusion_matrix_results_and_model_card(emotion_run):
    _, results, out = emotion_run
    assert (out / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"
    assert np.array(results["confusion_matrix"]).sum() == results["metrics"]["count"]
    saved = json.loads((out / "finetune_results.json").read_text())
    assert saved["metrics"]["accuracy"] == results["metrics"]["accuracy"]
    front = yaml.safe_load((out / "README.md").read_text().split("---\n")[1])
    reported = {m["name"]: m["value"] for m in front["model-index"][0]["results"][0]["metrics"]}
    assert reported["Accuracy"] == pytest.approx(results["metrics"]["accuracy"])
    assert reported["Song accuracy"] == pytest.approx(results["metrics"]["song_accuracy"])


def test_token_task_learns_and_scores_every_dev_note_once(melody_run):
    _, results, out = melody_run
    assert results["level"] == "token" and results["labels"] == ["melody", "bridge", "accompaniment"]
    assert falls(results["train_loss_curve"]), results["train_loss_curve"]
    # Dev windows never overlap and padding / BOS / EOS carry -100: each dev note is scored exactly once.
    assert results["metrics"]["count"] == results["data"]["eval"]["notes"]
    model = AutoModelForTokenClassification.from_pretrained(out, trust_remote_code=True)
    assert model.config.note_labeler["kind"] == "track_names" and model.config.num_labels == 3
    assert results["settings"]["transpose_semitones"] == 6 and results["settings"]["finetune_mask_percent"] == 15
    assert results["settings"]["dropout"] == 0.1  # the tiny preset's; --dropout changes it


def test_unseen_class_folders_with_bad_files_in_one_command(tmp_path):
    data = tmp_path / "composers"
    for path in sample_files("giantmidi_eval"):
        (data / path.name.split("_")[0]).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, data / path.name.split("_")[0] / path.name)
    for folder, bad in (("Bach", "empty.mid"), ("Chopin", "garbage.mid"), ("Debussy", "truncated.mid")):
        shutil.copy(FIXTURES / bad, data / folder / bad)
    out = tmp_path / "out"
    cmd = [sys.executable, "train/finetune.py", "--data", str(data), "--output_dir", str(out), *FAST,
           "--max_steps", "2", "--eval_fraction", "0.5"]
    run = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads((out / "finetune_results.json").read_text())
    skipped = {s["song_id"]: s["reason"] for part in ("train", "eval") for s in results["data"][part]["skipped"]}
    assert set(skipped) == {"Bach/empty.mid", "Chopin/garbage.mid", "Debussy/truncated.mid"}
    assert "empty" in skipped["Bach/empty.mid"]
    assert "skipped Chopin/garbage.mid" in run.stdout
    assert results["labels"] == ["Bach", "Chopin", "Debussy", "Schubert"]
    assert AutoModelForSequenceClassification.from_pretrained(out, trust_remote_code=True).config.num_labels == 4


def test_manifest_with_groups_and_a_missing_file(tmp_path):
    manifest = tmp_path / "pieces.csv"
    with open(manifest, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label", "group"])
        for path in sample_files("emopia"):
            writer.writerow([str(path), path.name[:2], path.name.rsplit("_", 1)[0]])  # clips of one song: one group
        writer.writerow([str(tmp_path / "missing.mid"), "Q1", "missing"])
    out = tmp_path / "out"
    results = main(FAST + ["--manifest", str(manifest), "--output_dir", str(out), "--eval_fraction", "0.5",
                           "--max_steps", "2", "--finetune_mask_percent", "0"])
    skipped = results["data"]["train"]["skipped"] + results["data"]["eval"]["skipped"]
    assert [s["reason"] for s in skipped if "missing.mid" in s["song_id"]] != []
    assert "cannot read" in skipped[0]["reason"]
    args, _ = parse_args(FAST + ["--manifest", str(manifest), "--eval_fraction", "0.5"])
    task = resolve_task(args)
    groups = lambda sources: {s.song_id.rsplit("_", 1)[0] for s in sources if "missing" not in s.song_id}
    assert groups(task.train).isdisjoint(groups(task.eval))
    assert json.loads((out / "config.json").read_text())["finetune_mask_percent"] == 0


def test_datasets_dataset_with_bytes(tmp_path):
    import datasets

    files = sample_files("emopia")
    ds = datasets.Dataset.from_dict({"midi": [p.read_bytes() for p in files], "mood": [p.name[:2] for p in files],
                                     "song_id": [p.name for p in files]})
    ds.save_to_disk(str(tmp_path / "ds"))
    results = main(FAST + ["--hf_dataset", str(tmp_path / "ds"), "--label_column", "mood", "--output_dir",
                           str(tmp_path / "out"), "--eval_fraction", "0.5", "--max_steps", "2"])
    assert results["labels"] == ["Q1", "Q2", "Q3", "Q4"] and results["data"]["train"]["songs"] == 4


def test_transposition_only_touches_training_forwards(tmp_path):
    argv = FAST + ["--task", "velocity", "--data", str(sample_files("pop909")[0].parent), "--output_dir", str(tmp_path)]
    args, _ = parse_args(argv)
    task = resolve_task(args)
    model, tokenizer = load_model_and_tokenizer(args, task)
    windows, _, _ = build_split(task.train, tokenizer, task, args, stride=0)
    seen = []
    model.register_forward_pre_hook(lambda module, a, kw: seen.append(kw["input_ids"].clone()), with_kwargs=True)
    trainer = FinetuneTrainer(model=model, args=TrainingArguments(str(tmp_path), use_cpu=True, report_to="none"),
                              transpose_semitones=6)
    batch = OctupleDataCollator(tokenizer)([windows[i] for i in range(8)])
    torch.manual_seed(0)
    model.train()
    trainer.compute_loss(model, dict(batch))
    model.eval()
    trainer.prediction_step(model, dict(batch), prediction_loss_only=False)
    shifts = (seen[0][..., 3] - batch["input_ids"][..., 3])[batch["attention_mask"].bool()]
    assert shifts.abs().max() > 0 and shifts.abs().max() <= 6
    assert torch.equal(seen[1], batch["input_ids"])
    # Only the pitch column moves.
    other = [j for j in range(8) if j != 3]
    assert torch.equal(seen[0][..., other], batch["input_ids"][..., other])


def test_push_to_hub_uploads_model_and_card_with_the_dev_metrics(tmp_path):
    from huggingface_hub import HfApi, hf_hub_download
    from hub_server import HubServer
    from test_hub_push import TOKEN, read_front_matter, run_python

    data = emopia_class_folders(tmp_path / "set")
    with HubServer(tmp_path / "hub") as hub:
        env = hub.client_env(tmp_path / "hf_home")
        run_python(f"""
            from adversarial_midibert.finetuning.run import main
            main({FAST + ["--data", str(data), "--output_dir", str(tmp_path / "out"), "--max_steps", "2",
                          "--eval_fraction", "0.5", "--push_to_hub", "true", "--hub_model_id", "test-user/emotion"]!r})
        """, env)
        api = HfApi(endpoint=hub.endpoint, token=TOKEN)
        files = set(api.list_repo_files("test-user/emotion"))
        assert {"config.json", "model.safetensors", "octuple_tokenizer.json", "modeling_adversarial_midibert.py"} <= files
        card = hf_hub_download("test-user/emotion", "README.md", endpoint=hub.endpoint, token=TOKEN,
                               cache_dir=tmp_path / "dl")
    results = json.loads((tmp_path / "out" / "finetune_results.json").read_text())
    front = read_front_matter(Path(card))
    reported = {m["name"]: m["value"] for m in front["model-index"][0]["results"][0]["metrics"]}
    assert reported["Accuracy"] == pytest.approx(results["metrics"]["accuracy"])
    assert reported["Song macro-F1"] == pytest.approx(results["metrics"]["song_macro_f1"])


def test_finetune_starts_from_a_pretraining_checkpoint(tmp_path):
    from configuration_adversarial_midibert import AdversarialMidiBertConfig
    from modeling_adversarial_midibert import AdversarialMidiBertForPreTraining
    from tokenization_octuple import OctupleTokenizer

    torch.manual_seed(1)
    pretrained = AdversarialMidiBertForPreTraining(AdversarialMidiBertConfig.from_preset("tiny"))
    pretrained.save_pretrained(tmp_path / "pre")
    OctupleTokenizer(max_length=64).save_pretrained(tmp_path / "pre")
    argv = [a for a in FAST if a not in ("--model", "preset:tiny", "--max_length", "64")]
    main(argv + ["--model", str(tmp_path / "pre"), "--task", "velocity", "--data", str(sample_files("pop909")[0].parent),
                 "--output_dir", str(tmp_path / "out"), "--max_steps", "1", "--learning_rate", "1e-12"])
    model = AutoModelForTokenClassification.from_pretrained(tmp_path / "out", trust_remote_code=True)
    assert model.config.hidden_attributes == ["velocity"] and model.config.note_labeler["edges"] == [32, 48, 64, 80, 96]
    assert model.config.id2label[5] == "ff" and json.loads((tmp_path / "out" / "octuple_tokenizer.json").read_text())["max_length"] == 64
    backbone = {k: v for k, v in pretrained.state_dict().items() if k.startswith("midibert.")}
    loaded = model.state_dict()
    assert backbone and all(torch.allclose(loaded[k], v, atol=1e-6) for k, v in backbone.items())


# --------------------------------------------------------------------------------------------------------------
# The default recipe, the baselines in every report, and the mistakes a user makes on the way (issue 13).
# --------------------------------------------------------------------------------------------------------------

def grouped_class_folders(root):
    """The shipped sample as a user's folder per class: <quadrant>/<song>/<clip>.mid for EMOPIA (clips of one song
    in one sub-folder: one group) plus the four GiantMIDI pieces as a fifth class."""
    for path in sample_files("emopia"):
        song = path.stem.rsplit("_", 1)[0]
        (root / path.name[:2] / song).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, root / path.name[:2] / song / path.name)
    return root


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("default")
    data = grouped_class_folders(tmp / "set")
    # The default command; only the window length and the epoch count are cut so the test stays fast.
    argv = ["--model", "preset:tiny", "--data", str(data), "--output_dir", str(tmp / "out"), "--max_length", "64",
            "--num_train_epochs", "3", "--eval_fraction", "0.5", "--use_cpu", "true"]
    return argv, main(argv), tmp / "out"


def test_default_run_reports_both_baselines_with_the_model_keys_on_the_same_dev_songs(default_run):
    argv, results, out = default_run
    saved = json.loads((out / "finetune_results.json").read_text())
    for name in ("majority", "note_statistics"):
        assert set(saved["baselines"][name]) == set(saved["metrics"]) - {"loss", "runtime", "samples_per_second",
                                                                          "steps_per_second", "epoch"}
        assert saved["baselines"][name]["count"] == saved["metrics"]["count"]
        assert saved["baselines"][name]["song_count"] == saved["metrics"]["song_count"]
    _, song_ids, _ = eval_windows(argv)
    assert saved["baselines"]["dev_songs"] == list(dict.fromkeys(song_ids))
    assert sorted(saved["baselines"]["dev_songs"]) == sorted(s["song_id"] for s in saved["split"]["eval"])
    # Clips of one song (one sub-folder) never straddle the split, and the split is recorded file by file.
    train_groups = {s["group"] for s in saved["split"]["train"]}
    assert train_groups.isdisjoint(s["group"] for s in saved["split"]["eval"])
    assert len(saved["split"]["train"]) + len(saved["split"]["eval"]) == 8


def test_default_recipe_fits_the_model_and_keeps_the_best_epoch(default_run):
    _, results, out = default_run
    recipe = results["recipe"]
    assert recipe["learning_rate"] == pytest.approx(1e-3) and not recipe["pretrained"]  # tiny, from scratch
    assert recipe["warmup"] == 0.1 and recipe["best_model_metric"] == "macro_f1"
    assert recipe["class_weighting"] == "balanced" and len(recipe["class_weights"]) == 4
    state = json.loads((out / "trainer_state.json").read_text())
    evals = [e["eval_macro_f1"] for e in state["log_history"] if "eval_macro_f1" in e]
    assert len(evals) >= 4  # every epoch, then the final evaluation of the best epoch
    assert results["metrics"]["macro_f1"] == pytest.approx(max(evals[:-1]))


def test_epoch_cap_and_learning_rate_follow_the_data_and_the_model(tmp_path):
    from adversarial_midibert.finetuning.recipe import MAX_EPOCHS, MIN_EPOCHS, TARGET_STEPS, fit_recipe
    from conftest import tiny_config
    from modeling_adversarial_midibert import AdversarialMidiBertForSequenceClassification

    def recipe(argv, windows, pretrained, hidden=128):
        _, training_args = parse_args(["--output_dir", str(tmp_path), *argv])
        model = AdversarialMidiBertForSequenceClassification(tiny_config(hidden_size=hidden, num_labels=2))
        return fit_recipe(training_args, argv, model, pretrained, windows, True, 4), training_args

    # With a dev set the dev score decides when to stop: the cap is MAX_EPOCHS whatever the data's size.
    small, _ = recipe([], 16 * 5, pretrained=False)
    large, _ = recipe([], 16 * TARGET_STEPS * 10, pretrained=False)
    assert small["num_train_epochs"] == large["num_train_epochs"] == MAX_EPOCHS
    assert small["early_stopping_patience"] == 4
    # Without early stopping (patience 0): about TARGET_STEPS steps, at least MIN_EPOCHS.
    _, training_args = parse_args(["--output_dir", str(tmp_path)])
    model = AdversarialMidiBertForSequenceClassification(tiny_config(num_labels=2))
    fixed = fit_recipe(training_args, [], model, False, 16 * 5, True, 0)
    _, training_args = parse_args(["--output_dir", str(tmp_path)])
    fixed_large = fit_recipe(training_args, [], model, False, 16 * TARGET_STEPS * 10, True, 0)
    assert fixed["num_train_epochs"] == min(TARGET_STEPS // 5, MAX_EPOCHS) and fixed_large["num_train_epochs"] == MIN_EPOCHS
    assert recipe([], 800, pretrained=True)[0]["learning_rate"] == pytest.approx(5e-4)
    assert recipe([], 800, pretrained=True, hidden=256)[0]["learning_rate"] == pytest.approx(2.5e-4)
    given, training_args = recipe(["--learning_rate", "3e-5", "--num_train_epochs", "2"], 800, pretrained=False)
    assert given["learning_rate"] == 3e-5 and training_args.num_train_epochs == 2
    assert training_args.load_best_model_at_end and not training_args.dataloader_pin_memory


def test_a_model_at_the_majority_class_gets_a_plain_warning(tmp_path, capsys):
    data = emopia_class_folders(tmp_path / "set")  # one dev clip per quadrant
    results = main(FAST + ["--data", str(data), "--output_dir", str(tmp_path / "out"), "--eval_fraction", "0.5",
                           "--max_steps", "1", "--learning_rate", "1e-12"])
    model, majority = results["metrics"]["song_macro_f1"], results["baselines"]["majority"]["song_macro_f1"]
    assert model < majority + 0.1  # an untrained network: no better than the majority class
    assert results["stopped_by"] == "max_steps" and results["recipe"]["max_train_minutes"] == 60
    warning = [w for w in results["warnings"] if "majority class" in w]
    assert len(warning) == 1 and "--num_train_epochs" in warning[0] and "--learning_rate" in warning[0]
    printed = capsys.readouterr().out
    assert f"WARNING: {warning[0]}" in printed and "note statistics (logistic regression)" in printed
    assert all(printed.count(f"WARNING: {w}") == 1 for w in results["warnings"])  # each once, none repeated
    assert printed.rstrip().splitlines()[-1] == f"model saved to {tmp_path / 'out'} (with finetune_results.json and README.md)"
    card = (tmp_path / "out" / "README.md").read_text()
    assert "| majority class |" in card and "| note statistics (logistic regression) |" in card
    assert f"**Warning:** {warning[0]}" in card
    # A tiny dev set is called out too.
    assert any(w.startswith("The dev set holds only 4 song(s)") for w in results["warnings"])


def test_baseline_warning_thresholds():
    from adversarial_midibert.finetuning.report import baseline_warning

    base = {"majority": {"song_macro_f1": 0.10}, "note_statistics": {"song_macro_f1": 0.50}}
    assert "majority class" in baseline_warning({"song_macro_f1": 0.15}, base, "sequence")
    assert "note statistics" in baseline_warning({"song_macro_f1": 0.40}, base, "sequence")
    assert baseline_warning({"song_macro_f1": 0.55}, base, "sequence") is None


def test_user_errors_are_one_clear_line(tmp_path, monkeypatch):
    from adversarial_midibert.finetuning.inputs import check_model_name
    from adversarial_midibert.finetuning.run import cli

    (tmp_path / "runs" / "pretrain").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="no such folder.*did you mean runs/pretrain"):
        check_model_name("runs/pretrian")  # a typo of a local folder is never looked up on the Hub
    with pytest.raises(FileNotFoundError, match="no such folder"):
        check_model_name("./ckpt")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="HF_HUB_OFFLINE"):
        check_model_name("someone/some-model")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    check_model_name("someone/some-model")  # a Hub id stays a Hub id
    with pytest.raises(ValueError, match="unknown preset"):
        check_model_name("preset:huge")
    one_class = tmp_path / "one"
    (one_class / "bach").mkdir(parents=True)
    shutil.copy(sample_files("emopia")[0], one_class / "bach" / "a.mid")
    assert cli(["--data", str(one_class)]) == 2
    assert cli(["--data", str(tmp_path / "nowhere")]) == 2
    assert cli(["--recipe", "emotion", "--eval_manifest", "dev.csv"]) == 2
    assert cli(["--no_such_flag", "1"]) == 2


def test_command_line_error_is_one_line_without_traceback(tmp_path):
    run = subprocess.run([sys.executable, "train/finetune.py", "--model", str(tmp_path / "typo"), "--data",
                          str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines()[-1] == f"finetune.py: error: --model {tmp_path / 'typo'}: no such folder"
    assert "Traceback" not in run.stderr


def test_recipe_with_eval_data_and_labels_only_in_dev_are_errors(tmp_path):
    args, _ = parse_args(["--recipe", "emotion", "--eval_manifest", "x.csv"])
    with pytest.raises(ValueError, match="--eval_manifest would be ignored"):
        resolve_task(args)
    train, dev = grouped_class_folders(tmp_path / "train"), tmp_path / "dev"
    (dev / "Q5").mkdir(parents=True)
    shutil.copy(sample_files("emopia")[0], dev / "Q5" / "x.mid")
    shutil.copytree(train / "Q1", dev / "Q1")
    args, _ = parse_args(["--data", str(train), "--eval_data", str(dev)])
    with pytest.raises(ValueError, match=r"\['Q5'\] occur only in the dev data"):
        resolve_task(args)


def test_classify_goes_on_past_a_bad_file_and_counts_windows_properly(emotion_run, capsys):
    from adversarial_midibert.cli import main as cli_main

    _, _, out = emotion_run
    short = sample_files("emopia")[0]
    code = cli_main(["classify", str(out), str(FIXTURES / "garbage.mid"), str(short)])
    captured = capsys.readouterr()
    assert code == 1 and "skipped" in captured.err and "garbage.mid" in captured.err
    line = [l for l in captured.out.splitlines() if l.startswith(str(short))]
    assert len(line) == 1  # the file after the bad one is still classified
    n = int(line[0].split(", ")[1].split(" window")[0])
    assert (" 1 window)" in line[0]) == (n == 1) and ("windows)" in line[0]) == (n != 1)


def test_class_weighted_loss_matches_the_head_and_skips_mask_finetuned_notes(tmp_path):
    from conftest import tiny_config, window_batch
    from modeling_adversarial_midibert import AdversarialMidiBertForTokenClassification

    config = tiny_config(num_labels=3, finetune_mask_percent=40, hidden_dropout_prob=0.0,
                         attention_probs_dropout_prob=0.0, classifier_dropout=0.0)
    model = AdversarialMidiBertForTokenClassification(config).train()
    ids, mask = window_batch(config, [20, 13])
    labels = torch.randint(0, 3, mask.shape).masked_fill(mask == 0, -100)
    args = TrainingArguments(str(tmp_path), use_cpu=True, report_to="none")
    ones = FinetuneTrainer(model=model, args=args, class_weights=torch.ones(3))
    torch.manual_seed(3)
    weighted = ones.compute_loss(model, {"input_ids": ids, "attention_mask": mask, "labels": labels})
    torch.manual_seed(3)  # the same draw of the mask-fine-tuning seed as inside compute_loss
    generator = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,))))
    head = model(input_ids=ids, attention_mask=mask, labels=labels, generator=generator).loss
    assert weighted.item() == pytest.approx(head.item(), rel=1e-5)
    # Weighting one class up moves the loss.
    heavy = FinetuneTrainer(model=model, args=args, class_weights=torch.tensor([10.0, 1.0, 1.0]))
    torch.manual_seed(3)
    assert heavy.compute_loss(model, {"input_ids": ids, "attention_mask": mask, "labels": labels}).item() != \
        pytest.approx(head.item(), rel=1e-3)


def test_group_regex_flag_groups_flat_class_folders(tmp_path):
    data = emopia_class_folders(tmp_path / "set")  # flat: <quadrant>/<clip>.mid, two clips of one Q1 song
    args, _ = parse_args(["--data", str(data), "--group_regex", r"^(.+)_\d+$", "--eval_fraction", "0.5"])
    task = resolve_task(args)
    group = {s.song_id: s.group for s in task.train + task.eval}
    assert group["Q1/Q1_1Qc15G0ZHIg_1.mid"] == group["Q1/Q1_1Qc15G0ZHIg_2.mid"] == "Q1/Q1_1Qc15G0ZHIg"
    assert {s.group for s in task.train}.isdisjoint(s.group for s in task.eval)


# --------------------------------------------------------------------------------------------------------------
# Tokenizer / model compatibility, checkpoints without a tokenizer, cards that state what was used (issue 14),
# and the track-role tasks read as 4/4 (issue 13).
# --------------------------------------------------------------------------------------------------------------

POP909 = str(sample_files("pop909")[0].parent)


def saved_checkpoint(folder, tokenizer=True, **config_fields):
    from configuration_adversarial_midibert import AdversarialMidiBertConfig
    from modeling_adversarial_midibert import AdversarialMidiBertForPreTraining
    from tokenization_octuple import OctupleTokenizer

    torch.manual_seed(0)
    AdversarialMidiBertForPreTraining(AdversarialMidiBertConfig.from_preset("tiny", **config_fields)).save_pretrained(folder)
    if tokenizer:
        OctupleTokenizer(max_length=64).save_pretrained(folder)
    return str(folder)


def test_a_model_whose_vocabularies_differ_from_the_tokenizers_is_refused_before_training(tmp_path, capsys):
    from adversarial_midibert.data.compatibility import IncompatibleTokenizerError
    from adversarial_midibert.finetuning.run import cli

    # 64 bar ids: the tokenizer's bar PAD (256) would be an IndexError mid-training.
    model = saved_checkpoint(tmp_path / "pre", attribute_vocab_sizes=[64, 128, 129, 256, 128, 32, 254, 49])
    argv = ["--model", model, "--task", "velocity", "--data", POP909, "--output_dir", str(tmp_path / "out"),
            "--max_steps", "1", "--use_cpu", "true"]
    args, _ = parse_args(argv)
    with pytest.raises(IncompatibleTokenizerError, match="has 64 bar ids, the tokenizer 256"):
        load_model_and_tokenizer(args, resolve_task(args))
    assert cli(argv) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].startswith(f"finetune.py: error: {model} does not fit the Octuple tokenizer")
    assert "Traceback" not in err and "IndexError" not in err
    assert not (tmp_path / "out" / "model.safetensors").exists()


@pytest.mark.parametrize("start", ["preset", "checkpoint"])
def test_dropout_flag_sets_every_dropout_of_the_classifier(tmp_path, start):
    # A checkpoint pre-trained without dropout (the `small` recipe) gets it back for fine-tuning only if asked.
    none = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0, "classifier_dropout": 0.0}
    model = "preset:tiny" if start == "preset" else saved_checkpoint(tmp_path / "pre", **none)
    argv = ["--model", model, "--task", "velocity", "--data", POP909, "--output_dir", str(tmp_path / "out")]
    args, _ = parse_args([*argv, "--dropout", "0.25"])
    classifier, _ = load_model_and_tokenizer(args, resolve_task(args))
    rates = {m.p for m in classifier.modules() if isinstance(m, torch.nn.Dropout)}
    assert rates == {0.25} and classifier.config.attention_probs_dropout_prob == 0.25
    assert classifier.config.classifier_dropout == 0.25  # also where a checkpoint set the head's own rate
    args, _ = parse_args(argv)
    default, _ = load_model_and_tokenizer(args, resolve_task(args))
    assert default.config.hidden_dropout_prob == (0.1 if start == "preset" else 0.0)
    args, _ = parse_args([*argv, "--dropout", "1"])
    with pytest.raises(ValueError, match="--dropout must lie in"):
        load_model_and_tokenizer(args, resolve_task(args))


def test_a_checkpoint_without_tokenizer_files_gets_a_default_with_a_warning(tmp_path, caplog):
    model = saved_checkpoint(tmp_path / "pre", tokenizer=False, max_position_embeddings=512)
    args, _ = parse_args(["--model", model, "--task", "velocity", "--data", POP909, "--output_dir", str(tmp_path)])
    with caplog.at_level("WARNING", logger="adversarial_midibert.data.compatibility"):
        _, tokenizer = load_model_and_tokenizer(args, resolve_task(args))
    warned = [r.getMessage() for r in caplog.records if "no tokenizer files" in r.getMessage()]
    assert len(warned) == 1 and model in warned[0] and "max_length=512" in warned[0]
    assert tokenizer.max_length == 512  # bounded by the model's positions, not a fixed 1024


def test_fine_tuned_card_states_the_counts_used_and_the_tokenizers_window(tmp_path):
    out = tmp_path / "out"
    results = main(FAST + ["--task", "melody", "--data", POP909, "--output_dir", str(out), "--eval_fraction", "0.5",
                           "--max_train_songs", "2", "--max_eval_songs", "1", "--max_steps", "1",
                           "--baselines", "false", "--eval_strategy", "no"])
    assert results["data"]["train"]["files"] == 2 and results["data"]["eval"]["files"] == 1
    card = (out / "README.md").read_text()
    data_row = next(line for line in card.splitlines() if line.startswith("| data |"))
    assert "2 training and 1 dev files used" in data_row and "--max_train_songs 2" in data_row
    assert "6 songs" not in card  # the folder's size, not what was used
    assert "A window holds at most 62 notes" in card  # max_length 64, from the run's tokenizer
    # The melody task reads files as 4/4, and says so in the card, the results and the saved tokenizer.
    assert "read as 4/4" in card and results["settings"]["ignore_time_signatures"] is True
    assert json.loads((out / "octuple_tokenizer.json").read_text())["ignore_time_signatures"] is True


def fake_pop909_root(root):
    """A shared-data root holding two sample POP909 songs (both with the 1/4 event), one per split."""
    files = sample_files("pop909")[:2]
    (root / "pop909").mkdir(parents=True)
    with open(root / "pop909" / "manifest.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "song_id", "midibert_split"])
        for path, split in zip(files, ("train", "valid")):
            shutil.copy(path, root / "pop909" / path.name)
            writer.writerow([path.name, path.stem, split])
    return root


@pytest.mark.parametrize("flag, ignored", [([], True), (["--ignore_time_signatures", "false"], False)],
                         ids=["default", "turned_off"])
def test_melody_recipe_tokenizes_as_4_4_unless_turned_off(tmp_path, flag, ignored):
    from tokenization_octuple import OctupleTokenizer

    root = fake_pop909_root(tmp_path / "shared")
    args, _ = parse_args(["--model", "preset:tiny", "--max_length", "64", "--recipe", "melody", "--data_root",
                          str(root), "--output_dir", str(tmp_path / "out"), *flag])
    task = resolve_task(args)
    assert task.hidden_attributes == ["time_signature", "tempo"] and task.ignore_time_signatures
    _, tokenizer = load_model_and_tokenizer(args, task)
    assert tokenizer.ignore_time_signatures is ignored
    windows, _, _ = build_split(task.train, tokenizer, task, args, stride=0)
    first = np.asarray(windows[0]["input_ids"])[1:-1]
    expected = OctupleTokenizer(max_length=64, ignore_time_signatures=ignored)(task.train[0].path)["input_ids"][0]
    assert np.array_equal(first, np.asarray(expected)[1:-1])
    by_file = np.asarray(OctupleTokenizer(max_length=64)(task.train[0].path)["input_ids"][0])[1:-1]
    assert np.array_equal(first[:, :2], by_file[:, :2]) is not ignored  # the 1/4 bars shape the ids only when read


def test_time_budget_stops_training_and_says_so():
    from types import SimpleNamespace

    from transformers import TrainerControl, TrainerState

    from adversarial_midibert.finetuning.trainer import TrainingTimeBudget, stopped_by

    args = SimpleNamespace(max_steps=-1, num_train_epochs=40)
    budget = TrainingTimeBudget(minutes=0.0)
    control = TrainerControl()
    budget.on_train_begin(args, TrainerState(), control)
    budget.on_step_end(args, TrainerState(), control)
    assert control.should_training_stop and budget.fired
    assert stopped_by(budget, SimpleNamespace(epoch=3.5, global_step=70), args) == "time budget"
    patient = TrainingTimeBudget(minutes=60)
    control = TrainerControl()
    patient.on_train_begin(args, TrainerState(), control)
    patient.on_step_end(args, TrainerState(), control)
    assert not control.should_training_stop and not patient.fired
    assert stopped_by(patient, SimpleNamespace(epoch=9.0, global_step=180), args) == "early stopping"
    assert stopped_by(patient, SimpleNamespace(epoch=40.0, global_step=800), args) == "epoch cap"
    assert stopped_by(None, SimpleNamespace(epoch=0.1, global_step=1), SimpleNamespace(max_steps=1, num_train_epochs=3)) == "max_steps"


def test_the_time_spent_is_carried_over_a_resume_and_not_into_a_new_run():
    from types import SimpleNamespace

    from transformers import TrainerControl, TrainerState

    from adversarial_midibert.finetuning.trainer import TrainingTimeBudget

    spent = TrainingTimeBudget(minutes=10)
    spent.elapsed_seconds = 120.0  # what the checkpoint's trainer_state.json keeps under stateful_callbacks
    saved = {"TrainingTimeBudget": spent.state()}
    args = SimpleNamespace(device=torch.device("cpu"))
    resumed = TrainingTimeBudget(minutes=10)
    resumed.on_train_begin(args, TrainerState(global_step=50, stateful_callbacks=saved), TrainerControl())
    assert resumed.fraction == pytest.approx(0.2)
    resumed.on_step_end(args, TrainerState(global_step=51), TrainerControl())
    assert 120.0 <= resumed.elapsed_seconds < 150.0
    fresh = TrainingTimeBudget(minutes=10)  # a new run in a folder with old state starts its clock at 0
    fresh.on_train_begin(args, TrainerState(global_step=0, stateful_callbacks=saved), TrainerControl())
    assert fresh.fraction == 0.0


def test_the_schedule_warms_up_and_decays_over_the_budget_when_the_budget_binds():
    from transformers import get_linear_schedule_with_warmup

    from adversarial_midibert.finetuning.trainer import TrainingTimeBudget, budget_linear_schedule

    def multipliers(scheduler, steps):
        return [scheduler.lr_lambdas[0](step) for step in steps]

    weight = torch.nn.Parameter(torch.zeros(1))
    budget = TrainingTimeBudget(minutes=1.0)
    schedule = budget_linear_schedule(torch.optim.SGD([weight], lr=1.0), 0.1, 1000, budget)
    stock = get_linear_schedule_with_warmup(torch.optim.SGD([weight], lr=1.0), 100, 1000)
    steps = [0, 1, 50, 99, 100, 101, 550, 999, 1000]
    assert multipliers(schedule, steps) == pytest.approx(multipliers(stock, steps))  # no time spent: stock
    budget.elapsed_seconds = 3.0  # 5 % of the minute at step 10 (1 % of the steps): half-way up the warm-up
    assert multipliers(schedule, [10]) == pytest.approx([0.5])
    budget.elapsed_seconds = 33.0  # 55 %: half-way down
    assert multipliers(schedule, [10, 550]) == pytest.approx([0.5, 0.5])
    budget.elapsed_seconds = 60.0  # spent: the rate is 0 whatever the step count
    assert multipliers(schedule, [10]) == [0.0]


def test_early_stopping_counts_patience_only_after_the_warm_up(tmp_path):
    from transformers import TrainerControl, TrainerState

    from adversarial_midibert.finetuning.trainer import EarlyStoppingAfterWarmup, TrainingTimeBudget

    args = TrainingArguments(output_dir=str(tmp_path), warmup_steps=0.1, eval_strategy="epoch",
                             save_strategy="epoch", load_best_model_at_end=True, metric_for_best_model="macro_f1")
    state, control = TrainerState(max_steps=1000, best_metric=0.5), TrainerControl()
    stopper = EarlyStoppingAfterWarmup(2)
    for step in (20, 40, 60, 80):  # worse dev scores while the rate still rises do not count
        state.global_step = step
        stopper.on_evaluate(args, state, control, {"eval_macro_f1": 0.1})
    assert stopper.early_stopping_patience_counter == 0 and not control.should_training_stop
    for step in (120, 140):
        state.global_step = step
        stopper.on_evaluate(args, state, control, {"eval_macro_f1": 0.1})
    assert control.should_training_stop
    budget = TrainingTimeBudget(minutes=1.0)
    budget.elapsed_seconds = 30.0  # half the budget spent at step 20: past the warm-up by the clock
    control = TrainerControl()
    stopper = EarlyStoppingAfterWarmup(1, budget=budget)
    state.global_step = 20
    stopper.on_evaluate(args, state, control, {"eval_macro_f1": 0.1})
    assert control.should_training_stop


def test_a_run_its_budget_ends_decays_its_rate_to_zero_and_saves_the_time_spent(tmp_path):
    out = tmp_path / "out"
    argv = FAST + ["--data", str(emopia_class_folders(tmp_path / "set")), "--output_dir", str(out),
                   "--eval_fraction", "0.5", "--num_train_epochs", "1000", "--max_train_minutes", "0.1",
                   "--save_strategy", "epoch", "--save_total_limit", "1", "--baselines", "false",
                   "--early_stopping_patience", "0"]
    results = main(argv)
    assert results["stopped_by"] == "time budget"
    state = json.loads((out / "trainer_state.json").read_text())
    rates = [entry["learning_rate"] for entry in state["log_history"] if "learning_rate" in entry]
    peak = int(np.argmax(rates))
    assert 0 < peak < len(rates) - 1 and rates[-1] < 0.15 * rates[peak]  # warmed up, then decayed to about 0
    assert rates[peak] > 0.9 * results["recipe"]["learning_rate"]
    checkpoint = next(out.glob("checkpoint-*"))
    saved = json.loads((checkpoint / "trainer_state.json").read_text())["stateful_callbacks"]
    assert 0 < saved["TrainingTimeBudget"]["attributes"]["carried_seconds"] <= 6.0 + 5.0


@needs_accelerate
def test_two_processes_stop_on_the_same_step_when_the_budget_runs_out(tmp_path):
    """Fine-tuning under `accelerate launch` with two processes, ended by the time budget, saves its results and a
    learning rate decayed to about 0 (the budget's clock is agreed across ranks: next test)."""
    out = tmp_path / "out"
    launch, env = two_cpu_processes("train/finetune.py")
    command = [*launch, *[arg for arg in FAST if arg not in ("--use_cpu", "true")], "--disable_tqdm", "true",
               "--data", str(emopia_class_folders(tmp_path / "set")), "--output_dir", str(out),
               "--eval_fraction", "0.5", "--num_train_epochs", "1000", "--max_train_minutes", "0.1",
               "--baselines", "false", "--early_stopping_patience", "0"]
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    results = json.loads((out / "finetune_results.json").read_text())
    assert results["stopped_by"] == "time budget"
    state = json.loads((out / "trainer_state.json").read_text())
    rates = [entry["learning_rate"] for entry in state["log_history"] if "learning_rate" in entry]
    assert rates[-1] < 0.15 * max(rates)


AGREE_ON_THE_CLOCK = """
import os, sys, torch
from transformers import TrainerControl, TrainerState
from adversarial_midibert.finetuning.trainer import TrainingTimeBudget

def run(rank, port, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.distributed.init_process_group("gloo", rank=rank, world_size=2)
    budget = TrainingTimeBudget(minutes=1.0, carried_seconds=100.0 * rank)  # rank 1's clock is past the budget
    budget.on_train_begin(None, TrainerState(), TrainerControl())
    control = TrainerControl()
    budget.on_step_end(type("Args", (), {"device": torch.device("cpu")})(), TrainerState(), control)
    with open(f"{out}/rank{rank}", "w") as handle:
        handle.write(f"{budget.elapsed_seconds} {control.should_training_stop}")
    torch.distributed.destroy_process_group()

if __name__ == "__main__":
    torch.multiprocessing.start_processes(run, args=(int(sys.argv[1]), sys.argv[2]), nprocs=2, start_method="fork")
"""


def test_every_rank_follows_the_slowest_clock_so_all_stop_on_the_same_step(tmp_path):
    """If each rank read only its own clock, one could stop a step before the other, whose next gradient
    all-reduce would then wait for it forever; so the budget takes the largest time spent over the ranks."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    script = tmp_path / "agree.py"
    script.write_text(AGREE_ON_THE_CLOCK)
    done = subprocess.run([sys.executable, str(script), str(port), str(tmp_path)], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = [(tmp_path / f"rank{rank}").read_text().split() for rank in (0, 1)]
    assert [stop for _, stop in seen] == ["True", "True"]  # rank 0 stops too, though its own clock says 0 s
    assert float(seen[0][0]) == float(seen[1][0]) >= 100.0
