"""Point-cloud denoisers: shapes, masking, permutation equivariance, chunked periodic kNN."""

from __future__ import annotations

import math

import pytest
import torch

from hicgen.models.event_mlp import EventMLP, EventMLPConfig
from hicgen.models.pet import (
    LocalEdgeBlock, PETConfig, PointEdgeTransformer, gather_neighbors, geometry_delta, knn_indices,
)

F, E = 18, 10


def _randomised(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Perturb every parameter: zero-initialised gates/outputs would hide wiring errors."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=gen))
    return model.eval()


@pytest.fixture(scope="module")
def pet() -> PointEdgeTransformer:
    torch.manual_seed(0)
    return _randomised(PointEdgeTransformer(PETConfig(dim=32, num_heads=4, num_layers=2, num_head_layers=1, num_neighbors=4, phi_period=3.4)))


def _inputs(bsz: int = 3, n: int = 12, seed: int = 1):
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(bsz, n, F, generator=gen)
    mask = torch.arange(n)[None, :] < torch.tensor([n, n - 4, 5])[:bsz, None]
    return z, torch.rand(bsz, generator=gen), torch.randn(bsz, E, generator=gen), mask


def test_event_mlp_shapes_and_time_dependence():
    model = _randomised(EventMLP(EventMLPConfig(event_dim=E, dim=32, num_blocks=2)))
    z = torch.randn(4, E)
    out = model(z, torch.full((4,), 0.2))
    assert out.shape == (4, E) and torch.isfinite(out).all()
    assert not torch.allclose(out, model(z, torch.full((4,), 0.8)))


def test_pet_output_shape_and_zero_on_padding(pet):
    z, t, cond, mask = _inputs()
    out = pet(z, t, cond, mask)
    assert out.shape == z.shape and torch.isfinite(out).all()
    assert torch.all(out[~mask] == 0)
    assert not torch.allclose(out[0], pet(z, t, cond + 1.0, mask)[0])  # the event vector conditions the output


def test_padded_particle_cannot_change_real_outputs(pet):
    z, t, cond, mask = _inputs()
    out = pet(z, t, cond, mask)
    z2 = z.clone()
    z2[~mask] = 100.0 * torch.randn_like(z2[~mask])  # garbage in every padded slot
    out2 = pet(z2, t, cond, mask)
    torch.testing.assert_close(out2[mask], out[mask], rtol=1e-5, atol=1e-5)
    longer = torch.cat([z, torch.randn(3, 5, F)], dim=1)  # extra padding slots
    out3 = pet(longer, t, cond, torch.cat([mask, torch.zeros(3, 5, dtype=torch.bool)], dim=1))
    torch.testing.assert_close(out3[:, :12][mask], out[mask], rtol=1e-5, atol=1e-5)


def test_permuting_particles_permutes_outputs(pet):
    z, t, cond, mask = _inputs()
    perm = torch.randperm(z.shape[1], generator=torch.Generator().manual_seed(5))
    out = pet(z, t, cond, mask)
    out_perm = pet(z[:, perm], t, cond, mask[:, perm])
    torch.testing.assert_close(out_perm, out[:, perm], rtol=1e-5, atol=1e-5)


def test_event_without_particles_gives_finite_output(pet):
    z, t, cond, mask = _inputs()
    mask[1] = False
    assert torch.isfinite(pet(z, t, cond, mask)).all()


def _brute_knn(geom, mask, k, period):
    d = geom[:, :, None, :] - geom[:, None, :, :]
    dphi = d[..., 0] - period * torch.round(d[..., 0] / period)
    dist = dphi**2 + d[..., 1] ** 2
    dist = dist.masked_fill(~mask[:, None, :], math.inf)
    dist = dist + torch.diag(torch.full((geom.shape[1],), math.inf))
    return dist.topk(k, dim=-1, largest=False)


def test_chunked_knn_matches_full_matrix_and_is_periodic():
    gen = torch.Generator().manual_seed(2)
    geom = torch.rand(2, 50, 2, generator=gen) * torch.tensor([6.0, 2.0])
    mask = torch.ones(2, 50, dtype=torch.bool)
    mask[1, 40:] = False
    idx, valid = knn_indices(geom, mask, 5, 6.0, chunk_elements=7 * 2 * 50)  # 7 rows per chunk
    ref_val, ref_idx = _brute_knn(geom, mask, 5, 6.0)
    assert torch.equal(idx[:, :40], ref_idx[:, :40]) and valid.all()
    assert not torch.isin(idx[1], torch.arange(40, 50)).any()  # padded tokens are never neighbours
    # Two points just either side of the phi seam are neighbours.
    seam = torch.tensor([[[0.01, 0.0], [5.99, 0.0], [3.0, 0.0]]])
    idx, _ = knn_indices(seam, torch.ones(1, 3, dtype=torch.bool), 1, 6.0)
    assert idx[0, 0, 0] == 1 and idx[0, 1, 0] == 0


def test_knn_with_fewer_real_tokens_than_k_marks_invalid_neighbours():
    geom = torch.rand(1, 6, 2)
    mask = torch.tensor([[True, True, True, False, False, False]])
    idx, valid = knn_indices(geom, mask, 4, 6.0)
    assert valid[0, :3].sum(-1).tolist() == [2, 2, 2]


def test_edge_block_is_the_mlp_of_concatenated_edge_features():
    """The edge block's factored first layer computes MLP(h_i, h_j - h_i, dphi, dpt), averaged over neighbours."""
    block = _randomised(LocalEdgeBlock(16, 4, 6.0, 1 << 24), seed=3)
    gen = torch.Generator().manual_seed(4)
    h = torch.randn(2, 30, 16, generator=gen)
    geom = torch.rand(2, 30, 2, generator=gen) * torch.tensor([6.0, 2.0])
    mask = torch.ones(2, 30, dtype=torch.bool)
    mask[1, 3:] = False  # three real tokens: two valid neighbours of four
    index, valid = knn_indices(geom, mask, 4, 6.0)
    h_nb = gather_neighbors(h, index)
    h_i = h[:, :, None, :].expand_as(h_nb)
    g_nb = geometry_delta(geom[:, :, None, :], gather_neighbors(geom, index), 6.0)
    edges = block.edge(torch.cat([h_i, h_nb - h_i, g_nb], dim=-1)) * valid[..., None]
    expected = h + block.norm(edges.sum(2) / valid.sum(2, keepdim=True).clamp(min=1))
    with torch.no_grad():
        assert torch.allclose(block(h, geom, mask), expected, atol=1e-5)
