"""The rank-weighted hinge against values worked out by hand."""

import pytest
import torch

from zeroshot_audio.model.loss import rank_weights, warp_loss


def test_rank_weights_are_harmonic_over_rank_with_zero_at_zero():
    beta = rank_weights(4)
    expected = [0.0, 1.0, 1.5 / 2, (11 / 6) / 3, (25 / 12) / 4]
    assert beta.tolist() == pytest.approx(expected)


def test_no_violation_means_zero_loss_even_at_zero_margin_distance():
    # positives 3.0 and 2.0; negatives 1.0 and 0.0. Worst pair: 1 + 1.0 - 2.0 = 0, not > 0, so r = 0
    scores = torch.tensor([[3.0, 1.0, 2.0, 0.0]])
    targets = torch.tensor([[1, 0, 1, 0]])
    assert warp_loss(scores, targets).item() == 0.0


def test_single_violation_costs_its_hinge():
    # r = 1, beta(1) = 1, hinge = 1 + 0.5 - 1.0 = 0.5
    assert warp_loss(torch.tensor([[1.0, 0.5]]), torch.tensor([[1, 0]])).item() == pytest.approx(
        0.5
    )


def test_several_positives_and_clips_by_hand():
    scores = torch.tensor(
        [
            [0.5, 1.0, 2.0, 0.0],  # positives 0 and 3
            [2.0, 0.0, 1.5, 0.2],  # positive 1
            [0.1, 0.2, 0.3, 0.4],  # no positive: left out of the mean
        ]
    )
    targets = torch.tensor([[1, 0, 0, 1], [0, 1, 0, 0], [0, 0, 0, 0]])
    # clip 0, positive 0 (0.5): hinges 1+1-0.5 = 1.5, 1+2-0.5 = 2.5 -> r=2, beta=0.75, L = 3.0
    # clip 0, positive 3 (0.0): hinges 2.0, 3.0             -> r=2, beta=0.75, L = 3.75
    # clip 1, positive 1 (0.0): hinges 3.0, 2.5, 1.2        -> r=3, beta=11/18, L = 6.7*11/18
    clip0 = (3.0 + 3.75) / 2
    clip1 = 6.7 * 11 / 18
    assert warp_loss(scores, targets).item() == pytest.approx((clip0 + clip1) / 2, rel=1e-6)


def test_margin_is_a_parameter():
    # margin 0.2: 0.2 + 0.5 - 1.0 < 0, no violation; margin 2: hinge 1.5
    scores, targets = torch.tensor([[1.0, 0.5]]), torch.tensor([[1, 0]])
    assert warp_loss(scores, targets, margin=0.2).item() == 0.0
    assert warp_loss(scores, targets, margin=2.0).item() == pytest.approx(1.5)


def test_gradient_pushes_positive_up_and_negatives_down_with_rank_weight_constant():
    scores = torch.tensor([[0.0, 0.5, 0.7, -5.0]], requires_grad=True)
    warp_loss(scores, torch.tensor([[1, 0, 0, 0]])).backward()
    # r = 2 (negatives 0.5 and 0.7 violate; -5.0 does not), beta = 0.75, one positive
    assert scores.grad[0].tolist() == pytest.approx([-1.5, 0.75, 0.75, 0.0])


def test_no_positive_anywhere_gives_zero_with_gradient():
    scores = torch.randn(2, 3, requires_grad=True)
    loss = warp_loss(scores, torch.zeros(2, 3))
    loss.backward()
    assert loss.item() == 0.0 and scores.grad is not None


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match=r"\[B, C\]"):
        warp_loss(torch.zeros(2, 3), torch.zeros(2, 4))


def _dense_warp_loss(scores, targets, margin=1.0):
    # the definition over the full [B, C, C] comparison (the loss before it kept only positives)
    positive = targets.bool()
    violation = margin + scores[:, None, :] - scores[:, :, None]
    violating = (violation > 0) & ~positive[:, None, :]
    hinge = torch.where(violating, violation, torch.zeros_like(violation)).sum(dim=2)
    per_positive = torch.where(positive, rank_weights(scores.shape[1])[violating.sum(2)] * hinge, 0)
    n_positive = positive.sum(dim=1)
    keep = n_positive > 0
    return (per_positive.sum(dim=1)[keep] / n_positive[keep]).mean()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_positive_pairs_only_equals_the_full_comparison_in_value_and_gradient(seed):
    generator = torch.Generator().manual_seed(seed)
    scores = torch.randn(32, 300, generator=generator).round(decimals=1)  # ties included
    targets = torch.rand(32, 300, generator=generator) < 0.01
    targets[:3] = False  # clips without a positive
    targets[3, :5] = True
    ours, dense = scores.clone().requires_grad_(), scores.clone().requires_grad_()
    loss, expected = warp_loss(ours, targets, margin=0.7), _dense_warp_loss(dense, targets, 0.7)
    loss.backward()
    expected.backward()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert torch.allclose(ours.grad, dense.grad, atol=1e-7)
