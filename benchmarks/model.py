"""Training-step speed of the Adversarial-MidiBERT backbone against transformers' own BERT of the same shape.

Forward + backward (dropout on, a fixed random linear loss on the last hidden state) of the backbone, Octuple ids
in; tokens per second and peak memory. The peers run the SAME Octuple embedding (8 tables, concatenated,
projected) and feed it to `BertModel(inputs_embeds=...)` without pooler, which is how the authors ran their model:

- `absolute` positions: transformers 5.x `BertModel` (this venv, sdpa attention). Goal: ours >= 0.95x.
- `relative_key_query` positions: transformers 4.x `BertModel(position_embedding_type="relative_key_query")`,
  the authors' backbone, run by `.bench_venv/bin/python` (5.x silently ignores the option; 4.x falls back to
  eager attention with an `(L, L, head_dim)` gather). Goal: ours >= 2x. Build that venv once with
  `python -m venv .bench_venv && .bench_venv/bin/pip install torch==2.13.0 "transformers<5"`.

Each measurement is a separate process, the two sides alternate (A, B, A, B, ...), and the table quotes medians
with min and max: inside one process, allocator state skews a training-step ratio by 20-40 %. Peak memory is
`torch.cuda.max_memory_allocated` on a GPU; on CPU it is the growth of the process's peak resident set over its
size after building the model and inputs (the activations, gradients and workspace of the step; noisy). "saved"
is exact: the bytes of the distinct tensors autograd keeps for the backward pass of one forward.

`--check-4x` instead checks numerically that our `relative_key_query` backbone, given the weights of a 4.x
`BertModel` + Octuple embedding (their token-type row folded into the projection bias), returns the same hidden
states: the authors' network, exactly.

Usage (from the repository root):

    python benchmarks/model.py                        # every case, 3 alternations each
    python benchmarks/model.py --cases tiny-absolute --repeats 5 --steps 10
    python benchmarks/model.py --device cuda          # on a GPU machine
    python benchmarks/model.py --threads 1 --clock cpu   # steadier on a CPU shared with other jobs
    python benchmarks/model.py --check-4x
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from clock import add_clock_argument  # benchmarks/clock.py: this script's folder is on sys.path

REPO = Path(__file__).resolve().parents[1]
BENCH_PYTHON = REPO / ".bench_venv" / "bin" / "python"
REGULAR_VOCAB_SIZES = (256, 128, 129, 256, 128, 32, 254, 49)
VOCAB_SIZES = tuple(n + 4 for n in REGULAR_VOCAB_SIZES)

SHAPES = {
    # name: layers, hidden, heads, intermediate, attribute embedding width
    "paper": dict(layers=12, hidden=768, heads=12, inner=3072, embedding=256),
    "tiny": dict(layers=2, hidden=128, heads=4, inner=256, embedding=32),
    "mid": dict(layers=4, hidden=256, heads=4, inner=1024, embedding=64),  # the issue's 4 x 256 x 512-note shape
}
# name: shape, positions, peer, batch, length. The paper shape runs a short batch: 2 shared CPU cores manage
# about 150 tokens/s at 1024 notes, so a full window would take minutes per measurement.
CASES = {
    "tiny-absolute": ("tiny", "absolute", "bert5", 8, 512),
    "paper-absolute": ("paper", "absolute", "bert5", 2, 256),
    "mid-relative": ("mid", "relative_key_query", "bert4", 4, 512),
    "tiny-relative": ("tiny", "relative_key_query", "bert4", 8, 512),
    "paper-relative": ("paper", "relative_key_query", "bert4", 2, 256),
    "paper-relative-1024": ("paper", "relative_key_query", "bert4", 1, 1024),  # the paper's window length
}
GPU_CASES = {  # full 1024-note windows where a GPU makes them cheap
    "tiny-absolute": ("tiny", "absolute", "bert5", 32, 1024),
    "paper-absolute": ("paper", "absolute", "bert5", 8, 1024),
    "mid-relative": ("mid", "relative_key_query", "bert4", 16, 512),
    "tiny-relative": ("tiny", "relative_key_query", "bert4", 32, 1024),
    "paper-relative": ("paper", "relative_key_query", "bert4", 8, 1024),
    "paper-relative-1024": ("paper", "relative_key_query", "bert4", 8, 1024),
}


# --- worker: one measurement per process ------------------------------------------------------------------------


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _octuple_embedding(torch, shape):
    """The authors' embedding: per-attribute tables times sqrt(width), concatenated, projected."""
    nn = torch.nn

    class OctupleEmbedding(nn.Module):
        def __init__(self):
            super().__init__()
            self.tables = nn.ModuleList(nn.Embedding(n, shape["embedding"]) for n in VOCAB_SIZES)
            self.projection = nn.Linear(len(VOCAB_SIZES) * shape["embedding"], shape["hidden"])
            self.scale = shape["embedding"] ** 0.5

        def forward(self, ids):
            return self.projection(torch.cat([t(ids[..., j]) for j, t in enumerate(self.tables)], -1) * self.scale)

    return OctupleEmbedding()


def _bert_config(transformers, shape, position):
    return transformers.BertConfig(
        hidden_size=shape["hidden"], num_hidden_layers=shape["layers"], num_attention_heads=shape["heads"],
        intermediate_size=shape["inner"], max_position_embeddings=1024, position_embedding_type=position,
    )


def build_side(side: str, shape: dict, position: str):
    """Returns `(module, forward(ids, mask) -> last hidden state)`."""
    import torch

    if side == "ours":
        sys.path.insert(0, str(REPO))
        from configuration_adversarial_midibert import AdversarialMidiBertConfig
        from modeling_adversarial_midibert import AdversarialMidiBertModel

        config = AdversarialMidiBertConfig(
            hidden_size=shape["hidden"], num_hidden_layers=shape["layers"], num_attention_heads=shape["heads"],
            intermediate_size=shape["inner"], attribute_embedding_size=shape["embedding"],
            max_position_embeddings=1024, position_embedding_type=position,
        )
        model = AdversarialMidiBertModel(config)
        return model, lambda ids, mask: model(input_ids=ids, attention_mask=mask).last_hidden_state
    import transformers

    bert = transformers.BertModel(_bert_config(transformers, shape, position), add_pooling_layer=False)
    embedding = _octuple_embedding(torch, shape)
    module = torch.nn.ModuleDict({"embedding": embedding, "bert": bert})
    return module, lambda ids, mask: bert(inputs_embeds=embedding(ids), attention_mask=mask).last_hidden_state


def run_worker(side: str, case: tuple, steps: int, warmup: int, device: str, threads: int = 0) -> dict:
    import torch
    import transformers

    if threads:
        torch.set_num_threads(threads)

    shape_name, position, _, batch, length = case
    shape = SHAPES[shape_name]
    torch.manual_seed(0)
    module, forward = build_side(side, shape, position)
    module.to(device).train()
    generator = torch.Generator().manual_seed(0)
    ids = torch.stack([torch.randint(0, n, (batch, length), generator=generator) for n in REGULAR_VOCAB_SIZES], -1)
    ids, mask = ids.to(device), torch.ones(batch, length, dtype=torch.long, device=device)
    target = torch.randn(batch, length, shape["hidden"], generator=generator).to(device)
    cuda = device.startswith("cuda")

    def step():
        module.zero_grad(set_to_none=True)
        (forward(ids, mask) * target).mean().backward()

    rss_before = _rss_bytes()  # model, inputs and the interpreter; the step's memory comes on top
    for _ in range(warmup):
        step()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(steps):
        step()
    if cuda:
        torch.cuda.synchronize()
    elapsed, cpu_elapsed = time.perf_counter() - start, time.process_time() - cpu_start
    if cuda:
        peak = torch.cuda.max_memory_allocated()
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss_before
    return {"tokens_per_s": batch * length * steps / elapsed,
            "tokens_per_cpu_s": batch * length * steps / cpu_elapsed, "peak_mb": peak / 2**20,
            "saved_mb": saved_for_backward(torch, module, lambda: forward(ids, mask)) / 2**20,
            "transformers": transformers.__version__, "torch": torch.__version__}


def saved_for_backward(torch, module, run) -> int:
    """Bytes of the distinct non-parameter tensors autograd keeps for the backward pass of one forward: the
    activation memory of a training step, exact and unaffected by the allocator or other processes."""
    parameters = {p.untyped_storage().data_ptr() for p in module.parameters()}
    storages = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in parameters:
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        output = run()
    del output
    return sum(storages.values())


# --- numerical check against transformers 4.x ---------------------------------------------------------------------


def check_4x_worker(path: str) -> None:
    """In the 4.x venv: a random 4.x BertModel (relative_key_query) + Octuple embedding, inputs and outputs."""
    import torch
    import transformers

    shape = SHAPES["tiny"]
    torch.manual_seed(0)
    bert = transformers.BertModel(_bert_config(transformers, shape, "relative_key_query"), add_pooling_layer=False)
    with torch.no_grad():  # non-trivial LayerNorms and token-type row, so the check can fail
        for name, parameter in bert.named_parameters():
            if "LayerNorm" in name or "token_type" in name:
                parameter.add_(torch.randn_like(parameter) * 0.1)
    embedding = _octuple_embedding(torch, shape)
    bert.eval()
    generator = torch.Generator().manual_seed(1)
    ids = torch.stack([torch.randint(0, n, (3, 40), generator=generator) for n in REGULAR_VOCAB_SIZES], -1)
    mask = torch.ones(3, 40, dtype=torch.long)
    mask[1, 30:] = 0
    mask[2, 7:] = 0
    with torch.no_grad():
        hidden = bert(inputs_embeds=embedding(ids), attention_mask=mask).last_hidden_state
    torch.save({"bert": bert.state_dict(), "embedding": embedding.state_dict(), "ids": ids, "mask": mask,
                "hidden": hidden, "transformers": transformers.__version__}, path)


def check_4x() -> float:
    import torch

    sys.path.insert(0, str(REPO))
    from configuration_adversarial_midibert import AdversarialMidiBertConfig
    from modeling_adversarial_midibert import AdversarialMidiBertModel

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "bert4.pt")
        subprocess.run([str(BENCH_PYTHON), __file__, "--check-4x-worker", path], check=True)
        saved = torch.load(path)
    shape = SHAPES["tiny"]
    config = AdversarialMidiBertConfig(
        hidden_size=shape["hidden"], num_hidden_layers=shape["layers"], num_attention_heads=shape["heads"],
        intermediate_size=shape["inner"], attribute_embedding_size=shape["embedding"], max_position_embeddings=1024,
        position_embedding_type="relative_key_query",
    )
    model = AdversarialMidiBertModel(config).eval()
    bert, embedding = saved["bert"], saved["embedding"]
    state = {}
    for j in range(len(VOCAB_SIZES)):
        state[f"embeddings.attribute_embeddings.{j}.weight"] = embedding[f"tables.{j}.weight"]
    state["embeddings.projection.weight"] = embedding["projection.weight"]
    # BertEmbeddings adds token-type row 0 to every position: a constant, folded into the projection bias.
    state["embeddings.projection.bias"] = embedding["projection.bias"] + bert["embeddings.token_type_embeddings.weight"][0]
    state["embeddings.LayerNorm.weight"] = bert["embeddings.LayerNorm.weight"]
    state["embeddings.LayerNorm.bias"] = bert["embeddings.LayerNorm.bias"]
    for key, value in bert.items():
        if key.startswith("encoder."):
            state[key] = value
    skipped = sorted(set(bert) - {k for k in bert if k.startswith("encoder.")} - {
        "embeddings.token_type_embeddings.weight", "embeddings.LayerNorm.weight", "embeddings.LayerNorm.bias"})
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not missing and not unexpected, (missing, unexpected)
    with torch.no_grad():
        ours = model(input_ids=saved["ids"], attention_mask=saved["mask"]).last_hidden_state
    real = saved["mask"].bool()
    difference = (ours[real] - saved["hidden"][real]).abs().max().item()
    print(f"transformers {saved['transformers']} BertModel(relative_key_query) + Octuple embedding vs ours, "
          f"tiny shape, 3 x 40 notes with padding: max |difference| on real tokens = {difference:.2e}")
    print(f"4.x weights not needed by our backbone (never read by their model): {skipped}")
    return difference


# --- orchestrator -------------------------------------------------------------------------------------------------


def measure(side: str, case_name: str, steps: int, warmup: int, device: str, threads: int) -> dict:
    python = str(BENCH_PYTHON) if side == "bert4" else sys.executable
    worker_side = "ours" if side == "ours" else "bert"
    command = [python, __file__, "--worker", worker_side, "--case", case_name, "--steps", str(steps),
               "--warmup", str(warmup), "--device", device, "--threads", str(threads)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{side} worker failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def machine() -> str:
    import torch

    if torch.cuda.is_available():
        device = torch.cuda.get_device_name(0)
    else:
        device = f"CPU {platform.processor() or platform.machine()}, {os.cpu_count()} cores visible, " \
                 f"{torch.get_num_threads()} torch threads"
    return f"{platform.node()}: {device}; Python {platform.python_version()}, torch {torch.__version__}"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", default=",".join(c for c in CASES if c != "paper-relative-1024"),
                        help=f"comma-separated, from {list(CASES)}")
    parser.add_argument("--repeats", type=int, default=3, help="alternations A, B per case")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads per worker (0: torch's default)")
    add_clock_argument(parser)
    parser.add_argument("--check-4x", action="store_true")
    parser.add_argument("--worker", choices=["ours", "bert"], help=argparse.SUPPRESS)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--check-4x-worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    cases = GPU_CASES if args.device.startswith("cuda") else CASES

    if args.check_4x_worker:
        check_4x_worker(args.check_4x_worker)
        return
    if args.worker:
        print(json.dumps(run_worker(args.worker, cases[args.case], args.steps, args.warmup, args.device,
                                    args.threads)))
        return
    if args.check_4x:
        check_4x()
        return

    print(machine())
    print(f"{args.steps} timed steps after {args.warmup} warm-up steps per process; {args.repeats} alternations; "
          f"forward + backward, train mode; tokens per {args.clock} second, torch threads "
          f"{args.threads or 'default'}; median [min - max]")
    header = f"{'case':16} {'batch x notes':>13} {'peer':>22} {'ours tok/s':>26} {'peer tok/s':>26} " \
             f"{'ratio':>22} {'ours MB':>8} {'peer MB':>8} {'ours saved MB':>14} {'peer saved MB':>14}"
    print(header)
    for name in args.cases.split(","):
        shape, position, peer, batch, length = cases[name]
        if peer == "bert4" and not BENCH_PYTHON.exists():
            print(f"{name:16} skipped: {BENCH_PYTHON} missing (see the module docstring)")
            continue
        ours, theirs = [], []
        for _ in range(args.repeats):
            ours.append(measure("ours", name, args.steps, args.warmup, args.device, args.threads))
            theirs.append(measure(peer, name, args.steps, args.warmup, args.device, args.threads))
        speed = "tokens_per_cpu_s" if args.clock == "cpu" else "tokens_per_s"
        ratios = [a[speed] / b[speed] for a, b in zip(ours, theirs)]

        def span(values, fmt):
            return f"{statistics.median(values):{fmt}} [{min(values):{fmt}}-{max(values):{fmt}}]"

        peer_name = f"BertModel {theirs[0]['transformers']}"
        print(f"{name:16} {f'{batch} x {length}':>13} {peer_name:>22} "
              f"{span([r[speed] for r in ours], '.0f'):>26} "
              f"{span([r[speed] for r in theirs], '.0f'):>26} {span(ratios, '.2f'):>22} "
              f"{statistics.median(r['peak_mb'] for r in ours):8.0f} "
              f"{statistics.median(r['peak_mb'] for r in theirs):8.0f} "
              f"{ours[0]['saved_mb']:14.0f} {theirs[0]['saved_mb']:14.0f}", flush=True)


if __name__ == "__main__":
    main()
