"""The GMMN feature generator of ZS3Net, [class embedding ; noise] -> per-pixel backbone features, its
training with the multi-kernel MMD (plus the confidence-weighted ZS-MMD term of recursive rounds), and
sampling from it."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from zsseg.optimisers import Adam
from zsseg.config import GeneratorParams
from zsseg.embeddings import EmbeddingError
from zsseg.errors import NumericalError
from zsseg.mmd import mmd_loss
from zsseg.runtime import torch_generator
from zsseg.checkpoints import load_weights_only

GENERATOR_FILE = "generator.pt"

# generator.noise: the noise concatenated to a class embedding, (count, dim) from a seeded generator.
NOISES: dict[str, Callable[[int, int, torch.Generator], torch.Tensor]] = {
    "normal": lambda count, dim, rng: torch.randn(count, dim, generator=rng),
    "uniform": lambda count, dim, rng: torch.rand(count, dim, generator=rng),
}


def _xavier(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        nn.init.constant_(module.bias, 0.01)


# generator.init: how the Linear layers start (torch's default, or ZS3Net's Xavier-uniform with biases 0.01).
INITS: dict[str, Callable[[nn.Module], None]] = {"pytorch": lambda module: None, "xavier": _xavier}


class FeatureGenerator(nn.Module):
    """Linear -> LeakyReLU(0.2) -> Dropout -> Linear, as in ZS3Net. It keeps its noise distribution,
    so that a saved generator samples as it was trained."""

    def __init__(self, embedding_dim: int, noise_dim: int, hidden_dim: int, feature_dim: int,
                 dropout: float, noise: str = "normal", init: str = "pytorch") -> None:
        super().__init__()
        self.embedding_dim, self.noise_dim = embedding_dim, noise_dim
        self.hidden_dim, self.feature_dim, self.dropout, self.noise = hidden_dim, feature_dim, dropout, noise
        self.layers = nn.Sequential(
            nn.Linear(embedding_dim + noise_dim, hidden_dim),
            nn.LeakyReLU(0.2),
            nn.Dropout(dropout),
            nn.Linear(hidden_dim, feature_dim),
        )
        self.layers.apply(INITS[init])

    def forward(self, embeddings: torch.Tensor, noise: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        """Features (G, n, D) of the noise vectors (G, n, Z) of each of G class embeddings (G, E).

        The first layer on [e ; z] is computed as W_e e + W_z z, the class part once per class rather than
        once per sample (the same function; floats differ from the concatenated product in the last bits).
        Dropout draws its mask from ``rng``, so that training and sampling depend on the seed alone.
        """
        first, activation, dropout, last = self.layers
        class_part = F.linear(embeddings, first.weight[:, :self.embedding_dim], first.bias)
        hidden = activation(class_part.unsqueeze(1) + F.linear(noise, first.weight[:, self.embedding_dim:]))
        if self.training and dropout.p > 0:
            keep = torch.rand(hidden.shape, generator=rng) >= dropout.p
            hidden = hidden * keep.to(hidden.device) * (1.0 / (1.0 - dropout.p))
        return last(hidden)

    def sample_noise(self, count: int, rng: torch.Generator) -> torch.Tensor:
        return NOISES[self.noise](count, self.noise_dim, rng)

    def config(self) -> dict:
        return {"embedding_dim": self.embedding_dim, "noise_dim": self.noise_dim, "hidden_dim": self.hidden_dim,
                "feature_dim": self.feature_dim, "dropout": self.dropout, "noise": self.noise}


def train_generator(generator: FeatureGenerator, embeddings: torch.Tensor, real: dict[int, torch.Tensor],
                    params: GeneratorParams, steps: int, seed: int, device: torch.device, stage: str,
                    pseudo: dict[int, tuple[torch.Tensor, torch.Tensor]] | None = None,
                    zs_mmd_lambda: float = 0.0) -> list[dict]:
    """Train with the mean per-class MMD on seen classes, plus ``zs_mmd_lambda`` times the mean weighted
    MMD on the pseudo-labelled unseen classes (ZS-MMD) when ``pseudo`` ({class: (features, weights)}) is given."""
    generator = generator.to(device).train()
    optimiser = Adam(generator.parameters(), lr=params.learning_rate)
    rng = torch_generator(seed)
    n = params.samples_per_class
    pseudo = pseudo or {}
    seen_classes, pseudo_classes = sorted(real), sorted(pseudo)
    class_ids = torch.tensor(seen_classes + pseudo_classes)
    class_embeddings = embeddings[class_ids].to(device)
    # The seen classes' features in one tensor: a step's targets are one gather from it, not one per class.
    seen_pool = torch.cat([real[c] for c in seen_classes])
    seen_offsets = list(itertools.accumulate((real[c].shape[0] for c in seen_classes[:-1]), initial=0))
    log = []
    for step in tqdm(range(steps), desc=f"{stage} generator", unit="step", leave=False):
        draws = [torch.randint(real[c].shape[0], (n,), generator=rng) + offset
                 for c, offset in zip(seen_classes, seen_offsets)]
        seen_targets = seen_pool.index_select(0, torch.cat(draws)).reshape(len(seen_classes), n, -1).to(device)
        pseudo_samples = [torch.randint(pseudo[u][0].shape[0], (n,), generator=rng) for u in pseudo_classes]
        noise = generator.sample_noise(class_ids.numel() * n, rng).reshape(class_ids.numel(), n, -1).to(device)
        generated = generator(class_embeddings, noise, rng)
        if pseudo_classes:
            # One batched MMD over every class: a seen class weighs its samples equally (weights of 1 give
            # exactly the unweighted MMD), a pseudo-labelled one by its pseudo-features' weights.
            pseudo_targets = torch.stack([pseudo[u][0].index_select(0, index)
                                          for u, index in zip(pseudo_classes, pseudo_samples)])
            pseudo_weights = torch.stack([pseudo[u][1].index_select(0, index)
                                          for u, index in zip(pseudo_classes, pseudo_samples)])
            weights = torch.cat([torch.ones(len(seen_classes), n), pseudo_weights]).to(device)
            every_term = mmd_loss(generated, torch.cat([seen_targets, pseudo_targets.to(device)]), params.bandwidths,
                                  weights)
            terms = {"seen": every_term[:len(seen_classes)], "pseudo": every_term[len(seen_classes):]}
        else:
            terms = {"seen": mmd_loss(generated, seen_targets, params.bandwidths)}
        seen_terms = terms["seen"]
        for kind, values in terms.items():
            if not torch.isfinite(values).all():
                bad = int(torch.nonzero(~torch.isfinite(values))[0])
                c = (seen_classes if kind == "seen" else pseudo_classes)[bad]
                raise NumericalError(f"{stage}: step {step}: MMD of class {c} ({kind}) is {values[bad].item()}")
        seen_loss = seen_terms.mean()
        pseudo_loss = terms["pseudo"].mean() if pseudo_classes else torch.zeros((), device=device)
        loss = seen_loss + zs_mmd_lambda * pseudo_loss
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if step % 25 == 0 or step == steps - 1:
            log.append({"step": step, "loss": loss.item(), "seen_mmd": seen_loss.item(),
                        "pseudo_mmd": pseudo_loss.item()})
    return log


@torch.no_grad()
def generate_features(generator: FeatureGenerator, embeddings: torch.Tensor, classes: Sequence[int], count: int,
                      seed: int, device: torch.device, stage: str) -> dict[int, torch.Tensor]:
    """``count`` generated features per class.

    Dropout stays active: the MMD was minimised for the generator *with* dropout, so that is the
    distribution that matches the real features (eval mode would sample a narrower one).
    """
    generator = generator.to(device).train()
    rng = torch_generator(seed)
    generated = {}
    for c in classes:
        noise = generator.sample_noise(count, rng).to(device)
        features = generator(embeddings[c:c + 1].to(device), noise.unsqueeze(0), rng)[0].cpu()
        if not torch.isfinite(features).all():
            raise NumericalError(f"{stage}: generated features of class {c} contain NaN or Inf")
        generated[c] = features
    return generated


def save_generator(directory: Path, generator: FeatureGenerator) -> None:
    torch.save({"config": generator.config(), "state_dict": generator.state_dict()}, directory / GENERATOR_FILE)


def load_generator(directory: str | Path, embeddings: torch.Tensor) -> FeatureGenerator:
    """The generator saved in ``directory``, checked against the class embeddings it will be fed."""
    path = Path(directory) / GENERATOR_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no trained generator; run the round that makes it first")
    checkpoint = load_weights_only(path)
    generator = FeatureGenerator(**checkpoint["config"])
    if generator.embedding_dim != embeddings.shape[1]:
        raise EmbeddingError(f"{path}: the generator takes {generator.embedding_dim}-d class embeddings, the "
                             f"embeddings have {embeddings.shape[1]} dimensions; rerun from the embed stage")
    generator.load_state_dict(checkpoint["state_dict"])
    return generator
