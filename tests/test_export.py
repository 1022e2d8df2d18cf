import h5py
import numpy as np

from conftest import toy_batch
from hicgen.cli import main
from hicgen.data.dataset import DatasetWriter
from hicgen.data.features import PADDED_EVENT_COLUMNS, PADDED_PARTICLE_FEATURES


def test_padded_export_layout_and_values(tmp_path):
    batch = toy_batch(9, mean_mult=12, seed=3)
    src, out = tmp_path / "d.h5", tmp_path / "padded.h5"
    with DatasetWriter(src, {}) as w:
        w.append(batch)
    assert main(["data", "export", str(src), "--layout", "padded", "--out", str(out)]) == 0
    nmax = int(batch.multiplicity.max())
    with h5py.File(out) as f:
        ev, pa, mask = f["event"][:], f["particle"][:], f["mask"][:]
        assert f["event"].attrs["columns"].split(",") == list(PADDED_EVENT_COLUMNS)
    assert ev.shape == (9, 11) and pa.shape == (9, nmax, 6) and mask.shape == (9, nmax)
    np.testing.assert_array_equal(mask.sum(1), batch.multiplicity)
    i = 4
    n = batch.multiplicity[i]
    lo = batch.offsets[i]
    col = {c: k for k, c in enumerate(PADDED_PARTICLE_FEATURES)}
    np.testing.assert_allclose(pa[i, :n, col["pt"]], batch.particles["pt"][lo:lo + n])
    np.testing.assert_allclose(pa[i, :n, col["pt_rel"]], np.log(batch.particles["pt"][lo:lo + n] / batch.events["mean_pt"][i]), rtol=1e-5)
    assert np.all(pa[i, n:] == 0)
    np.testing.assert_allclose(ev[:, PADDED_EVENT_COLUMNS.index("mult")], batch.multiplicity)
    np.testing.assert_allclose(ev[:, PADDED_EVENT_COLUMNS.index("b")], batch.events["b"], rtol=1e-6)


def test_export_truncates_with_nmax(tmp_path):
    batch = toy_batch(5, mean_mult=20, seed=1)
    src, out = tmp_path / "d.h5", tmp_path / "padded.h5"
    with DatasetWriter(src, {}) as w:
        w.append(batch)
    assert main(["data", "export", str(src), "--out", str(out), "--nmax", "5"]) == 0
    with h5py.File(out) as f:
        assert f["particle"].shape[1] == 5 and f.attrs["truncated_events"] == int((batch.multiplicity > 5).sum())
