"""Adam for the generator and the classifier, without ``torch.optim.Optimizer``.

``torch.optim.Adam.step`` imports ``torch._dynamo`` (2 to 3 s in every stage process) only to mark graph
breaks for ``torch.compile``, which nothing here uses. This applies the same update, torch's functional
``torch.optim.adam.adam``, to the same state, so the parameters are bit-identical to torch's Adam
(``tests/test_adam.py`` checks it).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch.optim.adam import adam


class Adam:
    def __init__(self, parameters: Iterable[torch.nn.Parameter], lr: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8) -> None:
        self.parameters = list(parameters)
        self.lr, self.betas, self.eps = lr, betas, eps
        # The state torch's Adam creates on its first step: float32 step counters, zero moments.
        self.steps = [torch.tensor(0.0) for _ in self.parameters]
        self.exp_avgs = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.parameters]
        self.exp_avg_sqs = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.parameters]

    def zero_grad(self) -> None:
        for parameter in self.parameters:
            parameter.grad = None

    @torch.no_grad()
    def step(self) -> None:
        active = [index for index, parameter in enumerate(self.parameters) if parameter.grad is not None]
        adam([self.parameters[i] for i in active], [self.parameters[i].grad for i in active],
             [self.exp_avgs[i] for i in active], [self.exp_avg_sqs[i] for i in active], [],
             [self.steps[i] for i in active], foreach=None, amsgrad=False, beta1=self.betas[0], beta2=self.betas[1],
             lr=self.lr, weight_decay=0.0, eps=self.eps, maximize=False, capturable=False, differentiable=False,
             fused=None, grad_scale=None, found_inf=None, has_complex=False, decoupled_weight_decay=False)
