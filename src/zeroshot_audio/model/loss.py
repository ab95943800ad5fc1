"""Multi-label rank-weighted hinge loss (WARP-style), vectorised over batch x classes.

For every positive class p of a clip, each negative n that comes within ``margin`` of it (or above
it) costs max(0, margin + s_n - s_p). Their sum is weighted by beta(r_p) = H_r / r, where r_p is the
number of such violating negatives and H_r the r-th harmonic number (beta(0) = 0). The total weight
beta(r) * r = H_r grows like log(r): the WARP weighting of Weston et al., which cares most about
the top of the ranking, computed exactly over all classes instead of by WARP's sampling (a fold has
few enough classes for the full B x C x C comparison).

The loss is averaged first over each clip's positives, then over clips that have any positive.
"""

from __future__ import annotations

import torch
from torch import Tensor


def rank_weights(max_rank: int, device: torch.device | str | None = None) -> Tensor:
    """beta(r) = H_r / r for r = 0..max_rank, with beta(0) = 0; index it with a rank tensor."""
    ranks = torch.arange(1, max_rank + 1, dtype=torch.float64, device=device)
    harmonic = torch.cumsum(1.0 / ranks, dim=0)
    beta = torch.zeros(max_rank + 1, dtype=torch.float64, device=device)
    beta[1:] = harmonic / ranks
    return beta.to(torch.float32)


def warp_loss(scores: Tensor, targets: Tensor, margin: float = 1.0) -> Tensor:
    """Mean rank-weighted hinge of ``scores`` [B, C] against multi-hot ``targets`` [B, C].

    Memory is O(B * C * C); with a few hundred classes per fold and batches of hundreds that is
    tens of MB. Clips without a positive contribute nothing (a zero scalar if none has one).
    """
    if scores.shape != targets.shape or scores.ndim != 2:
        raise ValueError(
            f"scores and targets must both be [B, C]; got {tuple(scores.shape)} and "
            f"{tuple(targets.shape)}"
        )
    scores = scores.float()
    positive = targets.bool()
    negative = ~positive
    # violation[b, p, n] = margin + s[b, n] - s[b, p], kept only where n is a negative of clip b
    violation = margin + scores[:, None, :] - scores[:, :, None]
    violating = (violation > 0) & negative[:, None, :]
    hinge_sum = torch.where(violating, violation, torch.zeros_like(violation)).sum(dim=2)  # [B, C]
    rank = violating.sum(dim=2)  # [B, C], r_p (meaningful on positives)
    beta = rank_weights(scores.shape[1], device=scores.device)[rank]
    per_positive = torch.where(positive, beta * hinge_sum, torch.zeros_like(hinge_sum))
    n_positive = positive.sum(dim=1)
    has_positive = n_positive > 0
    if not bool(has_positive.any()):
        return scores.sum() * 0.0
    per_clip = per_positive.sum(dim=1)[has_positive] / n_positive[has_positive]
    return per_clip.mean()
