"""Spectra model speed: spectra/s vs ODE steps, per sampler, on CPU or GPU.

    python benchmarks/spectra.py --preset small --steps 8 16 32 --samplers ddim dpm++2m heun --batch-size 64
    python benchmarks/spectra.py --model weights/spectra --device cuda --precision bf16 fp32 --cuda-graphs on off \
        --compile off on --batch-size 256 1024 4096 --spectra 8192 --repeats 3

Without --model freshly initialised UNets of each --preset are timed (the cost does not depend on the weights).
Every combination of memory format x cuDNN autotuning x precision x CUDA graphs x torch.compile x batch size x
sampler x steps is a point: one
warm-up call (CUDA graph capture and compilation included there; its time is reported), then --repeats timed calls of
`generate_records` on --spectra initial states: the spectra and their Poisson histograms for a smooth-spectrum
model, in one pass as `hicgen spectra` makes them; prints a table and, with --json, writes the numbers. It first times the CPU Poisson
histograms (per-spectrum generators) on one thread and on the thread pool, side by side.
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import time

import numpy as np
import torch

from hicgen.diffusion.samplers import evaluations
from hicgen.diffusion.schedules import VPSchedule, schedule_config
from hicgen.engine.runtime import resolve_device, resolve_precision
from hicgen.models.unet import UNet, count_parameters, preset
from hicgen.spectra.generate import (
    SpectraModel, generate_records, load_spectra_model, poisson_histograms,
)
from hicgen.spectra.normalization import SpectraNormalization


def untrained_model(name: str, device: torch.device) -> SpectraModel:
    """A randomly initialised spectra model of preset `name` on the paper's 64 x 64 grid."""
    torch.manual_seed(0)
    net = UNet(preset(name)).to(device).eval()
    norm = SpectraNormalization(count_scale=4.0, ic_scale=100.0, eta_s_min=0.0, eta_s_max=0.2, count_max=20.0)
    config = {"kind": "spectra", "architecture": net.cfg.to_dict(), "schedule": schedule_config(VPSchedule())}
    return SpectraModel(net, config, VPSchedule(), norm, np.linspace(0, 2, 65), np.linspace(-np.pi, np.pi, 65), device,
                        source=f"untrained {name}")


def time_poisson(n: int, repeats: int = 3) -> dict[str, float]:
    """Spectra/s of the Poisson histograms of n 64 x 64 spectra on one thread and on the thread pool, alternated
    `repeats` times (best of each), so the two share the machine's state."""
    expected = np.random.default_rng(1).gamma(1.0, 5.0, (n, 64, 64)).astype(np.float32)
    ic_index, sample_index = np.arange(n), np.zeros(n, int)
    best = {"one_thread": 0.0, "pool": 0.0}
    for _ in range(repeats):
        for name, workers in (("one_thread", 1), ("pool", None)):
            t0 = time.perf_counter()
            poisson_histograms(expected, 0, ic_index, sample_index, workers)
            best[name] = max(best[name], n / (time.perf_counter() - t0))
    return best


def time_point(model: SpectraModel, ic: np.ndarray, sampler: str, steps: int, precision: str, graphs: str,
               batch_size: int, repeats: int, compiled: bool = False) -> dict:
    """Spectra/s of `generate_records` (spectra + histograms) on `ic` at one setting, after one warm-up call (graph capture
    and torch.compile included there, timed separately as warmup_s); on CUDA also the peak GPU memory of the timed
    calls."""
    device = model.device

    def run():
        return generate_records(model, ic, 0.1, 1, steps, sampler, 0, str(device), precision, batch_size, graphs,
                                compiled=compiled)

    t0 = time.perf_counter()
    run()
    warmup = time.perf_counter() - t0
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(repeats):
        run()
    if device.type == "cuda":
        torch.cuda.synchronize()
    rate = len(ic) * repeats / (time.perf_counter() - t0)
    row = {"model": model.source, "sampler": sampler, "steps": steps, "nfe": evaluations(sampler, steps),
           "precision": precision, "cuda_graphs": graphs, "compiled": compiled, "batch_size": batch_size,
           "spectra_per_s": rate, "warmup_s": warmup}
    if device.type == "cuda":
        row["peak_gpu_memory_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="checkpoint folder (default: untrained UNets of --preset)")
    parser.add_argument("--preset", nargs="+", default=["small"], choices=("tiny", "small", "base"))
    parser.add_argument("--steps", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--samplers", nargs="+", default=["ddim", "dpm++2m", "heun"])
    parser.add_argument("--spectra", type=int, default=16, help="spectra per timed call")
    parser.add_argument("--batch-size", type=int, nargs="+", default=[16])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", nargs="+", default=["auto"], help="e.g. bf16 fp16 fp32 on CUDA")
    parser.add_argument("--cuda-graphs", nargs="+", default=["auto"], help="e.g. on off")
    parser.add_argument("--compile", nargs="+", default=["off"], choices=("on", "off"),
                        help="torch.compile the network: e.g. off on")
    parser.add_argument("--memory-format", nargs="+", default=["contiguous"], choices=("contiguous", "channels_last"),
                        help="memory format of the network's weights (and so of its activations)")
    parser.add_argument("--cudnn-benchmark", nargs="+", default=["off"], choices=("on", "off"),
                        help="let cuDNN time its convolution algorithms for each shape")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    models = [load_spectra_model(args.model, device)] if args.model else [untrained_model(p, device) for p in args.preset]
    ic = np.random.default_rng(0).gamma(2.0, 20.0, (args.spectra, 64, 64)).astype(np.float32)
    info = {"device": str(device),
            "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine(),
            "threads": torch.get_num_threads(), "spectra": args.spectra, "repeats": args.repeats,
            "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"),
            "parameters": {m.source: count_parameters(m.net) for m in models}}
    print(json.dumps(info))
    draws = time_poisson(max(args.spectra, 1024))
    print(json.dumps({"poisson_histograms_per_s": draws}))
    rows = []
    print(f"{'model':>16} {'prec':>5} {'graphs':>6} {'compile':>7} {'format':>13} {'cudnn':>5} {'batch':>6} {'sampler':>9} "
          f"{'steps':>5} {'NFE':>4} {'spectra/s':>10} {'ms/spectrum':>12} {'warmup s':>8}")
    precisions = [resolve_precision(p, device) for p in args.precision]
    layout = None
    for model, fmt, cudnn, precision, graphs, compiled, batch_size, sampler, steps in itertools.product(
            models, args.memory_format, args.cudnn_benchmark, precisions, args.cuda_graphs, args.compile,
            args.batch_size, args.samplers, args.steps):
        if (model, fmt) != layout:
            model.set_memory_format(fmt == "channels_last")
            torch._dynamo.reset()
            layout = (model, fmt)
        torch.backends.cudnn.benchmark = cudnn == "on"
        row = time_point(model, ic, sampler, steps, precision, graphs, batch_size, args.repeats, compiled == "on")
        row.update(memory_format=fmt, cudnn_benchmark=cudnn)
        rows.append(row)
        rate = row["spectra_per_s"]
        print(f"{model.source[-16:]:>16} {precision:>5} {graphs:>6} {compiled:>7} {fmt:>13} {cudnn:>5} {batch_size:>6} "
              f"{sampler:>9} {steps:>5} {row['nfe']:>4} {rate:>10.2f} {1000 / rate:>12.3f} {row['warmup_s']:>8.1f}",
              flush=True)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"info": info, "poisson_histograms_per_s": draws, "results": rows}, handle, indent=1)


if __name__ == "__main__":
    main()
