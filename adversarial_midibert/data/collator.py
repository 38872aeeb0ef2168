"""Batching of Octuple windows: pad every window to the longest of the batch with PAD rows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch


class OctupleDataCollator:
    """Pad a list of windows into a batch.

    Each feature is a dict with `input_ids` (a list of `[8]` id rows, BOS and EOS included, unpadded) and any of:
    `note_labels` (one int per row, -100 where nothing is predicted), integer or float scalars (`song_index`,
    `window_start`, an integer `label`...), which are stacked. Strings and `None` (`song_id`, a label name) are
    left out of the batch: tensors only.

    Args:
        tokenizer_or_pad_ids (`OctupleTokenizer` or `Sequence[int]`):
            A tokenizer (its `pad_ids` are used) or the 8 PAD ids themselves.
        pad_to_multiple_of (`int`, *optional*):
            Round the padded length up to a multiple of this (tensor-core friendly lengths on GPUs).

    Returns (when called):
        `dict` with `input_ids` (`torch.LongTensor` of shape `(batch_size, seq_len, 8)`), `attention_mask`
        (`(batch_size, seq_len)`, 1 on BOS, notes and EOS), `labels` (`(batch_size, seq_len)`, -100 on padding) when
        the features have `note_labels`, and one `(batch_size,)` tensor per scalar field.

    Example:

    >>> from adversarial_midibert.data.collator import OctupleDataCollator
    >>> pad = (256, 128, 129, 256, 128, 32, 254, 49)
    >>> collate = OctupleDataCollator(pad)
    >>> batch = collate([{"input_ids": [[1] * 8] * 3, "song_index": 0}, {"input_ids": [[2] * 8] * 2, "song_index": 5}])
    >>> batch["input_ids"].shape, batch["attention_mask"].tolist(), batch["song_index"].tolist()
    (torch.Size([2, 3, 8]), [[1, 1, 1], [1, 1, 0]], [0, 5])
    >>> batch["input_ids"][1, 2].tolist() == list(pad)
    True
    """

    def __init__(self, tokenizer_or_pad_ids: Any, pad_to_multiple_of: int | None = None):
        pad_ids = getattr(tokenizer_or_pad_ids, "pad_ids", tokenizer_or_pad_ids)
        pad_ids = tuple(int(i) for i in pad_ids)
        if len(pad_ids) != 8:
            raise ValueError(f"expected 8 PAD ids (one per Octuple attribute), got {len(pad_ids)}")
        self.pad_ids = pad_ids
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        if not features:
            raise ValueError("cannot collate an empty list of windows")
        windows = [np.asarray(f["input_ids"], dtype=np.int64).reshape(-1, 8) for f in features]
        length = max(len(w) for w in windows)
        if self.pad_to_multiple_of:
            length = -(-length // self.pad_to_multiple_of) * self.pad_to_multiple_of
        input_ids = np.empty((len(windows), length, 8), dtype=np.int64)
        input_ids[:] = np.asarray(self.pad_ids, dtype=np.int64)
        attention_mask = np.zeros((len(windows), length), dtype=np.int64)
        for b, window in enumerate(windows):
            input_ids[b, : len(window)] = window
            attention_mask[b, : len(window)] = 1
        batch = {"input_ids": torch.from_numpy(input_ids), "attention_mask": torch.from_numpy(attention_mask)}

        if "note_labels" in features[0]:
            labels = np.full((len(windows), length), -100, dtype=np.int64)
            for b, f in enumerate(features):
                note_labels = np.asarray(f["note_labels"], dtype=np.int64)
                if len(note_labels) != len(windows[b]):
                    raise ValueError(f"window {b}: {len(note_labels)} note labels for {len(windows[b])} tokens")
                labels[b, : len(note_labels)] = note_labels
            batch["labels"] = torch.from_numpy(labels)

        for key, value in features[0].items():
            if key in ("input_ids", "note_labels", "attention_mask"):
                continue
            if isinstance(value, (bool, int, np.integer)):
                batch[key] = torch.tensor([int(f[key]) for f in features], dtype=torch.long)
            elif isinstance(value, (float, np.floating)):
                batch[key] = torch.tensor([float(f[key]) for f in features], dtype=torch.float32)
        return batch
