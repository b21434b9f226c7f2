"""The generator: ZS3Net's noise and initialisation options, dropout active when sampling, and a few
training steps that lower the MMD on a toy problem."""

import torch

from zsseg.config import GeneratorParams
from zsseg.generator import FeatureGenerator, generate_features, train_generator
from zsseg.mmd import mmd_loss

CPU = torch.device("cpu")


def params(**overrides):
    values = dict(noise_dim=4, hidden_dim=32, dropout=0.5, bandwidths=[2.0, 5.0, 10.0], steps=150, learning_rate=0.01,
                  samples_per_class=32, real_features_per_class=200, noise="normal", init="pytorch")
    return GeneratorParams(**{**values, **overrides})


def test_uniform_noise_and_xavier_init_are_zs3nets():
    torch.manual_seed(0)
    generator = FeatureGenerator(3, 1000, 8, 2, 0.5, noise="uniform", init="xavier")
    noise = generator.sample_noise(50, torch.Generator().manual_seed(0))
    assert noise.min() >= 0 and noise.max() < 1 and abs(noise.mean().item() - 0.5) < 0.01
    first = generator.layers[0]
    bound = (6 / (first.in_features + first.out_features)) ** 0.5
    assert first.weight.abs().max() <= bound and first.weight.abs().max() > 0.9 * bound
    assert torch.all(first.bias == 0.01) and torch.all(generator.layers[-1].bias == 0.01)
    assert FeatureGenerator(**generator.config()).noise == "uniform"   # a saved generator samples as it trained


def test_dropout_stays_active_when_generating():
    """With the noise cut off, the eval-mode generator maps a class to one point; generate_features must
    spread it, because dropout is on (the distribution the MMD was minimised for)."""
    torch.manual_seed(0)
    generator = FeatureGenerator(3, 4, 64, 5, 0.5)
    with torch.no_grad():
        generator.layers[0].weight[:, 3:] = 0.0
    embeddings = torch.randn(2, 3)
    generated = generate_features(generator, embeddings, [1], 200, 0, CPU, "test")[1]
    evaluated = generator.eval()(embeddings[1:2], torch.randn(1, 200, 4), torch.Generator())[0]
    assert evaluated.std(dim=0).max() < 1e-6
    assert generated.std(dim=0).min() > 1e-3
    assert torch.equal(generated, generate_features(generator, embeddings, [1], 200, 0, CPU, "test")[1])


def test_a_few_steps_lower_the_mmd_on_a_toy_problem():
    torch.manual_seed(0)
    embeddings = torch.eye(3)
    real = {0: torch.randn(200, 2) * 0.3 + torch.tensor([3.0, 0.0]), 1: torch.randn(200, 2) * 0.3 - 2.0}
    generator = FeatureGenerator(3, 4, 32, 2, 0.5)

    def mmd() -> float:
        generated = generate_features(generator, embeddings, [0, 1], 200, 1, CPU, "test")
        return sum(mmd_loss(generated[c], real[c], [2.0, 5.0, 10.0]).item() for c in real) / 2

    before = mmd()
    log = train_generator(generator, embeddings, real, params(), 150, 0, CPU, "test")
    after = mmd()
    assert after < 0.5 * before, (before, after)
    assert log[-1]["seen_mmd"] < log[0]["seen_mmd"]
