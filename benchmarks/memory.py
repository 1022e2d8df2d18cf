"""Peak memory of one point-cloud training step versus event size (Pb-Pb-like events of up to ~10^4 particles).

Each measurement runs in a fresh subprocess: build the preset's model, make a batch of B events of N
particles (random standardised tokens, all real), then time and measure one full training step
(event + particle loss incl. the event-plane term, backward, Lion update). The step's peak memory is
    peak RSS after the step (getrusage ru_maxrss) - RSS before the step,
i.e. activations kept for the backward pass, gradients, optimiser state and temporaries; the weights and
the batch are excluded. On CPU, PyTorch's scaled_dot_product_attention with a boolean mask runs the
blockwise flash kernel (O(N) memory, like the memory-efficient CUDA kernel), and the kNN works in row
chunks, so memory should grow ~linearly in N; the script fits bytes = a + b N per event and extrapolates
to the '8 Pb-Pb events of 10^4 particles on one 80 GB GPU' target. CPU runs in float32: a CUDA run with
bf16 autocast keeps most activations in half the bytes, so the extrapolation is conservative, but it is an
extrapolation, not a GPU measurement.

    python benchmarks/memory.py --preset small --sizes 1000,2000,4000,10000
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def _rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    import os

    return pages * os.sysconf("SC_PAGE_SIZE")


def measure(preset: str, n: int, batch: int) -> dict:
    """One training step of `batch` events of `n` particles; returns the peak memory above the baseline."""
    import torch

    from hicgen.data.transforms import EVENT_DIM, NUM_FEATURES, PointCloudTransforms
    from hicgen.diffusion.schedules import CosineSchedule, noisy, target, x0_from_output
    from hicgen.models import build_pointcloud_models
    from hicgen.training.config import preset_config
    from hicgen.training.losses import event_plane_loss, particle_v_loss
    from hicgen.training.optim import Lion

    import numpy as np

    cfg = preset_config(preset)
    torch.manual_seed(0)
    models = build_pointcloud_models(cfg.architecture(3.47, EVENT_DIM, NUM_FEATURES))
    params = [p for m in models.values() for p in m.parameters()]
    opt = Lion(params, lr=1e-4, betas=cfg.betas)
    transforms = PointCloudTransforms(np.zeros(EVENT_DIM), np.ones(EVENT_DIM), np.zeros(6), np.ones(6))
    sched = CosineSchedule()
    x = torch.randn(batch, n, NUM_FEATURES)
    eps = torch.randn_like(x)
    e = torch.randn(batch, EVENT_DIM)
    mask = torch.ones(batch, n, dtype=torch.bool)
    t = torch.full((batch,), 0.3)
    base = _rss_bytes()
    start = time.perf_counter()
    z = noisy(sched, x, t, eps)
    v = models["particle"](z, t, e, mask)
    loss = particle_v_loss(v, target(sched, x, t, eps), mask)
    pt, phi = transforms.physical_pt_phi(x0_from_output(sched, z, t, v))
    loss = loss + event_plane_loss(pt, phi, mask, torch.zeros(batch), t)[0]
    loss = loss + models["event"](e, t).square().mean()
    loss.backward()
    opt.step()
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"preset": preset, "n": n, "batch": batch, "parameters": sum(p.numel() for p in params),
            "step_peak_bytes": max(0, peak - base), "step_seconds": round(seconds, 2), "threads": torch.get_num_threads()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="small", choices=("small", "base"))
    parser.add_argument("--sizes", default="1000,2000,4000,10000", help="particles per event, comma-separated")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.worker:
        print(json.dumps(measure(args.preset, sizes[0], args.batch)))
        return
    rows = []
    for n in sizes:
        out = subprocess.run([sys.executable, __file__, "--worker", "--preset", args.preset, "--sizes", str(n), "--batch", str(args.batch)],
                             capture_output=True, text=True, check=True)
        row = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(f"{row['preset']:5s} N={n:6d} B={row['batch']}: peak {row['step_peak_bytes'] / 2**20:9.1f} MiB per step "
              f"({row['step_peak_bytes'] / row['batch'] / 2**20:8.1f} MiB/event), {row['step_seconds']:.1f} s", flush=True)
    if len(rows) >= 2:
        import numpy as np

        ns = np.array([r["n"] for r in rows], dtype=float)
        per_event = np.array([r["step_peak_bytes"] / r["batch"] for r in rows], dtype=float)
        slope, intercept = np.polyfit(ns, per_event, 1)
        at = slope * 1e4 + intercept
        print(f"fit: {intercept / 2**20:.1f} MiB + {slope / 1024:.1f} KiB x N per event; "
              f"N=10^4: {at / 2**30:.2f} GiB/event -> batch 8: {8 * at / 2**30:.1f} GiB (float32, CPU); "
              f"events of 10^4 particles per 80 GB: {int(80e9 // at)}")
        print(json.dumps({"rows": rows, "bytes_per_particle": slope, "bytes_intercept": intercept}))


if __name__ == "__main__":
    main()
