"""MMD and confidence-weighted MMD against brute-force double loops."""

import math

import pytest
import torch

from zsseg.mmd import ZS3NET_BANDWIDTHS, mmd_loss, weighted_mmd_squared


def kernel(x, y, bandwidths):
    squared = sum((float(a) - float(b)) ** 2 for a, b in zip(x, y))
    return sum(math.exp(-squared / (2.0 * s)) for s in bandwidths)


def brute_force_mmd_squared(generated, target, weights, bandwidths):
    m, n = len(generated), len(target)
    weights = [1.0] * n if weights is None else [float(w) for w in weights]
    total = sum(weights)
    beta = [w / total for w in weights]
    gg = sum(kernel(generated[i], generated[j], bandwidths) for i in range(m) for j in range(m)) / (m * m)
    tt = sum(beta[i] * beta[j] * kernel(target[i], target[j], bandwidths) for i in range(n) for j in range(n))
    gt = sum(beta[j] * kernel(generated[i], target[j], bandwidths) for i in range(m) for j in range(n)) / m
    return gg + tt - 2.0 * gt


@pytest.fixture
def samples():
    rng = torch.Generator().manual_seed(3)
    generated = torch.randn(7, 5, generator=rng, dtype=torch.float64) * 3
    target = torch.randn(9, 5, generator=rng, dtype=torch.float64) * 3 + 1.0
    weights = torch.rand(9, generator=rng, dtype=torch.float64)
    return generated, target, weights


def test_plain_mmd_matches_double_loop(samples):
    generated, target, _ = samples
    expected = brute_force_mmd_squared(generated.tolist(), target.tolist(), None, ZS3NET_BANDWIDTHS)
    got = weighted_mmd_squared(generated[None], target[None], None, ZS3NET_BANDWIDTHS)[0]
    assert got.item() == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert mmd_loss(generated, target).item() == pytest.approx(math.sqrt(expected), rel=1e-9)


def test_weighted_mmd_matches_double_loop(samples):
    generated, target, weights = samples
    expected = brute_force_mmd_squared(generated.tolist(), target.tolist(), weights.tolist(), (3.0, 40.0))
    got = mmd_loss(generated, target, (3.0, 40.0), target_weights=weights)
    assert got.item() == pytest.approx(math.sqrt(expected), rel=1e-9)


def test_equal_weights_reproduce_plain_mmd(samples):
    generated, target, _ = samples
    plain = mmd_loss(generated, target)
    for value in (1.0, 0.37, 12.0):
        weighted = mmd_loss(generated, target, target_weights=torch.full((9,), value, dtype=torch.float64))
        assert weighted.item() == pytest.approx(plain.item(), rel=1e-12)


def test_batched_groups_equal_separate_calls(samples):
    generated, target, weights = samples
    batch_generated = torch.stack([generated, generated * 0.5])
    batch_target = torch.stack([target, target[torch.arange(8, -1, -1)]])
    batch_weights = torch.stack([weights, torch.ones(9, dtype=torch.float64)])
    batched = mmd_loss(batch_generated, batch_target, target_weights=batch_weights)
    assert batched[0].item() == pytest.approx(mmd_loss(generated, target, target_weights=weights).item())
    assert batched[1].item() == pytest.approx(mmd_loss(generated * 0.5, target).item())


def test_all_zero_weights_give_zero_without_nan(samples):
    generated, target, _ = samples
    generated = generated.clone().requires_grad_(True)
    squared = weighted_mmd_squared(generated[None], target[None], torch.zeros(1, 9, dtype=torch.float64),
                                   ZS3NET_BANDWIDTHS)
    assert squared.item() == 0.0
    loss = mmd_loss(generated, target, target_weights=torch.zeros(9, dtype=torch.float64))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(generated.grad).all()
    assert generated.grad.abs().sum().item() == 0.0


def test_identical_samples_have_zero_mmd_and_finite_gradient():
    x = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    loss = mmd_loss(x, x.detach().clone())
    loss.backward()
    assert loss.item() < 1e-5
    assert torch.isfinite(x.grad).all()


def test_mmd_separates_shifted_distributions():
    rng = torch.Generator().manual_seed(0)
    reference = torch.randn(200, 3, generator=rng)
    near = torch.randn(200, 3, generator=rng)
    far = torch.randn(200, 3, generator=rng) + 4.0
    assert mmd_loss(near, reference) < mmd_loss(far, reference)


def test_closed_form_gradient_matches_finite_differences_and_the_double_loop(samples):
    generated, target, weights = samples
    generated = torch.stack([generated, generated.flip(0) * 0.5]).requires_grad_(True)
    targets, group_weights = torch.stack([target, target * 2.0]), torch.stack([weights, weights.flip(0)])
    assert torch.autograd.gradcheck(
        lambda x: weighted_mmd_squared(x, targets, group_weights, (3.0, 40.0)), (generated,))
    # The same gradient as autograd through the brute-force double loop, written with torch operations.
    reference = generated.detach().clone().requires_grad_(True)
    total = 0.0
    for g in range(2):
        x, y, w = reference[g], targets[g], group_weights[g] / group_weights[g].sum()
        k = lambda a, b: sum(torch.exp(-((a - b) ** 2).sum() / (2.0 * s)) for s in (3.0, 40.0))  # noqa: E731
        total = total + (sum(k(x[i], x[j]) for i in range(7) for j in range(7)) / 49
                         - 2.0 * sum(w[j] * k(x[i], y[j]) for i in range(7) for j in range(9)) / 7)
    total.backward()
    weighted_mmd_squared(generated, targets, group_weights, (3.0, 40.0)).sum().backward()
    assert torch.allclose(generated.grad, reference.grad, rtol=1e-9, atol=1e-12)
