"""The counter-based generator behind the GPU noise and Poisson draws of `hicgen spectra` (hicgen.engine.counter_rng)."""

import numpy as np
import pytest
import torch
from scipy import stats

from hicgen.engine.counter_rng import MASK32, hash32, normals, poisson, random_bits, row_keys


def lowbias32_reference(x: int) -> int:
    """Plain-Python lowbias32 (hash-prospector) with 32-bit wrap-around."""
    x ^= x >> 16
    x = (x * 0x21F0AAAD) & MASK32
    x ^= x >> 15
    x = (x * 0x735A2D97) & MASK32
    return x ^ (x >> 15)


def test_hash_matches_the_reference_and_is_a_bijection():
    values = [0, 1, 2, 12345, 0x7FFFFFFF, 0x80000000, MASK32]
    assert hash32(torch.tensor(values)).tolist() == [lowbias32_reference(v) for v in values]
    x = torch.arange(1 << 20, dtype=torch.int64) * 4093 & MASK32
    assert len(torch.unique(hash32(x))) == len(torch.unique(x))


def keys(n: int, stream: str = "noise", seed: int = 7, first: int = 0) -> torch.Tensor:
    return row_keys(seed, [torch.arange(first, first + n), torch.zeros(n, dtype=torch.int64)], stream)


def test_rows_do_not_depend_on_batching_and_streams_differ():
    whole = normals(keys(40), (8, 8))
    assert torch.equal(normals(keys(5, first=30), (8, 8)), whole[30:35])
    assert not torch.equal(normals(keys(40, "poisson"), (8, 8)), whole)
    assert not torch.equal(normals(keys(40, seed=8), (8, 8)), whole)
    assert torch.equal(random_bits(keys(3), 10, offset=4), random_bits(keys(3), 14)[:, 4:])


def test_normals_are_standard_and_uncorrelated():
    z = normals(keys(400), (32, 32)).reshape(400, -1).double()
    assert abs(float(z.mean())) < 0.005 and abs(float(z.std()) - 1) < 0.005
    assert stats.kstest(z.flatten().numpy(), "norm").pvalue > 1e-3
    assert abs(np.corrcoef(z[:-1].flatten(), z[1:].flatten())[0, 1]) < 0.005  # neighbouring rows
    assert abs(np.corrcoef(z[:, :-1].flatten(), z[:, 1:].flatten())[0, 1]) < 0.005  # neighbouring columns


@pytest.mark.parametrize("mean", [0.05, 1.0, 3.0, 12.0, 260.0])
def test_poisson_counts_have_poisson_moments(mean):
    counts = poisson(torch.full((100, 32, 32), mean), keys(100, "poisson")).double().flatten()
    n = len(counts)
    assert torch.equal(counts, counts.round()) and float(counts.min()) >= 0
    assert abs(float(counts.mean()) - mean) < 5 * (mean / n) ** 0.5
    assert abs(float(counts.var()) / mean - 1) < 5 * (2 / n) ** 0.5 + 3 / (mean * n) ** 0.5


def test_poisson_distribution_passes_chi_square_and_zero_mean_gives_zero():
    counts = poisson(torch.full((60, 32, 32), 3.0), keys(60, "poisson")).numpy().astype(int).ravel()
    observed = np.bincount(np.minimum(counts, 9), minlength=10)
    pmf = stats.poisson.pmf(np.arange(9), 3.0)
    assert stats.chisquare(observed, np.append(pmf, 1 - pmf.sum()) * len(counts)).pvalue > 1e-3
    assert float(poisson(torch.zeros(2, 4, 4), keys(2, "poisson")).abs().max()) == 0.0


def test_a_poisson_row_does_not_depend_on_the_other_rows_of_its_batch():
    means = torch.full((3, 8, 8), 2.0)
    means[2] = 450.0  # drawn in pieces
    alone = poisson(means[:2], keys(2, "poisson"))
    assert torch.equal(poisson(means, keys(3, "poisson"))[:2], alone)
