"""One training round = generator + final classifier (+ pseudo-features from round 1 on).

Round 0 is plain ZS3Net. Round r >= 1 mines pseudo-features with round r-1's classifier, warm-starts
the generator from round r-1 and retrains it with ZS-MMD, then retrains the classifier.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from zsseg.classifier import load_classifier, save_classifier, train_classifier
from zsseg.config import Params
from zsseg.feature_cache import TrainingCaches
from zsseg.generator import FeatureGenerator, generate_features, load_generator, save_generator, train_generator
from zsseg.labels import ignored_classes
from zsseg.pseudo_features import (GUARDS, PSEUDO_FEATURES_FILE, NothingMinedError, PseudoFeatures,
                                   extract_pseudo_features, load_pool_predictions, pool_rows, save_pool_predictions)
from zsseg.runtime import SeedPurpose, derive_seed
from zsseg.sampling import SeenSamples


@dataclass
class RoundResult:
    generator: FeatureGenerator
    classifier: nn.Linear
    log: dict
    pseudo_features: PseudoFeatures | None = None
    pseudo_attributes: dict = field(default_factory=dict)
    pool_predictions: torch.Tensor | None = None   # recursion.guard: agreement, for the next round


def save_round(directory: Path, result: RoundResult, caches: TrainingCaches) -> None:
    """A round's generator, classifier, training log and (from round 1 on) pseudo-features."""
    save_generator(directory, result.generator)
    save_classifier(directory, result.classifier, result.log, caches.class_names, caches.unseen)
    if result.pseudo_features is not None:
        result.pseudo_features.save(directory / PSEUDO_FEATURES_FILE, result.pseudo_attributes,
                                    str(caches.pool.attrs["precision"]))
    if result.pool_predictions is not None:
        save_pool_predictions(directory, result.pool_predictions)


def _fit_classifier(params: Params, generator: FeatureGenerator, embeddings: torch.Tensor, samples: SeenSamples,
                    caches: TrainingCaches, round_index: int, device: torch.device, stage: str,
                    pseudo_labelled: dict[int, torch.Tensor] | None = None) -> tuple[nn.Linear, list[dict]]:
    """The classifier on real seen and generated unseen features, plus ``pseudo_labelled`` features of
    unseen classes taken as real ones (ZS5Net's way, and the recursion's ablation)."""
    generated = generate_features(generator, embeddings, caches.unseen, params.classifier.generated_per_class,
                                  derive_seed(params.seed, SeedPurpose.GENERATED_FEATURES, round_index), device, stage)
    for u, features in (pseudo_labelled or {}).items():
        generated[u] = torch.cat([generated[u], features])
    return train_classifier({**samples.classifier, **generated}, len(caches.class_names), params.classifier,
                            derive_seed(params.seed, SeedPurpose.CLASSIFIER, round_index), device, stage, caches.unseen,
                            masked=ignored_classes(params.dataset.background))


def train_round_zero(params: Params, caches: TrainingCaches, samples: SeenSamples, embeddings: torch.Tensor,
                     device: torch.device) -> RoundResult:
    """ZS3Net: GMMN on real seen features, then the classifier on real seen + generated unseen."""
    stage = "round_0"
    torch.manual_seed(derive_seed(params.seed, SeedPurpose.GENERATOR, 0))
    generator = FeatureGenerator(embeddings.shape[1], params.generator.noise_dim, params.generator.hidden_dim,
                                 caches.feature_dim, params.generator.dropout, params.generator.noise,
                                 params.generator.init)
    generator_log = train_generator(generator, embeddings, samples.generator, params.generator, params.generator.steps,
                                    derive_seed(params.seed, SeedPurpose.GENERATOR, 0), device, stage)
    classifier, classifier_log = _fit_classifier(params, generator, embeddings, samples, caches, 0, device, stage)
    return RoundResult(generator.cpu(), classifier, {"generator": generator_log, "classifier": classifier_log})


def mining_line(name: str, count: dict, min_count: int) -> str:
    """The log line of one unseen class's mining: what it kept, or why it was skipped, by the count the
    decision used (the confident pixels left after the caps), beside the confident pixels before them, its
    threshold and the confident pixels the drift guard refused."""
    threshold = "no pool pixel has it as top class" if count["threshold"] is None else f"{count['threshold']:.4f}"
    refused = count["disagreeing_pixels"]
    confident = (f"{count['confident_pixels']} confident pixels, threshold {threshold}"
                 + (f", {refused} more refused by the guard" if refused else ""))
    if count["skipped"]:
        return (f"{name}: {count['after_caps']} pseudo-features after the caps (of {confident}) "
                f"< min_count {min_count}; skipped")
    return f"{name}: {count['kept']} pseudo-features (of {confident})"


def train_recursive_round(params: Params, round_index: int, previous: str | Path, caches: TrainingCaches,
                          samples: SeenSamples, embeddings: torch.Tensor, device: torch.device,
                          log: Callable[[str], None]) -> RoundResult:
    """Recursive ZS-MMD round ``round_index`` starting from the round saved in ``previous``, on the run's
    seen-class samples (the samples stage's, the same in every round)."""
    stage = f"round_{round_index}"
    recursion = params.recursion
    previous_predictions = (load_pool_predictions(Path(previous), pool_rows(caches, recursion.mining_pool))
                            if GUARDS[recursion.guard] else None)
    mining = extract_pseudo_features(caches, load_classifier(previous), caches.unseen, recursion,
                                     params.evaluate.batch_size, device,
                                     derive_seed(params.seed, SeedPurpose.MINING, round_index), stage,
                                     previous_predictions)
    pseudo, counts = mining.pseudo_features, mining.stats
    for name, count in counts.items():
        log(mining_line(name, count, recursion.min_count))
    mined = sum(not count["skipped"] for count in counts.values())
    if mined == 0 and not recursion.allow_empty_rounds:
        raise NothingMinedError(f"{stage}: no unseen class has min_count = {recursion.min_count} pseudo-features "
                                f"above its threshold in the mining pool: the round would be seen-only "
                                f"training, not ZS-MMD. Lower recursion.threshold (or class_threshold_floor) or "
                                f"recursion.min_count, or set recursion.allow_empty_rounds: true")
    generator = load_generator(previous, embeddings)
    by_class = pseudo.by_class()
    generator_log = train_generator(generator, embeddings, samples.generator, params.generator,
                                    recursion.generator_steps,
                                    derive_seed(params.seed, SeedPurpose.GENERATOR, round_index), device, stage,
                                    pseudo=by_class, zs_mmd_lambda=recursion.zs_mmd_lambda)
    pseudo_labelled = ({u: features for u, (features, _) in by_class.items()}
                       if recursion.pseudo_labels_in_classifier else None)
    classifier, classifier_log = _fit_classifier(params, generator, embeddings, samples, caches, round_index, device,
                                                 stage, pseudo_labelled)
    attributes = {"round": round_index, "class_names": json.dumps(caches.class_names),
                  **{key: json.dumps(getattr(recursion, key)) for key in (
                      "threshold", "thresholds", "class_top_percent", "class_threshold_floor", "guard",
                      "per_class_cap", "min_count", "mining_pool", "weighting", "selection", "per_image_cap")}}
    return RoundResult(generator.cpu(), classifier,
                       {"mined_classes": mined, "pseudo_features": counts, "generator": generator_log,
                        "classifier": classifier_log}, pseudo, attributes, mining.pool_predictions)
