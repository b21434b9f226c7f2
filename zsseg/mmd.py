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


def multi_kernel(x: torch.Tensor, y: torch.Tensor, bandwidths: Sequence[float]) -> torch.Tensor:
    """Sum of Gaussian kernels between the rows of ``x`` (..., m, d) and ``y`` (..., n, d): (..., m, n)."""
    squared = (x * x).sum(-1, keepdim=True) + (y * y).sum(-1).unsqueeze(-2) - 2.0 * x @ y.transpose(-1, -2)
    squared = squared.clamp_min(0.0)
    return sum(torch.exp(-squared / (2.0 * bandwidth)) for bandwidth in bandwidths)


def weighted_mmd_squared(generated: torch.Tensor, target: torch.Tensor, target_weights: torch.Tensor | None,
                         bandwidths: Sequence[float]) -> torch.Tensor:
    """MMD^2 between the uniform distribution on ``generated`` (G, m, d) and the weighted one on
    ``target`` (G, n, d), per group: a (G,) tensor.

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
    k_gg = multi_kernel(generated, generated, bandwidths)
    k_tt = multi_kernel(target, target, bandwidths)
    k_gt = multi_kernel(generated, target, bandwidths)
    quadratic = lambda a, k, b: (a.unsqueeze(-2) @ k @ b.unsqueeze(-1)).squeeze(-1).squeeze(-1)  # noqa: E731
    squared = quadratic(alpha, k_gg, alpha) + quadratic(beta, k_tt, beta) - 2.0 * quadratic(alpha, k_gt, beta)
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
