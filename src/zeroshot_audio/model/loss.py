"""Multi-label rank-weighted hinge loss (WARP-style), vectorised over batch x classes.

For every positive class p of a clip, each negative n that comes within ``margin`` of it (or above
it) costs max(0, margin + s_n - s_p). Their sum is weighted by beta(r_p) = H_r / r, where r_p is the
number of such violating negatives and H_r the r-th harmonic number (beta(0) = 0). The total weight
beta(r) * r = H_r grows like log(r): the WARP weighting of Weston et al., which cares most about
the top of the ranking, computed exactly over all classes instead of by WARP's sampling (a fold has
few enough classes to compare every positive with every class).

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

    Computed only for the (clip, positive) pairs, P of them: a [P, C] comparison instead of the
    full [B, C, C] one. A clip has a few positives among hundreds of classes, so at AudioSet
    fold sizes (C ~ 350, B = 64) the full comparison was most of a training step's time and this
    is ~C / (positives per clip) times smaller. Clips without a positive contribute nothing (a
    zero scalar if none has one).
    """
    if scores.shape != targets.shape or scores.ndim != 2:
        raise ValueError(
            f"scores and targets must both be [B, C]; got {tuple(scores.shape)} and "
            f"{tuple(targets.shape)}"
        )
    scores = scores.float()
    positive = targets.bool()
    clip, column = positive.nonzero(as_tuple=True)  # the P (clip, positive class) pairs
    if clip.numel() == 0:
        return scores.sum() * 0.0
    # violation[k, n] = margin + s[clip_k, n] - s[clip_k, column_k], kept where n is a negative
    clip_scores = scores[clip]  # [P, C]
    violation = margin + clip_scores - scores[clip, column][:, None]
    violating = (violation > 0) & ~positive[clip]
    hinge_sum = torch.where(violating, violation, torch.zeros_like(violation)).sum(dim=1)  # [P]
    rank = violating.sum(dim=1)  # [P], r_p
    per_positive = torch.zeros_like(scores)  # [B, C]; scattered, not index_add'ed: deterministic
    per_positive[clip, column] = (
        rank_weights(scores.shape[1], device=scores.device)[rank] * hinge_sum
    )
    per_clip = per_positive.sum(dim=1)
    n_positive = positive.sum(dim=1)
    has_positive = n_positive > 0
    return (per_clip[has_positive] / n_positive[has_positive]).mean()
