"""Checks that a tokenizer, a model and a run's settings fit together, made when a run starts rather than found
as an `IndexError` (or a silently useless loss) thousands of steps into it.

Shared by pre-training, fine-tuning and inference:

- `check_tokenizer_fits_model`: every id the tokenizer can emit indexes the model's tables.
- `min_notes_for_masker_targets` / `check_windows_train_the_masker`: windows long enough for eq. 3's targets.
- `load_tokenizer_or_default`: a checkpoint's tokenizer, or a default one with a warning naming its settings.
"""
from __future__ import annotations

import logging
import math
import os

logger = logging.getLogger(__name__)


class IncompatibleTokenizerError(ValueError):
    """A tokenizer emits ids that the model's embedding tables or positions cannot hold."""


def check_tokenizer_fits_model(tokenizer, config, *, model_name: str = "the model") -> None:
    """
    Raise `IncompatibleTokenizerError` unless the model's tables and positions hold every id the tokenizer emits.

    The special ids (PAD, MASK, BOS, EOS) follow each attribute's regular ids, so the two vocabularies must be
    EQUAL, not only the model's large enough: a model with 64 bar ids reads the tokenizer's bar PAD (256) out of
    its table, an `IndexError` mid-training.

    Args:
        tokenizer (`OctupleTokenizer`): gives `regular_vocab_sizes` and `max_length`.
        config (`AdversarialMidiBertConfig`): gives `attribute_vocab_sizes` and `max_position_embeddings`.
        model_name (`str`, *optional*): how the model is named in the message (e.g. its path).

    Example:

    ```python
    >>> from configuration_adversarial_midibert import AdversarialMidiBertConfig
    >>> from tokenization_octuple import OctupleTokenizer
    >>> config = AdversarialMidiBertConfig.from_preset("tiny", attribute_vocab_sizes=[64, 128, 129, 256, 128, 32, 254, 49])
    >>> try:
    ...     check_tokenizer_fits_model(OctupleTokenizer(max_length=256), config)
    ... except IncompatibleTokenizerError as error:
    ...     print(str(error).split(" (")[0])
    the model does not fit the Octuple tokenizer: the model has 64 bar ids, the tokenizer 256

    ```
    """
    from configuration_adversarial_midibert import ATTRIBUTES

    model_sizes, tokenizer_sizes = list(config.attribute_vocab_sizes), list(tokenizer.regular_vocab_sizes)
    differing = [f"{m} {name} ids, the tokenizer {t}" for name, m, t in zip(ATTRIBUTES, model_sizes, tokenizer_sizes)
                 if m != t]
    if differing:
        raise IncompatibleTokenizerError(
            f"{model_name} does not fit the Octuple tokenizer: {model_name} has " + "; ".join(differing)
            + f" (special ids follow the regular ones, so the sizes must be equal: attribute_vocab_sizes="
              f"{tokenizer_sizes})")
    if tokenizer.max_length > config.max_position_embeddings:
        raise IncompatibleTokenizerError(
            f"windows of {tokenizer.max_length} tokens exceed the max_position_embeddings "
            f"({config.max_position_embeddings}) of {model_name}: use --max_length {config.max_position_embeddings} "
            f"or less")


def _chosen_count(real_notes: int, percent: float) -> int:
    # The model's rule (`choose_notes`): round half up, at least one note when any may be chosen.
    return max(1, math.floor(real_notes * percent / 100 + 0.5)) if percent > 0 else 0


def min_notes_for_masker_targets(mask_percent: float) -> int | None:
    """
    Fewest notes a window needs for the masker to get any target (eq. 3 needs 2 chosen notes: the hardest gets
    target 1, the easiest target 0); `None` when no window length is enough (`mask_percent` 0).

    Example:

    ```python
    >>> min_notes_for_masker_targets(15)   # round(0.15 * 10) = 2 chosen notes
    10

    ```
    """
    if mask_percent <= 0:
        return None
    notes = 1
    while _chosen_count(notes, mask_percent) < 2:
        notes += 1
    return notes


def check_windows_train_the_masker(max_length: int, mask_percent: float, masker_target_percent: float) -> None:
    """
    Raise `ValueError` when no window of `max_length` tokens (BOS and EOS included) can hold enough notes for a
    masker target: the run would train with a masker loss of exactly 0, learning nothing, without a word.

    Example:

    ```python
    >>> check_windows_train_the_masker(3, 15, 30)
    Traceback (most recent call last):
    ...
    ValueError: --max_length 3 leaves 1 note per window; with mask_percent 15 the masker's targets (eq. 3, q = 30 %) need 2 chosen notes, i.e. windows of at least 10 notes: use --max_length 12 or more (or --masking random)

    ```
    """
    needed = min_notes_for_masker_targets(mask_percent)
    capacity = max_length - 2
    if needed is None or capacity < needed:
        notes = "note" if capacity == 1 else "notes"
        need = (f"windows of at least {needed} notes: use --max_length {needed + 2} or more" if needed else
                "at least one chosen note: mask_percent must be above 0")
        raise ValueError(f"--max_length {max_length} leaves {capacity} {notes} per window; with mask_percent "
                         f"{mask_percent:g} the masker's targets (eq. 3, q = {masker_target_percent:g} %) need 2 "
                         f"chosen notes, i.e. {need} (or --masking random)")


def short_window_share(note_counts, mask_percent: float) -> float:
    """Share of windows (given their note counts) too short for any masker target."""
    needed = min_notes_for_masker_targets(mask_percent)
    counts = list(note_counts)
    if not counts:
        return 0.0
    return sum(needed is None or n < needed for n in counts) / len(counts)


def _download_kwargs(hub_kwargs: dict) -> dict:
    return {k: v for k, v in hub_kwargs.items()
            if k in ("revision", "token", "cache_dir", "local_files_only", "force_download", "subfolder")}


def has_tokenizer_files(name_or_path: str | os.PathLike, **hub_kwargs) -> bool:
    """Whether a checkpoint folder or Hub repo holds the `OctupleTokenizer` settings file."""
    from transformers.utils import cached_file

    from tokenization_octuple import SETTINGS_FILE

    found = cached_file(name_or_path, SETTINGS_FILE, _raise_exceptions_for_missing_entries=False,
                        _raise_exceptions_for_connection_errors=False, **_download_kwargs(hub_kwargs))
    return found is not None


def load_tokenizer_or_default(name_or_path: str | os.PathLike, config, **hub_kwargs):
    """
    The tokenizer saved with a checkpoint or, when the checkpoint has none, a default `OctupleTokenizer` whose
    settings a warning names (windows as long as the model's positions allow, at most 1024 tokens).

    Args:
        name_or_path (`str` or `os.PathLike`): checkpoint folder or Hub id.
        config (`AdversarialMidiBertConfig`): the checkpoint's config (bounds the default window).
        hub_kwargs: `revision`, `token`, `cache_dir`... for a Hub id.

    Returns:
        `OctupleTokenizer`.

    Example:

    ```python
    >>> tok = load_tokenizer_or_default("runs/emotion", config)     # doctest: +SKIP
    ```
    """
    from tokenization_octuple import SETTINGS_FILE, OctupleTokenizer

    if has_tokenizer_files(name_or_path, **hub_kwargs):
        return OctupleTokenizer.from_pretrained(name_or_path, **_download_kwargs(hub_kwargs))
    tokenizer = OctupleTokenizer(max_length=min(1024, config.max_position_embeddings))
    logger.warning("%s has no tokenizer files (%s); using a default tokenizer: %r. Save the tokenizer the model "
                   "was trained with beside it if its windows differ", name_or_path, SETTINGS_FILE, tokenizer)
    return tokenizer


__all__ = ["IncompatibleTokenizerError", "check_tokenizer_fits_model", "check_windows_train_the_masker",
           "has_tokenizer_files", "load_tokenizer_or_default", "min_notes_for_masker_targets", "short_window_share"]
