"""Evaluation: how good a model is, and against what.

- `metrics`: the shipped `evaluate` metric (accuracy, macro-F1; window, song or note level), `compute_metrics`
  for the Trainer, confusion matrices;
- `baselines`: the majority class and a logistic regression on note statistics, on a run's own split;
- `representation`: frozen-embedding linear probes and ASAP retrieval (behind `benchmarks/representation.py`);
- `recovery`: masked-note recovery of a pre-trained checkpoint on any windows (the shipped checkpoint's check).
"""
