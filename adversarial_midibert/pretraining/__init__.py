"""Adversarial pre-training (`train/pretrain.py` is the script; `run` is its body).

- `arguments`: `ModelArguments`, `DataArguments` and the flag parser over the YAML presets;
- `trainer`: `AdversarialTrainer` (attribute weights, freeze-book updates, masker metrics, exact resume);
- `freeze_book`: which notes of each song are frozen, with rank momentum;
- `masker_metrics`: the masker's pairwise AUC on held-out notes;
- `masker_report`: the training curves and the masker piano roll saved beside the checkpoint;
- `streaming`: pre-tokenized Parquet shards for corpora larger than memory (it keeps a freeze book per process);
- `run`: `main` / `run`, what `accelerate launch train/pretrain.py` executes.
"""
