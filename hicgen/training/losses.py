"""Training objectives of the point-cloud model (paper 004).

- `event_v_loss`: MSE of the event branch's v-prediction, mean over the E features, then over events.
- `particle_v_loss`: masked MSE of the particle branch's v-prediction: for each event the mean over its
  real particles and the F features, then the mean over events. Every event counts once (whatever its
  multiplicity), which makes the loss of a batch the mean of per-event terms, so the DDP average over
  ranks equals the loss of the whole batch exactly.
- `event_plane_loss` (paper 004 sec. V.3): from the denoised particle estimate x0 = alpha z_t - sigma v,
  reverted to physical pT and phi, Q2 = sum_i pT_i exp(2 i phi_i) over real particles and
  psi2_reco = arg(Q2) / 2; the loss 1 - cos 2(psi2_reco - psi2_true) = 1 - Q2 . (cos 2psi, sin 2psi) / |Q2|
  is applied to events with t < t_max (where x0 is physically meaningful) and summed over them, divided by
  the batch size (DDP-exact); the mean over the selected events is returned for logging. The point-cloud
  task passes the pT weights detached, so the loss acts on the azimuthal angles only and cannot trade the
  pT spectrum for alignment.
"""

from __future__ import annotations

import torch


def event_v_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """pred, target (B, E) -> scalar."""
    return (pred.float() - target.float()).square().mean()


def particle_v_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """pred, target (B, N, F), mask (B, N) bool -> scalar: per-event masked mean, then mean over events."""
    m = mask.to(torch.float32)
    per_token = (pred.float() - target.float()).square().mean(-1)  # (B, N)
    per_event = (per_token * m).sum(1) / m.sum(1).clamp(min=1)
    return per_event.mean()


def event_plane_loss(
    pt: torch.Tensor, phi: torch.Tensor, mask: torch.Tensor, psi2_true: torch.Tensor, t: torch.Tensor, t_max: float = 0.5,
) -> tuple[torch.Tensor, torch.Tensor]:
    """pt [GeV], phi [rad] (B, N) of the denoised estimate, mask (B, N), psi2_true (B,), t (B,) ->
    (loss summed over events with t < t_max divided by B, mean over those events for logging)."""
    m = mask.to(torch.float32)
    pt, phi = pt.float(), phi.float()
    qx = (m * pt * torch.cos(2 * phi)).sum(1)
    qy = (m * pt * torch.sin(2 * phi)).sum(1)
    norm = torch.sqrt(qx.square() + qy.square() + 1e-12)
    cos_delta = (qx * torch.cos(2 * psi2_true.float()) + qy * torch.sin(2 * psi2_true.float())) / norm
    per_event = 1 - cos_delta
    selected = (t < t_max).to(torch.float32)
    total = (per_event * selected).sum()
    return total / per_event.shape[0], (total / selected.sum().clamp(min=1)).detach()
