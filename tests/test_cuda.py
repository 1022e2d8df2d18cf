"""Checks that need a CUDA device, skipped without one: the paths the CPU tests cannot reach.

The spectra model's CUDA graphs with a padded last batch, the compiled network inside a graph, the histograms drawn
on the device, `hicgen spectra` end to end on CUDA, and the stage-compiled hydro step in Triton. On a GPU machine:
`python -m pytest tests/test_cuda.py -q` (the compilations take a minute or two).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hicgen.environment import WEIGHTS_DIR
from hicgen.spectra.generate import generate_records, load_spectra_model
from hicgen.truth.trento import TrentoConfig, write_trento
from hicgen.truth.trento_io import read_trento, resample_profile

DEVICE = "cuda"
pytestmark = pytest.mark.skipif(DEVICE == "cuda" and not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    """(shipped spectra model on the device, trento file of 5 ICs, their profiles on the model's grid)."""
    model = load_spectra_model(WEIGHTS_DIR / "spectra", DEVICE)
    path = write_trento(tmp_path_factory.mktemp("ic") / "ic.h5", 5, TrentoConfig(), seed=4)
    states = read_trento(path)
    grid_out = model.config.get("ic_grid_max") or states.grid_max
    return model, path, resample_profile(states.profiles, states.grid_max, model.net.cfg.resolution, grid_out)


def _records(model, ic, **kwargs):
    """10 spectra (5 ICs x 2) in batches of 8: the last batch of 2 is padded to 8 when a graph or compile runs."""
    return generate_records(model, ic, 0.1, samples_per_ic=2, seed=3, batch_size=8, **kwargs)


def _assert_close(spectra, reference, rtol):
    """Spectra equal within rtol of the largest value; multiplicities within rtol."""
    np.testing.assert_allclose(spectra, reference, rtol=0, atol=rtol * reference.max())
    np.testing.assert_allclose(spectra.sum((1, 2)), reference.sum((1, 2)), rtol=rtol)


def test_graph_with_a_padded_last_batch_gives_the_eager_spectra_and_histograms(shipped):
    model, _, ic = shipped
    eager, eager_hist = _records(model, ic, precision="fp32", cuda_graphs="off")
    graph, graph_hist = _records(model, ic, precision="fp32", cuda_graphs="on")
    assert graph.shape == (10, 64, 64) and np.isfinite(graph).all() and (graph >= 0).all()
    _assert_close(graph, eager, 1e-4)
    assert np.array_equal(graph_hist, np.round(graph_hist))
    # the same counter-based draws from (almost) the same means: a count may move only where a mean moved
    assert np.abs(graph_hist - eager_hist).sum() <= 1e-3 * eager_hist.sum()


def test_compiled_network_in_a_graph_gives_the_eager_spectra(shipped):
    model, _, ic = shipped
    eager, _ = _records(model, ic, precision="bf16", cuda_graphs="on")
    compiled, _ = _records(model, ic, precision="bf16", cuda_graphs="on", compiled=True)
    _assert_close(compiled, eager, 2e-2)  # bf16 sums in another order


def test_cli_run_on_cuda_writes_integer_histograms_and_particles(shipped, tmp_path):
    import h5py

    from hicgen.spectra.pipeline import run_spectra

    model, path, ic = shipped
    summary = run_spectra(path, 0.1, tmp_path / "s.h5", model, samples_per_ic=3, device=DEVICE,
                          particles=tmp_path / "p.h5")
    assert summary["spectra"] == 15
    with h5py.File(tmp_path / "s.h5") as f:
        hist, spectrum = f["histogram"][()], f["spectrum"][()]
        assert f.attrs["precision"] in ("bf16", "fp16") and f.attrs["n_records"] == 15  # what 'auto' chose
    assert np.array_equal(hist, np.round(hist)) and hist.sum() > 0 and np.isfinite(spectrum).all()
    assert (tmp_path / "p.h5").is_file()


def test_stage_compiled_hydro_step_matches_eager_on_the_device():
    """The Heun stage through inductor (Triton on CUDA) against the eager step, two time steps, one graph."""
    from hicgen.truth.hydro import gubser
    from hicgen.truth.hydro.eos import ConformalEOS
    from hicgen.truth.hydro.solver import FluidState, Grid, HydroConfig, Solver, evolve

    eos = ConformalEOS()
    grid = Grid(16, 0.5)
    x = grid.coords().numpy()
    xx, yy = np.meshgrid(x, x)
    f0 = gubser.milne_fields(1.0, xx, yy, eos.c, 0.2)
    t = lambda a: torch.tensor(a, device=DEVICE)[None].repeat(2, 1, 1)  # noqa: E731
    st = FluidState(1.0, t(f0["e"]), t(f0["ux"]), t(f0["uy"]), t(f0["pixx"]), t(f0["pixy"]), t(f0["piyy"]))
    for dtau in (0.1, 0.05):
        config = HydroConfig(eta_s=torch.tensor([0.1, 0.2], dtype=torch.float64, device=DEVICE), dtau=dtau)
        eager = evolve(Solver(grid, eos, config), st, tau_end=1.0 + 3 * dtau)
        compiled = evolve(Solver(grid, eos, config, compile=True), st, tau_end=1.0 + 3 * dtau)
        assert compiled.tau == pytest.approx(eager.tau)
        for name in ("e", "ux", "uy", "pixx", "pixy", "piyy"):
            ref = getattr(eager, name)
            assert torch.allclose(getattr(compiled, name), ref, rtol=1e-5, atol=1e-6 * ref.abs().max()), (dtau, name)
