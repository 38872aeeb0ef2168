"""`masked_recovery`'s copy baseline: for each masked note, the most common value of each attribute among the
window's notes that were not chosen, scored on the same notes as the model; and the scripts that compare runs by
their recovery."""
import json

import datasets
import pytest
import torch

from adversarial_midibert.evaluation.recovery import masked_recovery
from conftest import tiny_config, window_batch
from modeling_adversarial_midibert import AdversarialMidiBertForPreTraining


def test_copy_baseline_is_right_when_the_window_agrees_and_wrong_when_nothing_repeats():
    config = tiny_config(position_embedding_type="absolute")
    lengths = [40, 30, 1]  # the one-note window has no unchosen note to copy from: counted as wrong
    ids, _ = window_batch(config, lengths)
    for b, n in enumerate(lengths):
        ids[b, 1:n + 1, 4] = 5                    # every note lasts the same: copying its duration is always right
        ids[b, 1:n + 1, 3] = torch.arange(n) + 20  # no pitch repeats: copying a pitch is never right
    windows = datasets.Dataset.from_dict({"input_ids": [ids[b, :n + 2].tolist() for b, n in enumerate(lengths)]})
    torch.manual_seed(0)
    result = masked_recovery(AdversarialMidiBertForPreTraining(config).eval(), windows, batch_size=2)
    notes = result["notes"]
    assert result["duration_copy"] == (notes - 1) / notes
    assert result["pitch_copy"] == 0.0
    assert 0.0 <= result["velocity_copy"] <= 1.0 and 0.0 <= result["duration"] <= 1.0


def test_recovery_by_corpus_rebuilds_the_validation_split_and_groups_it_by_folder(tmp_path, monkeypatch):
    from adversarial_midibert.presets import SAMPLE_MIDI
    from conftest import REPO, load_module

    monkeypatch.setenv("ADVERSARIAL_MIDIBERT_CACHE", str(tmp_path / "cache"))
    preset = tmp_path / "half_held_out.yaml"  # the sample's 18 songs: 2 % would hold none out
    preset.write_text("model:\n  config_preset: small\ndata:\n  validation_fraction: 0.5\n")
    script = load_module(REPO / "scripts" / "recovery_by_corpus.py", "recovery_by_corpus")
    manifest = str(SAMPLE_MIDI / "manifest.csv")
    valid, corpora = script.validation_windows(str(preset), manifest)
    assert set(corpora) <= {"emopia", "giantmidi_eval", "pop909"} and len(set(corpora)) >= 2
    results = script.main(["--manifest", manifest, "--preset", str(preset), "--models", "adversarial-midibert-small",
                           "--output", str(tmp_path / "by_corpus.json")])["adversarial-midibert-small"]
    assert set(results) == set(corpora) | {"all"}
    assert results["all"]["notes"] >= max(results[c]["notes"] for c in set(corpora)) > 0
    assert sum(results[c]["notes"] for c in set(corpora)) == pytest.approx(results["all"]["notes"], rel=0.1)


def test_recovery_masks_the_fixed_share_whatever_rate_the_model_was_pre_trained_with():
    # A run pre-trained with 40 % masking is measured on the same 15 % of notes as one pre-trained with 15 %, and
    # the model's own choice (no override) still follows its config.
    lengths = [60, 40]
    counts = {}
    for percent in (15, 40):
        config = tiny_config(position_embedding_type="absolute", mask_percent=percent, masking="random")
        ids, mask = window_batch(config, lengths)
        windows = datasets.Dataset.from_dict({"input_ids": [ids[b, :n + 2].tolist() for b, n in enumerate(lengths)]})
        model = AdversarialMidiBertForPreTraining(config).eval()
        counts[percent] = masked_recovery(model, windows)["notes"]
        with torch.no_grad():
            own = model(input_ids=ids, attention_mask=mask, generator=torch.Generator().manual_seed(0))
        assert int(own.num_chosen) == sum(round(percent / 100 * n) for n in lengths)
    assert counts[15] == counts[40] == 9 + 6


def test_recovery_curves_reads_a_run_folder_or_a_committed_curves_file_alike(tmp_path):
    from conftest import REPO, load_module

    script = load_module(REPO / "scripts" / "recovery_curves.py", "recovery_curves")
    curves = {"eval_random_recovery_accuracy_pitch": [[500, 0.03], [1000, 0.05]], "epoch": [[500, 0.5], [1000, 1.0]]}
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "training_curves.json").write_text(json.dumps(curves))
    (tmp_path / "copy.json").write_text(json.dumps(curves))
    script.main(["--run", f"folder={tmp_path / 'run'}", "--run", f"file={tmp_path / 'copy.json'}",
                 "--training_notes", "2000000", "--output", str(tmp_path / "out")])
    rows = [line for line in (tmp_path / "out" / "curves.md").read_text().splitlines() if "| 1000 |" in line]
    assert len(rows) == 2 and all("| 2.00 M | 0.050 |" in row for row in rows)
