"""Fine-tune Adversarial-MidiBERT on a sequence task (one label per piece) or a note task (one label per note).

    # a folder per class: my_set/<label>/*.mid
    accelerate launch train/finetune.py --model runs/pretrain --data my_set --output_dir runs/my_task
    # a csv/json manifest with path,label[,group] columns
    accelerate launch train/finetune.py --model runs/pretrain --manifest pieces.csv --output_dir runs/x
    # note labels from POP909's track names (melody / bridge / accompaniment) or velocity bins
    accelerate launch train/finetune.py --model runs/pretrain --task melody --data pop909/ --output_dir runs/mel
    # the paper's four tasks on the shared corpora
    accelerate launch train/finetune.py --model runs/pretrain --recipe emotion --output_dir runs/emotion
    # no pre-training (the paper's ablation): a fresh network from a preset
    accelerate launch train/finetune.py --model preset:tiny --recipe melody --output_dir runs/mel_scratch

The learning rate, warm-up and epoch count are chosen from the model (width, pre-trained or not) and the data
(`fit_recipe`), with evaluation every epoch, early stopping on dev macro-F1, the best epoch kept and a
class-weighted loss; any `TrainingArguments` flag overrides them (`--num_train_epochs`, `--learning_rate`, `--bf16`,
`--push_to_hub`...).
Without a given split, songs are split by song / group with `--split_seed`, never by window. Mask fine-tuning
(`--finetune_mask_percent`, 0 turns it off) and transposition (`--transpose`) act on training batches only;
evaluation is deterministic and reports accuracy and macro-F1 (window and song level for sequence tasks, note
level for note tasks). The run leaves in `output_dir`: the model (loadable with `AutoModelFor...Classification`
and `trust_remote_code=True`, labels in `config.json`), the tokenizer, `finetune_results.json` (metrics, the
majority and note-statistics `baselines` on the same dev windows, warnings, the chosen recipe, the split file by
file, skipped files with reasons), `confusion_matrix.png` and a model card (`README.md`) with both baselines.
"""
from __future__ import annotations

import sys
from pathlib import Path

try:  # a checkout without an install: the package is the folder beside train/
    import adversarial_midibert  # noqa: F401
except ImportError:  # pragma: no cover
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adversarial_midibert.finetuning.run import cli

if __name__ == "__main__":
    sys.exit(cli())
