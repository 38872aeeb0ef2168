"""What both trainers need to leave complete Hub repos: the package's model card, and the model's code files in
every checkpoint push.

`Trainer._push_from_checkpoint` copies only the config, weights and tokenizer from a checkpoint folder into the
output folder before uploading it, so a mid-training revision would carry a `config.json` whose `auto_map` names
`modeling_adversarial_midibert.py` without that file: `from_pretrained(..., trust_remote_code=True)` would fail
on it. The checkpoint folders hold the code files (``save_pretrained`` copies them), so they are copied along.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any


class HubTrainerMixin:
    """Mixed into a `transformers.Trainer` subclass that sets `model_card_kind` ("pretrained" or "finetuned").

    `model_card_facts` holds the keyword arguments of `adversarial_midibert.hub.model_card.write_model_card` (data,
    settings, metrics, command); the scripts fill it before saving or pushing.
    """

    model_card_kind: str
    model_card_facts: dict[str, Any] | None = None

    def create_model_card(self, **kwargs) -> None:
        """Write `README.md` in the output folder from `model_cards/<kind>.md` and `model_card_facts`.
        `Trainer.push_to_hub` calls this before uploading, so the Hub gets the run's real card, not the generic one."""
        if self.model_card_facts is None:
            return super().create_model_card(**kwargs)
        if not self.is_world_process_zero():
            return
        from adversarial_midibert.hub.model_card import write_model_card

        # Trainer derives `self.hub_model_id` from the output folder when --hub_model_id is not given.
        repo_id = (self.args.hub_model_id or getattr(self, "hub_model_id", None)) if self.args.push_to_hub else None
        write_model_card(self.args.output_dir, self.model_card_kind, repo_id=repo_id, **self.model_card_facts)

    def _push_from_checkpoint(self, checkpoint_folder: str) -> None:
        if self.is_world_process_zero():
            for code_file in Path(checkpoint_folder).glob("*.py"):
                shutil.copy(code_file, Path(self.args.output_dir) / code_file.name)
        super()._push_from_checkpoint(checkpoint_folder)
