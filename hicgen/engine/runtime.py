"""Where and how the networks run: device, precision (autocast), and CUDA-graph capture per input shape.

The same code path serves CPU and GPU: on CPU precision 'auto' is fp32 (bf16 for a caller that asks for it where
the CPU computes bf16 natively) and CUDA graphs are off.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import torch

from hicgen.errors import InputError


def start_cpu_thread_pool() -> None:
    """Run one parallel elementwise op, so that torch's CPU thread pool starts on it.

    With torch 2.13's CPU wheel on this project's 2-core AVX-512 VMs, the first parallel region of a process went
    wrong on the worker thread: in 17-50 % of fresh processes, half the elements of a first torch.sqrt, log or
    ** 0.5 (3,200 floats) came out up to 3e-4 off in relative terms (a training-normalization test failed that way
    when run alone). An add of 65,536 floats first prevented it in every process tried (tests/test_engine.py)."""
    torch.ones(1 << 16).add_(1.0)


start_cpu_thread_pool()  # at import: `hicgen run`, spectra, truth hydro and training import this module

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
GRAPH_MODES = ("auto", "on", "off")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(name: str) -> torch.device:
    """'auto' (CUDA when usable, else CPU), 'cpu', 'cuda' or 'cuda:N'; InputError when unusable."""
    if name == "auto":
        from hicgen.environment import best_device

        name = best_device()
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InputError(f"--device must be auto, cpu, cuda or cuda:N, got '{name}'") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda was asked for but no CUDA device is usable here (use --device cpu)")
    if device.type not in ("cpu", "cuda"):
        raise InputError(f"--device must be auto, cpu, cuda or cuda:N, got '{name}'")
    return device


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 in hardware (Intel AMX or AVX512-BF16), where oneDNN runs bf16 convolutions
    faster than fp32 (the spectra UNet 1.7x on an AMX VM, docs/benchmarks.md); elsewhere bf16 would be emulated, so
    'auto' stays fp32. torch exposes the check only privately, so a torch without it counts as no."""
    checks = (getattr(torch.cpu, "_is_amx_tile_supported", None), getattr(torch.cpu, "_is_avx512_bf16_supported", None))
    return any(check is not None and bool(check()) for check in checks)


def resolve_precision(precision: str, device: torch.device, cpu_bf16: bool = False) -> str:
    """The precision actually used: 'auto' = bf16 on CUDA (fp16 where bf16 is unsupported); on CPU fp32, or bf16
    when the caller's network was validated in bf16 (cpu_bf16) and the CPU has it natively (cpu_has_native_bf16)."""
    if precision not in PRECISIONS:
        raise InputError(f"--precision must be one of {', '.join(PRECISIONS)}, got '{precision}'")
    if precision == "auto":
        if device.type != "cuda":
            return "bf16" if cpu_bf16 and device.type == "cpu" and cpu_has_native_bf16() else "fp32"
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if precision == "fp16" and device.type == "cpu":
        raise InputError("--precision fp16 needs a CUDA device (use fp32 or bf16 on CPU)")
    return precision


def resolve_graphs(mode: str, device: torch.device) -> bool:
    """Whether to capture CUDA graphs: 'auto' = on for CUDA, off on CPU; 'on' without CUDA is an error."""
    if mode not in GRAPH_MODES:
        raise InputError(f"--cuda-graphs must be one of {', '.join(GRAPH_MODES)}, got '{mode}'")
    if mode == "on" and device.type != "cuda":
        raise InputError("--cuda-graphs on needs a CUDA device (use auto or off on CPU)")
    return device.type == "cuda" and mode != "off"


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Autocast context for the network calls (a no-op for fp32). The weight-cast cache is disabled so
    that the context can live inside a captured CUDA graph."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=_DTYPES[precision], cache_enabled=False)


COMPILE_BACKEND = "inductor"  # torch.compile's code generator (tests trace with "aot_eager", which generates no code)


def compile_network(net: torch.nn.Module) -> Callable[..., torch.Tensor]:
    """`net` through torch.compile for fixed input shapes (one compilation per batch shape; the first call of a
    shape compiles, ~1 minute). Inductor's own CUDA graphs stay off: GraphRunner captures the whole ODE solve,
    compiled kernels included. See compile_function for failures."""
    return compile_function(net, "the network", dynamic=False)


def compile_function(fn: Callable, what: str, dynamic: bool | None) -> Callable:
    """`fn` through torch.compile (COMPILE_BACKEND, fullgraph=True, so code that does not trace whole fails at its
    first call). A compilation that fails (e.g. no C++ compiler for the CPU, no Triton for the GPU) is an
    InputError naming its cause and `what` was being built, so the CLI says it in one line."""
    compiled = torch.compile(fn, backend=COMPILE_BACKEND, dynamic=dynamic, fullgraph=True)

    def call(*inputs):
        try:
            return compiled(*inputs)
        except torch._dynamo.exc.TorchDynamoException as err:
            root: BaseException = err
            while root.__cause__ is not None or getattr(root, "inner_exception", None) is not None:
                root = root.__cause__ or root.inner_exception  # the backend's own error, not dynamo's wrapper
            if isinstance(root, subprocess.CalledProcessError):
                raise InputError(f"--compile: the C++ compiler could not build {what} ({compiler_error(root)}); "
                                 "run without --compile, or name another compiler in the CXX environment "
                                 "variable") from None
            first = next((line.strip() for line in str(root).splitlines() if line.strip()), "")
            cause = f"{type(root).__name__}: {first}" if first else type(root).__name__
            raise InputError(f"--compile: torch.compile could not build {what} ({cause[:200]}); "
                             "run without --compile") from None

    return call


def compiler_error(failed: subprocess.CalledProcessError) -> str:
    """The compiler's own reason from a failed build: its program name, then its first line holding 'error:'
    (the command line alone, thousands of characters of flags, does not say why), with GCC's failing pass."""
    output = failed.output or b""
    text = output.decode(errors="replace") if isinstance(output, bytes) else str(output)
    lines = [line.strip() for line in text.splitlines()]
    command = [str(a) for a in failed.cmd] if isinstance(failed.cmd, (list, tuple)) else str(failed.cmd).split()
    program = Path(command[0]).name if command else "the compiler"
    reason = next((line for line in lines if "error:" in line), f"exit status {failed.returncode}")
    reason = re.sub(r"^\S+?:\d+(:\d+)?: ", "", reason)  # drop the location 'kernel.cpp:3:19: '
    stage = next((line.rstrip(":") for line in lines if line.startswith("during ")), None)
    return f"{program}: {reason[:160]}" + (f", {stage}" if stage else "")


class GraphRunner:
    """Calls fn(*tensors) -> tensor, through one CUDA graph per distinct input signature when enabled.

    The first call with a new signature warms fn up on a side stream, captures it, and keeps static
    input/output buffers; later calls copy their inputs in and replay. All graphs share one memory pool
    (they never run concurrently) and outputs are cloned before the next replay can overwrite them.
    With enabled=False it simply calls fn.
    """

    def __init__(self, fn: Callable[..., torch.Tensor], enabled: bool) -> None:
        self.fn = fn
        self.enabled = enabled
        self._graphs: dict[tuple, tuple[torch.cuda.CUDAGraph, list[torch.Tensor], torch.Tensor]] = {}
        self._pool = torch.cuda.graph_pool_handle() if enabled else None

    @property
    def captured(self) -> int:
        """Number of graphs captured so far (one per input shape)."""
        return len(self._graphs)

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return self.fn(*inputs)
        key = tuple((tuple(t.shape), t.dtype) for t in inputs)
        if key not in self._graphs:
            static = [t.clone() for t in inputs]
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                self.fn(*static)  # warm-up: lazy initialisation must not happen during capture
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=self._pool):
                out = self.fn(*static)
            self._graphs[key] = (graph, static, out)
        graph, static, out = self._graphs[key]
        for buffer, value in zip(static, inputs):
            buffer.copy_(value)
        graph.replay()
        return out.clone()
