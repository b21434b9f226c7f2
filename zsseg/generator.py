"""The GMMN feature generator of ZS3Net: [class embedding ; noise] -> per-pixel backbone features."""

from __future__ import annotations

import torch
from torch import nn


class FeatureGenerator(nn.Module):
    """Linear -> LeakyReLU(0.2) -> Dropout -> Linear, as in ZS3Net."""

    def __init__(self, embedding_dim: int, noise_dim: int, hidden_dim: int, feature_dim: int,
                 dropout: float) -> None:
        super().__init__()
        self.embedding_dim, self.noise_dim = embedding_dim, noise_dim
        self.hidden_dim, self.feature_dim, self.dropout = hidden_dim, feature_dim, dropout
        self.layers = nn.Sequential(
            nn.Linear(embedding_dim + noise_dim, hidden_dim),
            nn.LeakyReLU(0.2),
            nn.Dropout(dropout),
            nn.Linear(hidden_dim, feature_dim),
        )

    def forward(self, embeddings: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return self.layers(torch.cat([embeddings, noise], dim=1))

    def config(self) -> dict:
        return {"embedding_dim": self.embedding_dim, "noise_dim": self.noise_dim, "hidden_dim": self.hidden_dim,
                "feature_dim": self.feature_dim, "dropout": self.dropout}
