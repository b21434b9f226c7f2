"""zsseg.optimisers is torch.optim's Adam, AdamW and SGD (with LambdaLR) bit for bit, without importing
torch._dynamo."""

import subprocess
import sys

import pytest
import torch

from zsseg.optimisers import SGD, Adam

STEPS = 120


def _network() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.LeakyReLU(0.2), torch.nn.Linear(16, 3))


def _poly(step: int) -> float:
    return (1 - step / STEPS) ** 0.9


CASES = {
    "adam": (lambda groups: Adam(groups, lr=0.01),
             lambda groups: torch.optim.Adam(groups, lr=0.01), False),
    "adamw, two groups, poly schedule": (
        lambda groups: Adam(groups, lr=0.01, weight_decay=0.05, decoupled_weight_decay=True),
        lambda groups: torch.optim.AdamW(groups, lr=0.01, weight_decay=0.05), True),
    "sgd with momentum, two groups, poly schedule": (
        lambda groups: SGD(groups, lr=0.05, momentum=0.9, weight_decay=1e-3),
        lambda groups: torch.optim.SGD(groups, lr=0.05, momentum=0.9, weight_decay=1e-3), True),
}


@pytest.mark.parametrize("case", CASES)
def test_the_same_parameters_as_torch_bit_for_bit(case):
    ours_factory, torch_factory, grouped = CASES[case]
    torch.manual_seed(0)
    model, twin = _network(), _network()
    twin.load_state_dict(model.state_dict())
    start = [parameter.detach().clone() for parameter in model.parameters()]

    def groups(network):
        # The second group learns 10x faster, as the backbone's head does with head_lr_multiplier.
        if not grouped:
            return network.parameters()
        return [{"params": network[0].parameters(), "lr": 0.01}, {"params": network[2].parameters(), "lr": 0.1}]

    ours, theirs = ours_factory(groups(model)), torch_factory(groups(twin))
    scheduler = torch.optim.lr_scheduler.LambdaLR(theirs, _poly) if grouped else None
    data = [(torch.randn(32, 6), torch.randint(0, 3, (32,))) for _ in range(STEPS)]
    for step, (inputs, targets) in enumerate(data, start=1):
        for network, optimiser in ((model, ours), (twin, theirs)):
            loss = torch.nn.functional.cross_entropy(network(inputs), targets)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        if grouped:
            scheduler.step()
            ours.schedule(_poly(step))
            assert [group["lr"] for group in ours.groups] == [group["lr"] for group in theirs.param_groups]
    for mine, reference, initial in zip(model.parameters(), twin.parameters(), start):
        assert torch.equal(mine, reference)
        assert not torch.equal(mine, initial)


def test_no_dynamo_import():
    code = ("import sys, torch; from zsseg.optimisers import Adam, SGD; p = torch.nn.Parameter(torch.ones(3));"
            " o = Adam([p], 0.1); s = SGD([{'params': [p]}], 0.1, momentum=0.9); p.sum().backward(); o.step();"
            " s.step(); print('torch._dynamo' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"
