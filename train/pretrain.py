"""Adversarial pre-training of Adversarial-MidiBERT on a folder of MIDI files.

The main job (default preset `tiny`, the MIDI sample shipped in `adversarial_midibert/sample_midi`, CPU, a few
minutes; leaves a checkpoint in `runs/pretrain` that `AutoModel` / `AutoTokenizer` load with
`trust_remote_code=True`):

    accelerate launch -q train/pretrain.py

One CPU process, your own MIDI:

    accelerate launch -q --cpu train/pretrain.py --preset tiny --data ../my_midis --output_dir runs/pretrain

(`-q`: a mistake then ends the output with the script's one-line `pretrain.py: error: ...` rather than the
launcher's `CalledProcessError` traceback; multi-process launches print torch's failure report after it anyway.)

Two CPU processes (gloo), e.g. to check data-parallel behaviour on a laptop:

    ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no \
        --dynamo_backend no train/pretrain.py --preset tiny

The paper's setting on 2 GPUs with bf16 (batch 8 = 4 per GPU):

    accelerate launch --multi_gpu --num_processes 2 train/pretrain.py --preset paper --bf16 \
        --data corpus/ --output_dir runs/paper --push_to_hub --hub_model_id me/adversarial-midibert

Several machines (here 2 x 8 GPUs; run on every machine with its own --machine_rank):

    accelerate launch --multi_gpu --num_machines 2 --num_processes 16 --machine_rank 0 \
        --main_process_ip 10.0.0.1 --main_process_port 29500 train/pretrain.py --preset paper --bf16 \
        --streaming_dir shards/ --max_steps 500000 --output_dir runs/paper

The plain-MLM baseline of the paper's ablation: add `--masking random`. Any `TrainingArguments` flag works
(`--gradient_accumulation_steps`, `--bf16`...). Resume after a crash or a kill with the same command plus
`--resume_from_checkpoint last` (the newest complete checkpoint of --output_dir) or a checkpoint folder: the
freeze book, the attribute weights, the epoch's accuracy sums and every process's masking generator come back
with the weights, so the run continues exactly as if it had not stopped.
"""
from __future__ import annotations

import sys
from pathlib import Path

try:  # a checkout without an install: the package is the folder beside train/
    import adversarial_midibert  # noqa: F401
except ImportError:  # pragma: no cover
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adversarial_midibert.pretraining.run import run

if __name__ == "__main__":
    sys.exit(run())
