"""Classifier two-sample tests of paper 004 (section IV.5): an event-level MLP and a Deep-Sets particle-level
classifier learn to tell reference (label 0) from candidate (label 1) events; the AUC on held-out events is the
score (0.5 = indistinguishable).

Events of both samples are split 70/15/15 into train/validation/test with a seeded permutation; inputs are
standardised with the train split's mean and std; training stops at the epoch with the lowest validation loss
(patience 4) and the AUC is measured on the test split.  Under the null hypothesis the test AUC has the
standard error sqrt((n0 + n1 + 1) / (12 n0 n1)) (Mann-Whitney), reported as '_err'.

Particle tokens: log pT, eta, sin phi, cos phi, charge, and paper 004's relative features pt_rel = log(pT/<pT>),
eta_rel, (sin, cos) of phi_rel, taken relative to the event table's <pT>, <eta>, <phi> (so the particle classifier
also sees event-particle incoherence).  At most `max_particles` particles per event (a seeded random subset).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from hicgen.data.batch import EventBatch
from hicgen.data.features import particle_event_features, relative_particle_features
from hicgen.data.species import pdg_charge

SPLIT = (0.70, 0.15, 0.15)


@dataclass(frozen=True)
class ClassifierConfig:
    """Training settings of both classifiers (small and fast on a CPU)."""

    hidden: int = 64
    epochs: int = 30
    patience: int = 4
    batch_events: int = 128
    learning_rate: float = 2e-3
    max_particles: int = 512
    seed: int = 0


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve from the Mann-Whitney rank statistic (ties get average ranks)."""
    from scipy.stats import rankdata

    labels = np.asarray(labels, bool)
    n1, n0 = labels.sum(), (~labels).sum()
    if n0 == 0 or n1 == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - n1 * (n1 + 1) / 2) / (n0 * n1))


def roc_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate) at every score threshold, for plots."""
    order = np.argsort(-np.asarray(scores))
    labels = np.asarray(labels, bool)[order]
    tpr = np.concatenate([[0], np.cumsum(labels) / max(labels.sum(), 1)])
    fpr = np.concatenate([[0], np.cumsum(~labels) / max((~labels).sum(), 1)])
    return fpr, tpr


def auc_null_error(labels: np.ndarray) -> float:
    """Standard error of the AUC when both classes come from one distribution."""
    n1 = int(np.sum(labels))
    n0 = int(np.size(labels) - n1)
    return float(np.sqrt((n0 + n1 + 1) / (12.0 * n0 * n1))) if n0 and n1 else float("nan")


def split_indices(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded 70/15/15 train/validation/test index split of n events."""
    perm = np.random.default_rng(seed).permutation(n)
    a, b = int(SPLIT[0] * n), int((SPLIT[0] + SPLIT[1]) * n)
    return perm[:a], perm[a:b], perm[b:]


def event_matrix(batch: EventBatch, columns: list[str]) -> np.ndarray:
    """(B, F) float32 event features in the given column order."""
    return np.stack([np.asarray(batch.events[c], np.float64) for c in columns], 1).astype(np.float32)


def particle_tokens(batch: EventBatch, max_particles: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, 9) float32 particle tokens (see module doc) and their per-event offsets (B+1,) after keeping at most
    `max_particles` random particles per event."""
    rng = np.random.default_rng(seed)
    keep = np.ones(batch.offsets[-1], bool)
    for event in np.flatnonzero(batch.multiplicity > max_particles):
        lo, hi = batch.offsets[event], batch.offsets[event + 1]
        keep[lo:hi] = False
        keep[lo + rng.choice(hi - lo, max_particles, replace=False)] = True
    pt = np.asarray(batch.particles["pt"], np.float64)
    eta = np.asarray(batch.particles["eta"], np.float64)
    phi = np.asarray(batch.particles["phi"], np.float64)
    own = particle_event_features(pt, eta, phi, batch.offsets)
    means = {k: np.asarray(batch.events.get(k, own[k]), np.float64) for k in ("mean_pt", "mean_eta", "mean_phi")}
    means["mean_pt"] = np.where(means["mean_pt"] > 0, means["mean_pt"], np.maximum(own["mean_pt"], 1e-3))
    rel = relative_particle_features(pt, eta, phi, batch.offsets, means["mean_pt"], means["mean_eta"], means["mean_phi"])
    charge = pdg_charge(batch.particles["pid"]) if "pid" in batch.particles else np.zeros_like(pt)
    tokens = np.stack([
        np.log(pt), eta, np.sin(phi), np.cos(phi), charge,
        rel["pt_rel"], rel["eta_rel"], np.sin(rel["phi_rel"]), np.cos(rel["phi_rel"]),
    ], 1)[keep]
    counts = np.bincount(batch.event_index[keep], minlength=len(batch))
    return tokens.astype(np.float32), np.concatenate([[0], np.cumsum(counts)])


def _mlp(n_in: int, hidden: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, n_out))


class DeepSets(nn.Module):
    """Permutation-invariant classifier: per-particle MLP, mean over each event's particles, head MLP -> logit."""

    def __init__(self, n_in: int, hidden: int) -> None:
        super().__init__()
        self.phi = _mlp(n_in, hidden, hidden)
        self.head = _mlp(hidden, hidden, 1)

    def forward(self, tokens: torch.Tensor, event: torch.Tensor, n_events: int) -> torch.Tensor:
        """tokens (n, F), event index of each token (n,) -> logits (n_events,)."""
        embedded = self.phi(tokens)
        pooled = torch.zeros(n_events, embedded.shape[1], dtype=embedded.dtype).index_add_(0, event, embedded)
        counts = torch.bincount(event, minlength=n_events).clamp(min=1).unsqueeze(1)
        return self.head(pooled / counts).squeeze(1)


def _train(model: nn.Module, logits_of, labels: np.ndarray, splits, config: ClassifierConfig) -> np.ndarray:
    """Train on splits[0] with early stopping on splits[1]; return the test-split scores (splits[2])."""
    generator = np.random.default_rng(config.seed + 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    loss_fn = nn.BCEWithLogitsLoss()
    target = torch.as_tensor(labels, dtype=torch.float32)
    train, val, test = splits
    best, best_state, stale = np.inf, None, 0

    def evaluate(index: np.ndarray) -> torch.Tensor:
        with torch.no_grad():
            return torch.cat([logits_of(index[i : i + 1024]) for i in range(0, index.size, 1024)])

    for _ in range(config.epochs):
        model.train()
        order = generator.permutation(train)
        for start in range(0, order.size, config.batch_events):
            index = order[start : start + config.batch_events]
            optimizer.zero_grad()
            loss_fn(logits_of(index), target[index]).backward()
            optimizer.step()
        model.eval()
        val_loss = float(loss_fn(evaluate(val), target[val]))
        if val_loss < best - 1e-5:
            best, stale = val_loss, 0
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
        else:
            stale += 1
            if stale >= config.patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return evaluate(test).numpy()


def _result(name: str, labels: np.ndarray, scores: np.ndarray) -> dict:
    fpr, tpr = roc_curve(labels, scores)
    return {f"auc_{name}": roc_auc(labels, scores), f"auc_{name}_err": auc_null_error(labels), "fpr": fpr, "tpr": tpr}


def event_classifier(reference: EventBatch, candidate: EventBatch, columns: list[str], config: ClassifierConfig = ClassifierConfig()) -> dict:
    """Event-level MLP on `columns`: {'auc_event', 'auc_event_err', 'fpr', 'tpr'}."""
    x = np.concatenate([event_matrix(reference, columns), event_matrix(candidate, columns)])
    labels = np.concatenate([np.zeros(len(reference)), np.ones(len(candidate))])
    splits = split_indices(labels.size, config.seed)
    mean, std = x[splits[0]].mean(0), x[splits[0]].std(0)
    inputs = torch.as_tensor((x - mean) / np.where(std > 0, std, 1.0))
    torch.manual_seed(config.seed)
    model = _mlp(x.shape[1], config.hidden, 1)
    scores = _train(model, lambda index: model(inputs[index]).squeeze(1), labels, splits, config)
    return _result("event", labels[splits[2]], scores)


def particle_classifier(reference: EventBatch, candidate: EventBatch, config: ClassifierConfig = ClassifierConfig()) -> dict:
    """Deep-Sets particle-level classifier: {'auc_particle', 'auc_particle_err', 'fpr', 'tpr'}."""
    tok_r, off_r = particle_tokens(reference, config.max_particles, config.seed)
    tok_c, off_c = particle_tokens(candidate, config.max_particles, config.seed + 1)
    tokens = np.concatenate([tok_r, tok_c])
    offsets = np.concatenate([off_r, off_r[-1] + off_c[1:]])
    labels = np.concatenate([np.zeros(len(reference)), np.ones(len(candidate))])
    splits = split_indices(labels.size, config.seed)
    train_rows = np.concatenate([np.arange(offsets[i], offsets[i + 1]) for i in splits[0]]) if splits[0].size else np.arange(0)
    mean, std = tokens[train_rows].mean(0), tokens[train_rows].std(0)
    tokens_t = torch.as_tensor((tokens - mean) / np.where(std > 0, std, 1.0))
    offsets_t = torch.as_tensor(offsets)
    counts_t = offsets_t[1:] - offsets_t[:-1]
    torch.manual_seed(config.seed)
    model = DeepSets(tokens.shape[1], config.hidden)

    def logits_of(index: np.ndarray) -> torch.Tensor:
        index_t = torch.as_tensor(index)
        n = counts_t[index_t]
        rows = torch.repeat_interleave(offsets_t[index_t] - torch.cumsum(n, 0) + n, n) + torch.arange(int(n.sum()))
        return model(tokens_t[rows], torch.repeat_interleave(torch.arange(index.size), n), index.size)

    scores = _train(model, logits_of, labels, splits, config)
    return _result("particle", labels[splits[2]], scores)
