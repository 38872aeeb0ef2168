"""scripts/freeze_book_replay.py: the offline replay of recorded freeze-update scores (the recording itself is a
pre-training run; the replay is what turns it into the numbers of docs/pretraining.md)."""
import numpy as np

from conftest import REPO, load_module

replay_script = load_module(REPO / "scripts" / "freeze_book_replay.py", "freeze_book_replay")


def test_replay_reports_consistent_and_drifting_maskers(capsys):
    rng = np.random.default_rng(0)
    steady = rng.random(1000)
    records = []
    for _ in range(8):
        records.append({"steady": {0: steady}, "drifting": {0: rng.random(1000)}})
    replay_script.replay(records, momenta=[0.0, 0.7], freeze_percent=30, unfreeze_percent=10, seed=1)
    lines = capsys.readouterr().out.splitlines()
    steady_lines = lines[lines.index(next(l for l in lines if l.startswith("steady"))):][:3]
    assert "1.00 1.00 1.00" in steady_lines[0]  # the same ranking at every update
    assert all("max 0.270" in line for line in steady_lines[1:])
    drifting = lines[lines.index(next(l for l in lines if l.startswith("drifting"))):][:3]
    paper_max = float(drifting[1].split("max ")[1].split(",")[0])
    smoothed_max = float(drifting[2].split("max ")[1].split(",")[0])
    assert paper_max > 0.6 and smoothed_max < paper_max
