"""Multi-kernel maximum mean discrepancy (GMMN loss) and its confidence-weighted form (ZS-MMD).

The kernel follows the ZS3Net reference code: ``k(x, y) = sum_s exp(-|x - y|^2 / (2 s))`` over the
bandwidths ``s`` (2, 5, 10, 20, 40, 80 by default), and the loss is the square root of MMD^2.
Everything is batched over groups (one group per class), so a training step is a few batched
matrix products instead of a Python loop over classes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

ZS3NET_BANDWIDTHS = (2.0, 5.0, 10.0, 20.0, 40.0, 80.0)


def _squared_distances(x: torch.Tensor, y: torch.Tensor, x_norms: torch.Tensor | None = None,
                       y_norms: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """|x_i - y_j|^2 (..., m, n), floored at 0 against rounding, and where the floor did not act.
    ``x_norms``, ``y_norms``: the rows' squared norms (..., m) and (..., n), when already computed."""
    x_norms = (x * x).sum(-1) if x_norms is None else x_norms
    y_norms = (y * y).sum(-1) if y_norms is None else y_norms
    squared = torch.baddbmm(x_norms.unsqueeze(-1) + y_norms.unsqueeze(-2), x, y.transpose(-1, -2), alpha=-2.0)
    return squared.clamp_min(0.0), squared >= 0.0


def _kernel_and_slope(squared: torch.Tensor, bandwidths: Sequence[float],
                      slope: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """k(d) = sum_s exp(-d / (2 s)) and, with ``slope``, its derivative dk/dd, elementwise."""
    kernel, term = torch.zeros_like(squared), torch.empty_like(squared)
    derivative = torch.zeros_like(squared) if slope else None
    for bandwidth in bandwidths:
        torch.mul(squared, -1.0 / (2.0 * bandwidth), out=term).exp_()
        kernel.add_(term)
        if derivative is not None:
            derivative.sub_(term, alpha=1.0 / (2.0 * bandwidth))
    return kernel, derivative


def _quadratic(a: torch.Tensor, k: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a.unsqueeze(-2) @ k @ b.unsqueeze(-1)).squeeze(-1).squeeze(-1)


class _WeightedMMDSquared(torch.autograd.Function):
    """MMD^2 per group with its gradient in closed form with respect to the generated samples.

    Autograd through the kernel would record ~10 elementwise operations per bandwidth and kernel matrix,
    which made them the larger part of a generator step. With W = (a b^T) o dk/dd (zero where the distance
    floor acted), d(a^T K(x, y) b)/dx = 2 (rowsum(W) x - W y), and both arguments count for K(x, x).
    """

    @staticmethod
    def forward(ctx, generated: torch.Tensor, target: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor,
                bandwidths: Sequence[float]) -> torch.Tensor:
        generated_norms, target_norms = (generated * generated).sum(-1), (target * target).sum(-1)
        squared_gg, unfloored_gg = _squared_distances(generated, generated, generated_norms, generated_norms)
        squared_gt, unfloored_gt = _squared_distances(generated, target, generated_norms, target_norms)
        k_gg, slope_gg = _kernel_and_slope(squared_gg, bandwidths)
        k_gt, slope_gt = _kernel_and_slope(squared_gt, bandwidths)
        k_tt = _kernel_and_slope(_squared_distances(target, target, target_norms, target_norms)[0], bandwidths,
                                 slope=False)[0]
        ctx.save_for_backward(generated, target, alpha, beta, slope_gg * unfloored_gg, slope_gt * unfloored_gt)
        return _quadratic(alpha, k_gg, alpha) + _quadratic(beta, k_tt, beta) - 2.0 * _quadratic(alpha, k_gt, beta)

    @staticmethod
    def backward(ctx, upstream: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        generated, target, alpha, beta, slope_gg, slope_gt = ctx.saved_tensors
        w_gg = alpha.unsqueeze(-1) * slope_gg * alpha.unsqueeze(-2)
        w_gg = w_gg + w_gg.transpose(-1, -2)
        w_gt = alpha.unsqueeze(-1) * slope_gt * beta.unsqueeze(-2)
        gradient = (2.0 * (w_gg.sum(-1, keepdim=True) * generated - w_gg @ generated)
                    - 4.0 * (w_gt.sum(-1, keepdim=True) * generated - w_gt @ target))
        return gradient * upstream.unsqueeze(-1).unsqueeze(-1), None, None, None, None


def weighted_mmd_squared(generated: torch.Tensor, target: torch.Tensor, target_weights: torch.Tensor | None,
                         bandwidths: Sequence[float]) -> torch.Tensor:
    """MMD^2 between the uniform distribution on ``generated`` (G, m, d) and the weighted one on
    ``target`` (G, n, d), per group: a (G,) tensor. The gradient flows to ``generated`` alone.

    The weights (G, n) are normalised to sum to one per group, so equal weights give plain MMD^2.
    All-zero weights describe no distribution: that group's MMD^2 is zero and carries no gradient.
    """
    m, n = generated.shape[-2], target.shape[-2]
    alpha = torch.full(generated.shape[:-1], 1.0 / m, dtype=generated.dtype, device=generated.device)
    if target_weights is None:
        beta = torch.full(target.shape[:-1], 1.0 / n, dtype=target.dtype, device=target.device)
        valid = torch.ones(target.shape[:-2], dtype=torch.bool, device=target.device)
    else:
        total = target_weights.sum(-1, keepdim=True)
        valid = total.squeeze(-1) > 0
        beta = (target_weights / torch.where(total > 0, total, torch.ones_like(total))).to(target.dtype)
    squared = _WeightedMMDSquared.apply(generated, target.detach(), alpha, beta.detach(), tuple(bandwidths))
    return torch.where(valid, squared, torch.zeros_like(squared))


def mmd_loss(generated: torch.Tensor, target: torch.Tensor, bandwidths: Sequence[float] = ZS3NET_BANDWIDTHS,
             target_weights: torch.Tensor | None = None) -> torch.Tensor:
    """sqrt(MMD^2), the GMMN loss, per group for (G, m, d) inputs or a scalar for (m, d) inputs.

    ``target_weights`` turns it into the confidence-weighted ZS-MMD term.
    """
    single = generated.dim() == 2
    if single:
        generated, target = generated.unsqueeze(0), target.unsqueeze(0)
        target_weights = None if target_weights is None else target_weights.unsqueeze(0)
    squared = weighted_mmd_squared(generated, target, target_weights, bandwidths)
    # The floor keeps the gradient of sqrt finite when the two samples coincide.
    loss = torch.sqrt(squared.clamp_min(1e-12))
    return loss[0] if single else loss
