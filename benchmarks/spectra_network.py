"""One evaluation of the spectra UNet on a GPU: time per batch under precision x memory format x cuDNN autotuning x
torch.compile, against the arithmetic and memory floors.

    python benchmarks/spectra_network.py --model weights/spectra --batch-size 1024 --precision fp32 bf16 fp16 \
        --memory-format contiguous channels_last --cudnn-benchmark off on --compile off on --profile

Each point captures one network call (the sampler's call: noise, time, IC, label) in a CUDA graph, replays it
--warmup times, then times --repeats blocks of --replays replays with CUDA events and reports the median block
(ms per batch, us per spectrum-evaluation, and the achieved TFLOP/s from the FLOPs torch's FLOP counter counts
for one call). The output is checked against the fp32 eager network on the same inputs (relative L2 error), so
a fast variant that computes something else shows. --profile prints the ten most expensive GPU kernels of one
eager (uncaptured) call of each uncompiled point. Prints a table; --json writes the numbers.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from hicgen.engine.runtime import GraphRunner, autocast, compile_network
from hicgen.spectra.generate import load_spectra_model

MEMORY_FORMATS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}


def network_inputs(batch: int, device: torch.device, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Random sampler-like inputs: z_t (B,1,64,64) standard normal, t in (0, 1), IC (B,1,64,64) >= 0 of the
    normalised scale, label in [0, 1]."""
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(batch, 1, 64, 64, generator=gen)
    t = torch.rand(batch, generator=gen) * 0.98 + 0.01
    ic = torch.distributions.Gamma(2.0, 4.0).sample((batch, 1, 64, 64))
    label = torch.rand(batch, generator=gen)
    return tuple(x.to(device) for x in (z, t, ic, label))


def flops_per_call(net: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> int:
    """FLOPs of one network call as torch's FLOP counter counts them (convolutions, matrix products, attention)."""
    with FlopCounterMode(display=False) as counter:
        net(*inputs)
    return counter.get_total_flops()


def time_graph(call, inputs: tuple[torch.Tensor, ...], warmup: int, replays: int, repeats: int) -> tuple[float, torch.Tensor]:
    """Median ms per call over `repeats` blocks of `replays` CUDA-graph replays, and the output of the last."""
    runner = GraphRunner(call, enabled=True)
    for _ in range(warmup):
        out = runner(*inputs)
    blocks = []
    for _ in range(repeats):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(replays):
            out = runner(*inputs)
        stop.record()
        torch.cuda.synchronize()
        blocks.append(start.elapsed_time(stop) / replays)
    return statistics.median(blocks), out


def top_kernels(call, inputs: tuple[torch.Tensor, ...], count: int = 10) -> list[tuple[str, float]]:
    """(kernel name, ms) of the `count` most expensive GPU kernels of one eager call."""
    from torch.profiler import ProfilerActivity, profile

    call(*inputs)
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        call(*inputs)
        torch.cuda.synchronize()
    rows = sorted(prof.key_averages(), key=lambda e: e.device_time_total, reverse=True)[:count]
    return [(e.key[:90], e.device_time_total / 1000) for e in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="weights/spectra")
    parser.add_argument("--batch-size", type=int, nargs="+", default=[1024])
    parser.add_argument("--precision", nargs="+", default=["bf16"], choices=("fp32", "bf16", "fp16"))
    parser.add_argument("--memory-format", nargs="+", default=["contiguous"], choices=tuple(MEMORY_FORMATS))
    parser.add_argument("--cudnn-benchmark", nargs="+", default=["off"], choices=("on", "off"))
    parser.add_argument("--compile", nargs="+", default=["off"], choices=("on", "off"))
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--replays", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="print the top GPU kernels of each uncompiled point")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        parser.error("this benchmark times CUDA graphs and needs a CUDA device (for CPU speed use benchmarks/spectra.py)")
    device = torch.device("cuda")
    model = load_spectra_model(args.model, device)
    info = {"gpu": torch.cuda.get_device_name(device), "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"),
            "model": args.model}
    print(json.dumps(info), flush=True)
    rows = []
    print(f"{'batch':>6} {'prec':>5} {'format':>14} {'cudnn':>5} {'compile':>7} {'ms/batch':>9} {'us/spec':>8} "
          f"{'TFLOP/s':>8} {'rel.err':>8} {'setup s':>7}", flush=True)
    for batch in args.batch_size:
        inputs = network_inputs(batch, device)
        torch.backends.cudnn.allow_tf32 = False  # the reference in true fp32
        with torch.no_grad():
            flops = flops_per_call(model.net, inputs)
            reference = model.net(*inputs).double()
        torch.backends.cudnn.allow_tf32 = True
        for precision, fmt, cudnn, compiled in itertools.product(args.precision, args.memory_format,
                                                                 args.cudnn_benchmark, args.compile):
            torch.backends.cudnn.benchmark = cudnn == "on"
            net = model.net.to(memory_format=MEMORY_FORMATS[fmt])
            torch._dynamo.reset()
            network = compile_network(net) if compiled == "on" else net

            def call(*x: torch.Tensor) -> torch.Tensor:
                with autocast(device, precision):
                    return network(*x)

            t0 = time.perf_counter()
            with torch.no_grad():
                call(*inputs)  # compilation and cuDNN autotuning happen here
                torch.cuda.synchronize()
                setup = time.perf_counter() - t0
                ms, out = time_graph(call, inputs, args.warmup, args.replays, args.repeats)
            error = float(torch.linalg.vector_norm(out.double() - reference) / torch.linalg.vector_norm(reference))
            row = {"batch": batch, "precision": precision, "memory_format": fmt, "cudnn_benchmark": cudnn,
                   "compiled": compiled, "ms_per_batch": ms, "us_per_spectrum_eval": 1000 * ms / batch,
                   "tflops": flops / ms / 1e9, "relative_error": error, "setup_s": setup, "flops_per_call": flops}
            rows.append(row)
            print(f"{batch:>6} {precision:>5} {fmt:>14} {cudnn:>5} {compiled:>7} {ms:>9.3f} {row['us_per_spectrum_eval']:>8.2f} "
                  f"{row['tflops']:>8.1f} {error:>8.1e} {setup:>7.1f}", flush=True)
            if args.profile and compiled == "off":
                with torch.no_grad():
                    row["top_kernels"] = top_kernels(call, inputs)
                for name, kernel_ms in row["top_kernels"]:
                    print(f"    {kernel_ms:8.3f} ms  {name}", flush=True)
        model.net.to(memory_format=torch.contiguous_format)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"info": info, "results": rows}, handle, indent=1)
    best = min(rows, key=lambda r: r["us_per_spectrum_eval"])
    print("fastest:", json.dumps({k: best[k] for k in ("batch", "precision", "memory_format", "cudnn_benchmark",
                                                       "compiled", "ms_per_batch", "us_per_spectrum_eval")}))


if __name__ == "__main__":
    main()
