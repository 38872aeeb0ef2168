"""The Hugging Face Hub side of training: what a checkpoint carries besides its weights.

- `model_card`: model cards filled from `model_cards/*.md` with a run's real data, settings and metrics;
- `push`: `HubTrainerMixin`, the card on save and push and the code files in every checkpoint push;
- `convert_authors`: the authors' published checkpoints converted into this package's classes.
"""
