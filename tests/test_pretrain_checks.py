"""Pre-training refuses, when it starts, runs that would crash or learn nothing later (issue 14), and the script
reports such mistakes as one line that `accelerate launch -q` ends with."""
import os
import subprocess

import pytest
import torch
from conftest import ACCELERATE, REPO, needs_accelerate

from adversarial_midibert.data.compatibility import (
    IncompatibleTokenizerError,
    check_tokenizer_fits_model,
    min_notes_for_masker_targets,
    short_window_share,
)
from adversarial_midibert.pretraining.run import main
from configuration_adversarial_midibert import REGULAR_VOCAB_SIZES, AdversarialMidiBertConfig
from modeling_adversarial_midibert import choose_notes, masker_targets
from tokenization_octuple import OctupleTokenizer


def run_args(tmp_path, *flags):
    return ["--output_dir", str(tmp_path / "run"), "--cache_dir", str(tmp_path / "cache"), "--max_songs", "2",
            "--max_steps", "1", "--save_strategy", "no", "--eval_strategy", "no", "--disable_tqdm", "true", *flags]


def test_model_with_a_smaller_bar_vocabulary_is_refused_before_training(tmp_path):
    # Before: IndexError "index out of range in self" from the embedding, mid-training.
    sizes = [64, *REGULAR_VOCAB_SIZES[1:]]
    preset = tmp_path / "small_bars.yaml"
    preset.write_text(f"model:\n  config_preset: tiny\n  attribute_vocab_sizes: {sizes}\n")
    with pytest.raises(IncompatibleTokenizerError, match="has 64 bar ids, the tokenizer 256"):
        main(run_args(tmp_path, "--preset", str(preset), "--max_length", "64"))
    assert not (tmp_path / "cache").exists()  # refused before any MIDI was read


def test_tokenizer_model_check_covers_positions_and_passes_a_matching_pair():
    config = AdversarialMidiBertConfig.from_preset("tiny", max_position_embeddings=64)
    check_tokenizer_fits_model(OctupleTokenizer(max_length=64), config)
    with pytest.raises(IncompatibleTokenizerError, match="windows of 128 tokens exceed the max_position_embeddings"):
        check_tokenizer_fits_model(OctupleTokenizer(max_length=128), config)


def test_windows_too_short_for_masker_targets_are_refused(tmp_path):
    # Before: --max_length 3 trained with masker loss 0 and no word.
    with pytest.raises(ValueError, match="--max_length 3 leaves 1 note per window.*use --max_length 12 or more"):
        main(run_args(tmp_path, "--max_length", "3"))


@pytest.mark.parametrize("percent", [15, 10, 30, 50])
def test_minimum_notes_agree_with_the_models_own_rules(percent):
    # The model's choose_notes + masker_targets give targets from exactly this many notes on, not one note fewer.
    needed = min_notes_for_masker_targets(percent)
    for notes, has_targets in ((needed, True), (needed - 1, False)):
        selectable = torch.ones(1, notes, dtype=torch.bool)
        chosen = choose_notes(torch.rand(1, notes), selectable, torch.tensor([notes]), percent)
        _, has_target = masker_targets(torch.rand(1, notes), chosen, 30)
        assert bool(has_target.any()) is has_targets, (percent, notes)
    assert short_window_share([needed - 1, needed, needed + 5, 1], percent) == 0.5


@needs_accelerate
def test_launcher_output_ends_with_the_scripts_one_line_error(tmp_path):
    # `accelerate launch` without -q adds a CalledProcessError traceback after the child's message; with -q the
    # single-process launcher exits 1 silently, so the script's own line is the last one.
    done = subprocess.run([ACCELERATE, "launch", "-q", "--cpu", "train/pretrain.py", *run_args(tmp_path, "--max_length", "3")],
                          capture_output=True, text=True, cwd=REPO, timeout=300,
                          env={**os.environ, "ADVERSARIAL_MIDIBERT_TRACEBACK": ""})
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("pretrain.py: error: --max_length 3 leaves 1 note per window"), done.stderr[-2000:]
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("flag, value", [("--num_proc", "0"), ("--transpose_semitones", "-1"), ("--stride", "-2"),
                                         ("--per_device_train_batch_size", "0")])
def test_bad_counts_are_refused_with_the_flags_name(flag, value):
    # Before: --num_proc 0 and a negative transposition were accepted silently; a zero batch size failed only
    # after the whole corpus was tokenized.
    from adversarial_midibert.pretraining.arguments import parse_pretraining_args

    with pytest.raises(ValueError, match=f"{flag} must be at least"):
        parse_pretraining_args([flag, value])
