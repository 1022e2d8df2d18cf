"""Where the time of one `hicgen spectra`-like call goes on a GPU: the shipped model, torch.compile'd network
(channels-last, cuDNN autotuning), bf16, CUDA graphs, dpm++2m 4 steps, 8192 spectra in batches of 1024 with their
Poisson histograms (`generate_records`, as `hicgen spectra` makes them). Times one call after two warm-up calls,
then profiles one more and prints the GPU kernels and host operations that took longest.

    python benchmarks/spectra_profile.py
"""
from __future__ import annotations

import sys
import time

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile

from hicgen.spectra.generate import generate_records, load_spectra_model


def main() -> None:
    if not torch.cuda.is_available():
        print("spectra_profile.py: needs a CUDA device", file=sys.stderr)
        raise SystemExit(2)
    torch.backends.cudnn.benchmark = True
    model = load_spectra_model("weights/spectra", "cuda")
    model.set_memory_format(True)
    ic = np.random.default_rng(0).gamma(2.0, 20.0, (8192, 64, 64)).astype(np.float32)

    def run() -> tuple[np.ndarray, np.ndarray]:
        return generate_records(model, ic, 0.1, 1, 4, "dpm++2m", 0, "cuda", "bf16", 1024, "on", compiled=True)

    run()
    run()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    run()
    torch.cuda.synchronize()
    wall = time.perf_counter() - t0
    print(f"one call: {wall*1000:.1f} ms, {len(ic)/wall:.0f} spectra/s")
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        run()
        torch.cuda.synchronize()
    ev = prof.key_averages()
    gpu_total = sum(e.self_device_time_total for e in ev) / 1000
    print(f"GPU kernel time total {gpu_total:.1f} ms")
    for e in sorted(ev, key=lambda e: e.self_device_time_total, reverse=True)[:12]:
        print(f"  GPU {e.self_device_time_total/1000:8.2f} ms  n={e.count:5d}  {e.key[:80]}")
    for e in sorted(ev, key=lambda e: e.self_cpu_time_total, reverse=True)[:15]:
        print(f"  CPU {e.self_cpu_time_total/1000:8.2f} ms  n={e.count:5d}  {e.key[:80]}")


if __name__ == "__main__":
    main()
