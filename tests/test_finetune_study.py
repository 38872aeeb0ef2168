"""scripts/finetune_study.py: cell names, and the table that averages the fine-tuning seeds."""
from conftest import REPO, load_module

study = load_module(REPO / "scripts" / "finetune_study.py", "finetune_study")


def _cell(song_f1: float, best_epoch: int = 3) -> dict:
    return {"model_metrics": {"macro_f1": song_f1 - 0.1, "song_macro_f1": song_f1},
            "majority": {"macro_f1": 0.05, "song_macro_f1": 0.1},
            "note_statistics": {"macro_f1": 0.4, "song_macro_f1": 0.5},
            "labels": ["a", "b", "c"], "train_songs": 30, "dev_songs": 4,
            "epochs_run": best_epoch + 4, "best_epoch": best_epoch, "wall_seconds": 120.0}


def test_cells_are_named_by_start_and_seed():
    assert study.model_tag("preset:small") == "small_scratch"
    assert study.model_tag("adversarial-midibert-small") == "adversarial-midibert-small"
    assert study.model_tag("runs/my run") == "pretrained_my_run"
    assert study.cell_parts("pianist8/small_scratch/seed43") == ("pianist8", "small_scratch", 43)
    assert study.cell_parts("pianist8/tiny_scratch") == ("pianist8", "tiny_scratch", 42)  # before --seeds


def test_table_averages_seeds_and_compares_the_mean_with_note_statistics():
    summary = {"cells": {"emopia/small_scratch/seed1": _cell(0.4), "emopia/small_scratch/seed2": _cell(0.7, 5),
                         "emopia/adversarial-midibert-small/seed1": _cell(0.45)}}
    rows = {line.split(" | ")[1]: line for line in study.markdown_table(summary).splitlines()[2:]}
    scratch = rows["small_scratch"].split(" | ")
    assert scratch[2:7] == ["2", "0.550 (0.400-0.700)", "0.100", "0.500", "yes"]  # mean .55 reaches .5
    assert scratch[7] == "7 (3), 9 (5)"
    single = rows["adversarial-midibert-small"].split(" | ")
    assert single[2:7] == ["1", "0.450", "0.100", "0.500", "no"]


def test_versus_table_compares_the_means_of_starts_with_the_baseline():
    summary = {"cells": {"emopia/small_scratch/seed1": _cell(0.4), "emopia/small_scratch/seed2": _cell(0.6),
                         "emopia/ckpt/seed1": _cell(0.7), "emopia/ckpt/seed2": _cell(0.6),
                         "emopia/other/seed1": _cell(0.45),
                         "pianist8/ckpt/seed1": _cell(0.9), "pianist8/other/seed1": _cell(0.9)}}  # no baseline
    lines = study.versus_table(summary, ["ckpt", "other"], "small_scratch").splitlines()
    assert lines[0].count("(difference)") == 2
    assert lines[2:] == ["| emopia (3) | 0.500 | 0.650 (+0.150) | 0.450 (-0.050) | 0.500 | 0.100 |"]


def test_the_docs_show_the_committed_study():
    import json

    summary = json.loads((REPO / "scripts" / "finetune_study_results.json").read_text())
    assert study.markdown_table(summary) in (REPO / "docs" / "finetuning.md").read_text()
    readme = (REPO / "README.md").read_text()
    # the two shipped checkpoints (adversarial and its random-masking control) and the 10,000-step one the first replaced
    starts = ["adversarial-midibert-small", "adversarial-midibert-small_10000_bf16", "adversarial-midibert-small-random"]
    assert study.versus_table(summary, starts, "small_scratch") in readme
