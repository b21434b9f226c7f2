"""One training round = generator + final classifier (+ pseudo-features from round 1 on).

Round 0 is plain ZS3Net. Round r >= 1 mines pseudo-features with round r-1's classifier, warm-starts
the generator from round r-1 and retrains it with ZS-MMD, then retrains the classifier. ZS5Net's
self-training baseline retrains only the classifier of round 0 with pseudo-labelled pixels added.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from zsseg.config import Params
from zsseg.embeddings import EmbeddingError
from zsseg.feature_cache import FeatureCache
from zsseg.generator import FeatureGenerator
from zsseg.zero_shot import (PseudoFeatures, extract_pseudo_features, generate_features, linear_classifier,
                             sample_class_features, self_training_features, train_classifier, train_generator)

GENERATOR_FILE = "generator.pt"
CLASSIFIER_FILE = "classifier.pt"
LOG_FILE = "training_log.json"
PSEUDO_FEATURES_FILE = "pseudo_features.h5"
# The seed key of the self-training stage: it must not share generated features with any round.
SELF_TRAINING_KEY = 1_000_000


def derive_seed(base: int, *keys: int) -> int:
    """Independent, reproducible seeds for each (purpose, round) from the one seed in params.yaml."""
    return int(np.random.SeedSequence([base, *keys]).generate_state(1)[0])


@dataclass
class RoundResult:
    generator: FeatureGenerator
    classifier: nn.Linear
    log: dict
    pseudo_features: PseudoFeatures | None = None
    pseudo_attributes: dict = field(default_factory=dict)


def load_embeddings(path: str | Path, class_names: list[str]) -> torch.Tensor:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: class embeddings not found; run the embed stage")
    archive = np.load(path)
    names = [str(name) for name in archive["class_names"]]
    if names != list(class_names):
        raise EmbeddingError(f"{path}: embeddings were made for classes {names}, the feature cache has "
                             f"{class_names}; rerun the embed stage")
    return torch.from_numpy(archive["vectors"].astype(np.float32))


def save_round(directory: Path, result: RoundResult, class_names: list[str], unseen: list[int]) -> None:
    torch.save({"config": result.generator.config(), "state_dict": result.generator.state_dict()},
               directory / GENERATOR_FILE)
    save_classifier(directory, result.classifier, result.log, class_names, unseen)
    if result.pseudo_features is not None:
        result.pseudo_features.save(directory / PSEUDO_FEATURES_FILE, result.pseudo_attributes)


def save_classifier(directory: Path, classifier: nn.Linear, log: dict, class_names: list[str],
                    unseen: list[int]) -> None:
    torch.save({"weight": classifier.weight.detach().cpu(), "bias": classifier.bias.detach().cpu(),
                "class_names": class_names, "unseen": unseen}, directory / CLASSIFIER_FILE)
    (directory / LOG_FILE).write_text(json.dumps(log, indent=2) + "\n")


def load_generator(directory: str | Path, embeddings: torch.Tensor) -> FeatureGenerator:
    """The round's generator, checked against the class embeddings it will be fed."""
    path = Path(directory) / GENERATOR_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no trained generator; run the round that makes it first")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    generator = FeatureGenerator(**checkpoint["config"])
    if generator.embedding_dim != embeddings.shape[1]:
        raise EmbeddingError(f"{path}: the generator takes {generator.embedding_dim}-d class embeddings, the "
                             f"embeddings have {embeddings.shape[1]} dimensions; rerun from the embed stage")
    generator.load_state_dict(checkpoint["state_dict"])
    return generator


def load_classifier(directory: str | Path) -> nn.Linear:
    path = Path(directory) / CLASSIFIER_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no trained classifier; run the round that makes it first")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    return linear_classifier(checkpoint["weight"], checkpoint["bias"])


def _seen_features(params: Params, cache: FeatureCache, log: Callable[[str], None]) -> dict[int, torch.Tensor]:
    seen = [c for c in range(len(cache.class_names)) if c not in cache.unseen]
    real = sample_class_features(cache, seen, params.generator.real_features_per_class,
                                 derive_seed(params.seed, 1), batch_size=params.evaluate.batch_size)
    for c in seen:
        if c not in real:
            log(f"warning: seen class {cache.class_names[c]!r} has no labelled feature pixel; it is left out")
    return real


def _fit_classifier(params: Params, generator: FeatureGenerator, embeddings: torch.Tensor,
                    real: dict[int, torch.Tensor], cache: FeatureCache, round_index: int,
                    device: torch.device, stage: str) -> tuple[nn.Linear, list[dict]]:
    generated = generate_features(generator, embeddings, cache.unseen, params.classifier.generated_per_class,
                                  derive_seed(params.seed, 3, round_index), device, stage)
    return train_classifier({**real, **generated}, len(cache.class_names), params.classifier,
                            derive_seed(params.seed, 4, round_index), device, stage)


def train_round_zero(params: Params, cache: FeatureCache, embeddings: torch.Tensor, device: torch.device,
                     log: Callable[[str], None]) -> RoundResult:
    """ZS3Net: GMMN on real seen features, then the classifier on real seen + generated unseen."""
    stage = "round_0"
    real = _seen_features(params, cache, log)
    torch.manual_seed(derive_seed(params.seed, 2, 0))
    generator = FeatureGenerator(embeddings.shape[1], params.generator.noise_dim, params.generator.hidden_dim,
                                 cache.feature_dim, params.generator.dropout)
    generator_log = train_generator(generator, embeddings, real, params.generator, params.generator.steps,
                                    derive_seed(params.seed, 2, 0), device, stage)
    classifier, classifier_log = _fit_classifier(params, generator, embeddings, real, cache, 0, device, stage)
    return RoundResult(generator.cpu(), classifier, {"generator": generator_log, "classifier": classifier_log})


def train_recursive_round(params: Params, round_index: int, previous: str | Path, cache: FeatureCache,
                          embeddings: torch.Tensor, device: torch.device,
                          log: Callable[[str], None]) -> RoundResult:
    """Recursive ZS-MMD round ``round_index`` starting from the round saved in ``previous``."""
    stage = f"round_{round_index}"
    recursion = params.recursion
    pseudo, counts = extract_pseudo_features(cache, load_classifier(previous), cache.unseen, recursion.threshold,
                                             recursion.per_class_cap, recursion.min_count,
                                             params.evaluate.batch_size, device, stage)
    for name, count in counts.items():
        if count["skipped"]:
            log(f"{name}: {count['confident_pixels']} confident pixels < min_count {recursion.min_count}; skipped")
        else:
            log(f"{name}: {count['kept']} pseudo-features (of {count['confident_pixels']} confident pixels)")
    real = _seen_features(params, cache, log)
    generator = load_generator(previous, embeddings)
    generator_log = train_generator(generator, embeddings, real, params.generator, recursion.generator_steps,
                                    derive_seed(params.seed, 2, round_index), device, stage,
                                    pseudo=pseudo.by_class(), zs_mmd_lambda=recursion.zs_mmd_lambda)
    classifier, classifier_log = _fit_classifier(params, generator, embeddings, real, cache, round_index, device,
                                                 stage)
    attributes = {"round": round_index, "threshold": recursion.threshold, "per_class_cap": recursion.per_class_cap,
                  "min_count": recursion.min_count, "class_names": json.dumps(cache.class_names)}
    return RoundResult(generator.cpu(), classifier,
                       {"pseudo_features": counts, "generator": generator_log, "classifier": classifier_log},
                       pseudo, attributes)


def train_self_training(params: Params, previous: str | Path, cache: FeatureCache, embeddings: torch.Tensor,
                        device: torch.device, log: Callable[[str], None]) -> tuple[nn.Linear, dict]:
    """ZS5Net (ZS3Net's self-training baseline): round 0's classifier pseudo-labels the unlabelled
    training pixels, the top ``self_training.top_percent`` % per unseen class are kept, and the
    classifier is retrained on real seen + generated unseen + those pixels. The generator is not fed."""
    stage = "self_training"
    pseudo, stats = self_training_features(cache, load_classifier(previous), cache.unseen,
                                           params.self_training.top_percent, params.self_training.per_class_cap,
                                           params.evaluate.batch_size, device)
    for name, count in stats.items():
        log(f"{name}: {count['kept']} pseudo-labelled pixels (of {count['predicted_pixels']} predicted)")
    real = _seen_features(params, cache, log)
    generated = generate_features(load_generator(previous, embeddings), embeddings, cache.unseen,
                                  params.classifier.generated_per_class,
                                  derive_seed(params.seed, 3, SELF_TRAINING_KEY), device, stage)
    unseen_features = {u: torch.cat([generated[u], *([pseudo[u]] if u in pseudo else [])]) for u in cache.unseen}
    classifier, classifier_log = train_classifier({**real, **unseen_features}, len(cache.class_names),
                                                  params.classifier, derive_seed(params.seed, 4, SELF_TRAINING_KEY),
                                                  device, stage)
    return classifier, {"pseudo_labels": stats, "classifier": classifier_log}
