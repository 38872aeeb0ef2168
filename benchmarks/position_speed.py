"""Time per pre-training step by position scheme: `rotary` and `absolute` against the paper's
`relative_key_query` (the peer), same network, same batch, random masking, each side in its own process and the
sides alternating (allocator state inside one process skews a step ratio by 20-40 %).

Why it matters: `relative_key_query` adds an `L x L` bias to every attention score matrix, which costs two extra
score-sized matmuls per layer and keeps scaled-dot-product attention off its fused kernels; rotary positions are
relative too but rotate queries and keys instead, so no bias exists (docs/probes/README.md).

    python benchmarks/position_speed.py --threads 1 --clock cpu          # the tiny preset, 256-token windows
    python benchmarks/position_speed.py --preset small --threads 1 --clock cpu
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from clock import CLOCKS, add_alternation_arguments, run_alternating  # this script's folder is on sys.path

REPO = Path(__file__).resolve().parents[1]
SIDES = {
    "relative_key_query": {"position_embedding_type": "relative_key_query"},
    "absolute": {"position_embedding_type": "absolute"},
    "rotary": {"position_embedding_type": "rotary"},
}


def worker(args) -> dict:
    import torch

    sys.path.insert(0, str(REPO))
    from configuration_adversarial_midibert import AdversarialMidiBertConfig
    from modeling_adversarial_midibert import AdversarialMidiBertForPreTraining

    if args.threads:
        torch.set_num_threads(args.threads)
    now = CLOCKS[args.clock]
    dropout = {} if args.dropout is None else {"hidden_dropout_prob": args.dropout,
                                               "attention_probs_dropout_prob": args.dropout}
    config = AdversarialMidiBertConfig.from_preset(args.preset, **SIDES[args.worker], **dropout)
    torch.manual_seed(0)
    model = AdversarialMidiBertForPreTraining(config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    # Random regular ids: the step's cost does not depend on what the notes are.
    ids = torch.stack([torch.randint(0, min(size, 32), (args.batch_size, args.max_length))
                       for size in config.attribute_vocab_sizes], dim=-1)
    generator = torch.Generator().manual_seed(0)
    times = []
    for i in range(args.warmup + args.steps):
        start = now()
        model(input_ids=ids, masking="random", generator=generator).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if i >= args.warmup:
            times.append(now() - start)
    return {"side": args.worker, "step_s": statistics.median(times)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="tiny", help="config preset of the network (tiny, small, paper)")
    parser.add_argument("--max_length", type=int, default=256)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--dropout", type=float, default=None, help="override both dropouts (default: the preset's)")
    add_alternation_arguments(parser, SIDES, steps=8, warmup=2)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)))
        return
    passthrough = [f"--preset={args.preset}", f"--max_length={args.max_length}", f"--batch_size={args.batch_size}",
                   f"--steps={args.steps}", f"--warmup={args.warmup}", f"--threads={args.threads}",
                   f"--clock={args.clock}"] + ([] if args.dropout is None else [f"--dropout={args.dropout}"])
    results = {side: [r["step_s"] for r in runs]
               for side, runs in run_alternating(__file__, SIDES, passthrough, args.repeats, REPO).items()}
    print(f"shape: preset {args.preset}, batch {args.batch_size} x {args.max_length} tokens, dropout "
          f"{'as the preset' if args.dropout is None else args.dropout}, {args.steps} timed steps x {args.repeats} "
          f"processes per side (alternating); {args.clock} clock, {args.threads or 'default'} threads")
    peer = statistics.median(results["relative_key_query"])
    for side, values in results.items():
        median = statistics.median(values)
        print(f"{side:>18}: median {median * 1e3:8.1f} ms (min {min(values) * 1e3:.1f}, max {max(values) * 1e3:.1f})"
              f"  {peer / median:.2f}x the speed of relative_key_query")


if __name__ == "__main__":
    main()
