"""zsseg.adam.Adam is torch.optim.Adam bit for bit, without importing torch._dynamo."""

import subprocess
import sys

import torch

from zsseg.adam import Adam


def test_the_same_parameters_as_torch_adam_bit_for_bit():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.LeakyReLU(0.2), torch.nn.Linear(16, 3))
    twin = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.LeakyReLU(0.2), torch.nn.Linear(16, 3))
    twin.load_state_dict(model.state_dict())
    ours, theirs = Adam(model.parameters(), lr=0.01), torch.optim.Adam(twin.parameters(), lr=0.01)
    data = [(torch.randn(32, 6), torch.randint(0, 3, (32,))) for _ in range(200)]
    for inputs, targets in data:
        for network, optimiser in ((model, ours), (twin, theirs)):
            loss = torch.nn.functional.cross_entropy(network(inputs), targets)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    for mine, reference in zip(model.parameters(), twin.parameters()):
        assert torch.equal(mine, reference)


def test_no_dynamo_import():
    code = ("import sys, torch; from zsseg.adam import Adam; p = torch.nn.Parameter(torch.ones(3)); o = Adam([p], 0.1);"
            " p.sum().backward(); o.step(); print('torch._dynamo' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"
