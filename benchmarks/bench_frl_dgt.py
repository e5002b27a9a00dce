"""FRL-DGT training throughput and memory against the Branches baseline, measured in the same run.

    python benchmarks/bench_frl_dgt.py [--device cpu] [--batch 4] [--steps 3] [--threads N]

For each model: forward + backward (+ optimiser step) samples/s at the paper's input size (224), and
memory per sample: on CUDA the peak allocated memory of a step divided by the batch; on the CPU the
bytes autograd saves for the backward pass (the activation memory that grows with the batch), which
is deterministic where RSS is not. The last column is the ratio to the baseline (``branches``).
FRL-DGT is also split into its parts (DGM alone, Transformer Fusion alone) to show where time goes.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from miex_gen.device import resolve_device  # noqa: E402
from recognizers.models import create_model  # noqa: E402


def saved_bytes(fn) -> int:
    """Bytes of tensors autograd keeps for backward while ``fn()`` runs (activation memory)."""
    total = 0
    seen: set[int] = set()

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal total
        key = t.untyped_storage().data_ptr()
        if key not in seen:
            seen.add(key)
            total += t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    del out
    return total


def bench(name: str, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int,
          device: torch.device, step_fn=None) -> dict[str, float]:
    model.to(device).train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def step() -> torch.Tensor:
        if step_fn is not None:
            return step_fn()
        out = model(x)
        total, _ = model.loss(out, y, x)
        return total

    def train_step() -> None:
        total = step()
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()

    train_step()  # warm-up (allocations, kernels)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(steps):
        train_step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    batch = x.shape[0]
    if device.type == "cuda":
        mem = torch.cuda.max_memory_allocated() / batch
    else:
        mem = saved_bytes(step) / batch
    return {"name": name, "samples_s": steps * batch / seconds, "mib_per_sample": mem / 2**20,
            "params_m": sum(p.numel() for p in model.parameters()) / 1e6}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    torch.manual_seed(0)
    b = args.batch
    y = torch.arange(b, device=device) % 3

    rows = []
    branches = create_model("branches")
    xb = torch.rand(b, 2, branches.input_spec.channels, 224, 224, device=device)
    rows.append(bench("branches (baseline)", branches, xb, y, args.steps, device))

    frl = create_model("frl_dgt")
    x = torch.rand(b, 2, 1, 224, 224, device=device)
    rows.append(bench("frl_dgt", frl, x, y, args.steps, device))

    dgm_only = create_model("frl_dgt", dgm_pretrain_only=True)
    rows.append(bench("frl_dgt DGM warm-up (DGM trains)", dgm_only, x, y, args.steps, device))

    fusion = create_model("frl_dgt").fusion
    head = torch.nn.Linear(256, 3)
    inp = torch.rand(b, 4, 224, 224, device=device)
    fusion_model = torch.nn.ModuleDict({"fusion": fusion, "head": head})
    rows.append(bench("frl_dgt fusion only", fusion_model, inp, y, args.steps, device,
                      step_fn=lambda: torch.nn.functional.cross_entropy(
                          fusion_model["head"](fusion_model["fusion"](inp).mean(1)), y)))

    base = rows[0]
    print(f"device {device}, batch {b}, {args.steps} timed steps, torch threads {torch.get_num_threads()}")
    print(f"{'model':36s} {'params M':>9s} {'samples/s':>10s} {'MiB/sample':>11s} {'speed vs base':>14s} "
          f"{'mem vs base':>12s}")
    for r in rows:
        print(f"{r['name']:36s} {r['params_m']:9.2f} {r['samples_s']:10.2f} {r['mib_per_sample']:11.1f} "
              f"{r['samples_s'] / base['samples_s']:14.2f} {r['mib_per_sample'] / base['mib_per_sample']:12.2f}")
    mem_kind = "peak CUDA allocation" if device.type == "cuda" else "autograd-saved activations"
    print(f"memory = {mem_kind} per sample")


if __name__ == "__main__":
    main()
