"""`pipeline`: transformers' `pipeline` for this package's MIDI tasks, which also takes a shipped checkpoint's short
name (`adversarial-midibert-small`) where transformers would look the name up on the Hub."""
from __future__ import annotations

from adversarial_midibert.presets import resolve_model_name


def pipeline(task: str, model: str, **kwargs):
    """
    `transformers.pipeline(task, model=..., trust_remote_code=True)` with `model` a checkpoint folder, a Hub id or a
    shipped short name. The tasks are the checkpoint's: `"midi-feature-extraction"` (any checkpoint),
    `"midi-classification"` and `"midi-note-classification"` (fine-tuned ones).

    Example:

    ```python
    >>> from adversarial_midibert.inference import pipeline
    >>> embed = pipeline("midi-feature-extraction", model="adversarial-midibert-small")
    >>> embed("song.mid").shape                                              # doctest: +SKIP
    (128,)

    ```
    """
    from transformers import pipeline as transformers_pipeline

    return transformers_pipeline(task, model=resolve_model_name(model), trust_remote_code=True, **kwargs)
