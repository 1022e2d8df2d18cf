"""Generation engine on a tiny untrained checkpoint: determinism, shards, buckets, centrality, cuts, NaN guard."""

from __future__ import annotations

import dataclasses
import math

import h5py
import numpy as np
import pytest
import torch

import hicgen
from hicgen.checkpoint import load_checkpoint
from hicgen.engine.buckets import ALIGN, GROWTH, bucket_size, bucket_sizes, plan_batches
from hicgen.engine.generate import EventGenerator, RunSettings, generate, parse_centrality
from hicgen.engine.models import check_model_system, default_model
from hicgen.engine.runtime import GraphRunner, resolve_graphs, resolve_precision
from hicgen.engine.seeding import parse_shard, stream_seed
from hicgen.errors import CheckpointError, HicgenError, InputError
from tiny_model import ETA_MAX, PT_MIN, make_tiny_checkpoint

FAST = {"steps": 4, "batch_size": 32, "max_tokens": 512}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return make_tiny_checkpoint(tmp_path_factory.mktemp("weights") / "oo")


def events_of(model, n=40, **settings):
    return hicgen.data.batch.EventBatch.concat(list(generate("OO", n, model=model, **{**FAST, **settings})))


def read_h5(path):
    with h5py.File(path, "r") as f:
        out = {}
        f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
        return out


def test_same_seed_same_hdf5_content(model, tmp_path):
    for name in ("a.h5", "b.h5"):
        stats = generate("OO", 50, model=model, out=tmp_path / name, seed=7, **FAST)
        assert stats.extra["written_events"] == 50
    a, b = read_h5(tmp_path / "a.h5"), read_h5(tmp_path / "b.h5")
    assert a.keys() == b.keys() and "particles/pt" in a and "events/centrality" in a
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    other = read_h5(generate("OO", 50, model=model, out=tmp_path / "c.h5", seed=8, **FAST).extra["path"])
    assert not np.array_equal(other["events/b"], a["events/b"])


def test_shards_are_disjoint_streams(model):
    keys = []
    for shard in ("0/3", "1/3", "2/3"):
        batch = events_of(model, 60, seed=3, shard=shard)
        assert len(batch) == 60
        keys.append({(round(b, 9), round(q, 9)) for b, q in zip(batch.events["b"], batch.events["q2x"])})
        assert len(keys[-1]) == 60
    assert not (keys[0] & keys[1]) and not (keys[0] & keys[2]) and not (keys[1] & keys[2])
    assert len({stream_seed(3, s, "particle", 0) for s in range(100)}) == 100


def test_events_are_whole_and_in_acceptance(model):
    batch = events_of(model, 70)
    assert len(batch) == 70
    np.testing.assert_array_equal(batch.events["mult"], batch.multiplicity)  # particle branch made mult particles
    assert batch.events["mult"].min() >= 1
    p = batch.particles
    assert all(np.isfinite(p[k]).all() for k in ("pt", "eta", "phi"))
    assert (np.abs(p["eta"]) <= ETA_MAX).all() and (p["pt"] >= PT_MIN).all() and (np.abs(p["phi"]) <= np.pi).all()
    assert set(np.unique(p["pid"])) <= {211, -211, 321, -321, 2212, -2212, 11, -11, 13, -13, 3222, 3112}


def test_bucket_ladder_bounds_padding():
    sizes = bucket_sizes(np.arange(1, 20001))
    n = np.arange(1, 20001)
    assert (sizes >= n).all() and (sizes % ALIGN == 0).all()
    assert (sizes <= GROWTH * n + ALIGN - 1).all()  # padding <= 25% of the real tokens + alignment
    assert np.unique(sizes).size < 40  # a few dozen shapes (CUDA graphs) up to 2e4 particles
    assert bucket_size(1) == 8


def test_plan_batches_covers_each_event_once_within_budget():
    mult = np.random.default_rng(0).integers(1, 3000, 500)
    plan = plan_batches(mult, max_tokens=8192)
    members = np.concatenate([idx for _, idx in plan])
    assert np.array_equal(np.sort(members), np.arange(500))
    for size, idx in plan:
        assert (mult[idx] <= size).all() and (len(idx) == 1 or len(idx) * size <= 8192)


def test_engine_uses_buckets(model):
    bundle, _ = load_checkpoint(model)
    gen = EventGenerator(bundle, RunSettings(events=64, **FAST))
    batch = hicgen.data.batch.EventBatch.concat(list(gen.batches()))
    assert gen.stats.real_tokens == batch.offsets[-1]
    assert gen.stats.padded_tokens == bucket_sizes(batch.multiplicity).sum()
    assert gen.stats.padding_waste < 0.5


def test_a_stop_request_ends_the_solve_at_its_next_network_evaluation(model):
    """Under stop_on_signals, a SIGTERM during a particle-network evaluation stops the run before the next one (a
    KeyboardInterrupt raised there, not mid-evaluation), dropping the unfinished batch; a whole solve takes
    `steps` evaluations."""
    import os
    import signal

    from hicgen.engine.stopping import stop_on_signals

    bundle, _ = load_checkpoint(model)
    evaluations = []

    def count(module, args):
        evaluations.append(1)

    def signal_at_first(module, args):
        if not evaluations:
            os.kill(os.getpid(), signal.SIGTERM)
        evaluations.append(1)

    handle = bundle.particle_model.register_forward_pre_hook(count)
    next(EventGenerator(bundle, RunSettings(events=64, **FAST)).batches())
    handle.remove()
    assert len(evaluations) >= 2 * FAST["steps"]  # at least two solves in a batch
    evaluations.clear()
    handle = bundle.particle_model.register_forward_pre_hook(signal_at_first)
    gen = EventGenerator(bundle, RunSettings(events=64, **FAST))
    with stop_on_signals(), pytest.raises(KeyboardInterrupt):
        next(gen.batches())
    handle.remove()
    assert len(evaluations) == 1 and gen.stats.events == 0


def test_chunks_hold_fewer_events_where_the_multiplicity_is_high(model, monkeypatch):
    """Without --batch-size a chunk (written at once) holds about DEFAULT_CHUNK_PARTICLES particles at the model's
    mean multiplicity in the class; the event branch keeps its batch; --batch-size sets both."""
    import hicgen.engine.generate as engine

    bundle, _ = load_checkpoint(model)
    mean, central = bundle.centrality.mean_mult(), bundle.centrality.mean_mult(0, 20)
    assert central > 1.3 * mean
    monkeypatch.setitem(engine.DEFAULT_CHUNK_PARTICLES, "cpu", math.ceil(8 * mean))
    settings = {"steps": 4, "max_tokens": 512, "device": "cpu"}
    gen = EventGenerator(bundle, RunSettings(events=20, **settings))
    assert (gen.chunk_events, gen.batch_size) == (8, engine.DEFAULT_BATCH["cpu"])
    assert [len(chunk) for chunk in gen.batches()] == [8, 8, 4]
    assert EventGenerator(bundle, RunSettings(events=20, centrality=(0.0, 20.0), **settings)).chunk_events < 8
    assert EventGenerator(bundle, RunSettings(events=20, batch_size=5, **settings)).chunk_events == 5


def test_centrality_selects_before_particle_branch(model):
    bundle, _ = load_checkpoint(model)
    gen = EventGenerator(bundle, RunSettings(events=30, centrality=(0.0, 20.0), **FAST))
    batch = hicgen.data.batch.EventBatch.concat(list(gen.batches()))
    assert len(batch) == 30
    assert (batch.events["centrality"] >= 0).all() and (batch.events["centrality"] < 20).all()
    lo, _ = bundle.centrality.mult_range(0.0, 20.0)
    assert batch.events["mult"].min() >= np.floor(lo)
    assert gen.stats.rejected_centrality > 0
    assert gen.stats.real_tokens == batch.offsets[-1]  # no particle was sampled for a rejected event


def test_cuts_inside_acceptance_only(model):
    batch = events_of(model, 30, eta_max=1.0, pt_min=0.5)
    p = batch.particles
    assert (np.abs(p["eta"]) < 1.0).all() and (p["pt"] > 0.5).all()
    np.testing.assert_array_equal(batch.events["mult"], batch.multiplicity)
    sums = np.bincount(batch.event_index, weights=p["pt"].astype(np.float64), minlength=len(batch))
    np.testing.assert_allclose(batch.events["sum_pt"], sums, rtol=1e-6)
    with pytest.raises(InputError, match="outside the trained acceptance"):
        generate("OO", 5, model=model, eta_max=ETA_MAX + 0.5)
    with pytest.raises(InputError, match="below the trained acceptance"):
        generate("OO", 5, model=model, pt_min=PT_MIN / 2)


class Poisoned(torch.nn.Module):
    """Wraps a network; rows chosen by `rows(call, *inputs)` come out NaN."""

    def __init__(self, inner, rows):
        super().__init__()
        self.inner, self.rows, self.calls = inner, rows, 0

    def forward(self, *inputs):
        out = self.inner(*inputs).clone()
        out[self.rows(self.calls, *inputs)] = float("nan")
        self.calls += 1
        return out


def test_nan_guard_resamples_transient_failures(model):
    bundle, _ = load_checkpoint(model)
    first_call_only = lambda call, z, *rest: torch.full((z.shape[0],), call == 0)  # noqa: E731
    bundle = dataclasses.replace(bundle, particle_model=Poisoned(bundle.particle_model, first_call_only))
    gen = EventGenerator(bundle, RunSettings(events=40, **FAST))
    batch = hicgen.data.batch.EventBatch.concat(list(gen.batches()))
    assert len(batch) == 40 and np.isfinite(batch.particles["pt"]).all()
    assert gen.stats.resampled > 0 and gen.stats.dropped == 0


def test_nan_guard_replaces_events_that_keep_failing(model):
    bundle, _ = load_checkpoint(model)
    high_b = lambda call, z, t, cond, mask: cond[:, 0] > 0.5  # noqa: E731  (standardised b)
    first_row = lambda call, z, t: torch.arange(z.shape[0]) == 0  # noqa: E731
    bundle = dataclasses.replace(bundle, particle_model=Poisoned(bundle.particle_model, high_b),
                                 event_model=Poisoned(bundle.event_model, first_row))
    gen = EventGenerator(bundle, RunSettings(events=40, **FAST))
    batch = hicgen.data.batch.EventBatch.concat(list(gen.batches()))
    assert len(batch) == 40 and np.isfinite(batch.particles["pt"]).all()
    assert gen.stats.dropped > 0 and gen.stats.resampled >= 3 * gen.stats.dropped
    b_std = (batch.events["b"] - bundle.transforms.event_mean[0]) / bundle.transforms.event_std[0]
    assert (b_std <= 0.5 + 1e-6).all()  # no poisoned event was written


@pytest.mark.parametrize("sampler, steps, precision", [("ddim", 4, "fp32"), ("heun", 12, "fp32"), ("dpm++2m", 4, "bf16")])
def test_other_samplers_and_bf16_run(model, sampler, steps, precision):
    batch = events_of(model, 10, sampler=sampler, steps=steps, precision=precision)
    assert len(batch) == 10 and np.isfinite(batch.particles["pt"]).all()


def test_run_gives_up_when_no_event_vector_is_usable(model):
    bundle, _ = load_checkpoint(model)
    always = lambda call, z, t: torch.ones(z.shape[0], dtype=torch.bool)  # noqa: E731
    gen = EventGenerator(dataclasses.replace(bundle, event_model=Poisoned(bundle.event_model, always)), RunSettings(events=5, **FAST))
    with pytest.raises(HicgenError, match="no usable event vector"):
        next(gen.batches())


def test_settings_are_validated(model):
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == "fp32" and resolve_graphs("auto", cpu) is False
    with pytest.raises(InputError, match="--cuda-graphs on needs a CUDA device"):
        resolve_graphs("on", cpu)
    with pytest.raises(InputError, match="fp16 needs a CUDA device"):
        resolve_precision("fp16", cpu)
    with pytest.raises(InputError, match="--sampler"):
        RunSettings(events=5, sampler="euler")
    with pytest.raises(InputError, match="--steps"):
        RunSettings(events=5, steps=0)
    with pytest.raises(InputError, match="--centrality"):
        parse_centrality("20-10")
    assert parse_centrality("0-10") == (0.0, 10.0)
    with pytest.raises(InputError, match="--shard"):
        parse_shard("3/3")
    assert parse_shard("2/8") == (2, 8)
    runner = GraphRunner(lambda x: 2 * x, enabled=False)
    assert torch.equal(runner(torch.ones(2)), torch.full((2,), 2.0)) and runner.captured == 0


def test_model_lookup(model, tmp_path):
    assert default_model("OO", model.parent) == model
    with pytest.raises(CheckpointError, match="no shipped model for PbPb"):
        default_model("PbPb", model.parent)
    with pytest.raises(InputError, match="trained on OO, not PbPb"):
        check_model_system({"kind": "pointcloud", "provenance": {"data_attrs": {"system": "OO"}}}, "PbPb", model)
    with pytest.raises(CheckpointError, match="'spectra' checkpoint"):
        check_model_system({"kind": "spectra"}, "OO", model)
    with pytest.raises(InputError, match="trained on OO"):
        generate("PbPb", 5, model=model)


def test_generate_is_exported_lazily():
    assert hicgen.generate is generate


def test_failed_cpp_build_names_the_compilers_own_error(monkeypatch):
    """A C++ build that fails inside torch.compile (as g++ 12's internal compiler error on the fused hydro step did,
    2026-12-05) is one line with the compiler's reason and its failing pass, not the thousands of characters of its
    command line, and says how to go on."""
    import subprocess

    from hicgen.engine import runtime

    gcc_output = (b"during GIMPLE pass: cunrolli\nkernel.cpp: In function 'void kernel(double*)':\n"
                  b"kernel.cpp:3:19: internal compiler error: in gimple_duplicate_bb, at tree-cfg.cc:6420\n"
                  b"Please submit a full bug report\n")

    def failing_build(graph, inputs):
        raise subprocess.CalledProcessError(1, ["g++", "kernel.cpp"] + ["-D FLAG"] * 500, output=gcc_output)

    monkeypatch.setattr(runtime, "COMPILE_BACKEND", failing_build)
    torch._dynamo.reset()
    step = runtime.compile_function(lambda x: x * 2 + 1, "the hydro time step", dynamic=None)
    with pytest.raises(InputError) as failure:
        step(torch.ones(3))
    message = str(failure.value)
    assert ("could not build the hydro time step (g++: internal compiler error: in gimple_duplicate_bb, at "
            "tree-cfg.cc:6420, during GIMPLE pass: cunrolli)") in message
    assert "without --compile" in message and "CXX" in message and "-D FLAG" not in message and "\n" not in message
    torch._dynamo.reset()


def test_first_parallel_elementwise_op_after_importing_runtime_is_exact(tmp_path):
    """runtime.start_cpu_thread_pool at import: in fresh processes the first parallel torch.sqrt is correctly rounded.
    Without it 17-50 % of processes on this project's VMs got half the elements up to 3e-4 off (relative), so twelve
    processes all pass by chance at most ~10 % of the time (on a machine without torch's glitch this always passes).
    The processes write to a file: with their output into a pipe the glitch did not show."""
    import subprocess
    import sys

    code = ("import hicgen.engine.runtime, torch; x = torch.linspace(0.5, 5.0, 3200); "
            "print(float((torch.sqrt(x).double() - torch.sqrt(x.double())).abs().max()))")
    errors = []
    for i in range(12):
        with open(tmp_path / f"{i}.txt", "w") as out:
            subprocess.run([sys.executable, "-c", code], stdout=out, check=True)
        errors.append(float((tmp_path / f"{i}.txt").read_text()))
    assert max(errors) < 1e-6, errors
