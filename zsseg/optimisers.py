"""Adam, AdamW and SGD with momentum, without ``torch.optim.Optimizer``.

``torch.optim.Optimizer`` imports ``torch._dynamo`` (2 to 4 s in every stage process) only to mark graph
breaks for ``torch.compile``, which nothing here uses. These classes apply torch's own functional updates
(``torch.optim.adam.adam``, ``torch.optim.sgd.sgd``) to the same state, group by group, so the parameters
are bit-identical to torch's optimisers, and to ``LambdaLR`` for a learning-rate schedule
(``tests/test_optimisers.py`` checks both). ``state_dict``/``load_state_dict`` carry what a resumed
training needs (the backbone's resume state, ``zsseg/resume_state.py``), as tensors, lists and floats only.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch.optim.adam import adam
from torch.optim.sgd import sgd

ParameterGroups = Iterable[torch.nn.Parameter] | list[dict]


def _groups(parameters: ParameterGroups, lr: float) -> list[dict]:
    """torch's convention: a list of {"params": ..., "lr": ...} dicts, or one group of parameters at ``lr``."""
    parameters = list(parameters)
    if parameters and isinstance(parameters[0], dict):
        return [{**group, "params": list(group["params"]), "lr": group.get("lr", lr)} for group in parameters]
    return [{"params": parameters, "lr": lr}]


class _Optimiser:
    def __init__(self, parameters: ParameterGroups, lr: float) -> None:
        self.groups = _groups(parameters, lr)
        self.base_lrs = [group["lr"] for group in self.groups]

    def zero_grad(self) -> None:
        for group in self.groups:
            for parameter in group["params"]:
                parameter.grad = None

    def schedule(self, factor: float) -> None:
        """Every group's learning rate = its initial one x ``factor``, as ``LambdaLR`` sets it."""
        for group, base_lr in zip(self.groups, self.base_lrs):
            group["lr"] = base_lr * factor

    def _active(self, group: dict) -> list[int]:
        return [index for index, parameter in enumerate(group["params"]) if parameter.grad is not None]

    def state_dict(self) -> dict:
        """Each group's current learning rate and the per-parameter state; the initial learning rates come
        from the constructor, as the schedule's base."""
        return {"lrs": [group["lr"] for group in self.groups], "parameters": self._parameter_state()}

    def load_state_dict(self, saved: dict) -> None:
        """Continue from ``state_dict()`` of an optimiser built the same way (same groups, same shapes)."""
        if len(saved["lrs"]) != len(self.groups):
            raise ValueError(f"optimiser state of {len(saved['lrs'])} parameter groups, but this optimiser has "
                             f"{len(self.groups)}")
        for group, lr in zip(self.groups, saved["lrs"]):
            group["lr"] = lr
        self._load_parameter_state(saved["parameters"])

    def _parameter_state(self) -> list:
        raise NotImplementedError

    def _load_parameter_state(self, saved: list) -> None:
        raise NotImplementedError


class Adam(_Optimiser):
    """torch.optim.Adam, or torch.optim.AdamW with ``decoupled_weight_decay``."""

    def __init__(self, parameters: ParameterGroups, lr: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, decoupled_weight_decay: bool = False) -> None:
        super().__init__(parameters, lr)
        self.betas, self.eps = betas, eps
        self.weight_decay, self.decoupled_weight_decay = weight_decay, decoupled_weight_decay
        # The state torch's Adam creates on its first step: float32 step counters, zero moments.
        self.state = [{"steps": [torch.tensor(0.0) for _ in group["params"]],
                       "exp_avgs": [torch.zeros_like(p, memory_format=torch.preserve_format) for p in group["params"]],
                       "exp_avg_sqs": [torch.zeros_like(p, memory_format=torch.preserve_format)
                                       for p in group["params"]]}
                      for group in self.groups]

    @torch.no_grad()
    def step(self) -> None:
        for group, state in zip(self.groups, self.state):
            active = self._active(group)
            adam([group["params"][i] for i in active], [group["params"][i].grad for i in active],
                 [state["exp_avgs"][i] for i in active], [state["exp_avg_sqs"][i] for i in active], [],
                 [state["steps"][i] for i in active], foreach=None, amsgrad=False, beta1=self.betas[0],
                 beta2=self.betas[1], lr=group["lr"], weight_decay=self.weight_decay, eps=self.eps, maximize=False,
                 capturable=False, differentiable=False, fused=None, grad_scale=None, found_inf=None,
                 has_complex=False, decoupled_weight_decay=self.decoupled_weight_decay)

    def _parameter_state(self) -> list:
        return self.state

    @torch.no_grad()
    def _load_parameter_state(self, saved: list) -> None:
        # Copied into the tensors made for this optimiser's parameters: their device and memory format stay.
        for state, saved_state in zip(self.state, saved, strict=True):
            for name, tensors in state.items():
                for tensor, saved_tensor in zip(tensors, saved_state[name], strict=True):
                    tensor.copy_(saved_tensor)


class SGD(_Optimiser):
    """torch.optim.SGD with momentum (no dampening, no Nesterov)."""

    def __init__(self, parameters: ParameterGroups, lr: float, momentum: float = 0.0,
                 weight_decay: float = 0.0) -> None:
        super().__init__(parameters, lr)
        self.momentum, self.weight_decay = momentum, weight_decay
        self.buffers: list[list[torch.Tensor | None]] = [[None] * len(group["params"]) for group in self.groups]

    @torch.no_grad()
    def step(self) -> None:
        for group, buffers in zip(self.groups, self.buffers):
            active = self._active(group)
            momentum_buffers = [buffers[i] for i in active]
            sgd([group["params"][i] for i in active], [group["params"][i].grad for i in active], momentum_buffers,
                weight_decay=self.weight_decay, momentum=self.momentum, lr=group["lr"], dampening=0.0,
                nesterov=False, maximize=False, has_sparse_grad=False, foreach=None, fused=None)
            for i, buffer in zip(active, momentum_buffers):
                buffers[i] = buffer

    def _parameter_state(self) -> list:
        return self.buffers

    def _load_parameter_state(self, saved: list) -> None:
        # None: a parameter that never had a gradient has no buffer yet, as in torch's SGD.
        self.buffers = [[None if buffer is None else buffer.to(parameter.device)
                         for parameter, buffer in zip(group["params"], group_buffers, strict=True)]
                        for group, group_buffers in zip(self.groups, saved, strict=True)]


Optimiser = Adam | SGD
