"""NaN or Inf stops a stage with a message naming the stage, round, step and class; a class with too
few pseudo-features is skipped with its count, and all-zero confidence weights do not divide by zero."""

import numpy as np
import pytest
import torch
from torch import nn

from conftest import write_caches_by_hand
from test_feature_cache import hand_images
from zsseg.classifier import train_classifier
from zsseg.config import ClassifierParams, GeneratorParams, RecursionParams
from zsseg.errors import NumericalError
from zsseg.generator import FeatureGenerator, generate_features, train_generator
from zsseg.pseudo_features import extract_pseudo_features

CPU = torch.device("cpu")
GENERATOR = GeneratorParams(noise_dim=3, hidden_dim=8, dropout=0.0, bandwidths=[2.0, 5.0], steps=3,
                            learning_rate=0.01, samples_per_class=4, real_features_per_class=20, noise="normal",
                            init="pytorch")


def recursion(threshold, per_class_cap, min_count):
    return RecursionParams(rounds={1: 0}, threshold=threshold, per_class_cap=per_class_cap, min_count=min_count,
                           zs_mmd_lambda=1.0, generator_steps=3, mining_pool="unlabelled_images",
                           weighting="confidence", selection="most_confident", per_image_cap=None,
                           allow_empty_rounds=True, pseudo_labels_in_classifier=False, thresholds="global",
                           class_top_percent=20, class_threshold_floor=0.5, guard="none")


def small_generator():
    torch.manual_seed(0)
    return FeatureGenerator(5, 3, 8, 4, 0.0)


def test_nan_in_a_seen_class_mmd_names_stage_round_step_and_class():
    real = {0: torch.randn(20, 4), 1: torch.full((20, 4), float("nan"))}
    with pytest.raises(NumericalError, match=r"round_2: step 0: MMD of class 1 \(seen\) is nan"):
        train_generator(small_generator(), torch.randn(3, 5), real, GENERATOR, 3, 0, CPU, "round_2")


def test_inf_in_pseudo_features_names_the_unseen_class():
    real = {0: torch.randn(20, 4), 1: torch.randn(20, 4)}
    pseudo = {2: (torch.full((10, 4), float("inf")), torch.ones(10))}
    with pytest.raises(NumericalError, match=r"round_1: step 0: MMD of class 2 \(pseudo\) is"):
        train_generator(small_generator(), torch.randn(3, 5), real, GENERATOR, 3, 0, CPU, "round_1", pseudo, 1.0)


def test_nan_generated_features_name_the_class():
    generator = small_generator()
    with torch.no_grad():
        generator.layers[-1].bias[1] = float("nan")
    with pytest.raises(NumericalError, match="round_3: generated features of class 2 contain NaN or Inf"):
        generate_features(generator, torch.randn(3, 5), [2], 10, 0, CPU, "round_3")


def test_inf_classifier_loss_names_the_epoch():
    features = {0: torch.randn(10, 4), 1: torch.full((10, 4), float("inf"))}
    params = ClassifierParams(epochs=2, batch_size=8, learning_rate=0.01, generated_per_class=10, sampling="balanced",
                              unseen_weight=1.0)
    with pytest.raises(NumericalError, match="self_training: classifier epoch 0: loss is nan"):
        train_classifier(features, 2, params, 0, CPU, "self_training")


def nan_classifier():
    classifier = nn.Linear(4, 3)
    with torch.no_grad():
        classifier.weight.fill_(float("nan"))
    return classifier


def hand_caches(directory):
    return write_caches_by_hand(directory, hand_images(), ["background", "a", "b"], [2])


def test_nan_logits_stop_pseudo_feature_mining(tmp_path):
    with pytest.raises(NumericalError, match="round_2: pseudo-features: the previous round's classifier gives NaN"):
        extract_pseudo_features(hand_caches(tmp_path), nan_classifier(), [2], recursion(0.5, 100, 1), 2, CPU, 0,
                                "round_2")


def test_class_below_min_count_is_skipped_with_its_count(tmp_path):
    classifier = nn.Linear(4, 3)
    with torch.no_grad():
        classifier.weight.zero_()
        classifier.bias.copy_(torch.tensor([0.0, 0.0, 5.0]))  # every unlabelled pixel -> class 2, confidently
    caches = hand_caches(tmp_path)
    mining = extract_pseudo_features(caches, classifier, [2], recursion(0.9, 10_000, 10_000), 2, CPU, 0, "round_1")
    pseudo, stats = mining.pseudo_features, mining.stats
    unlabelled = sum(int(np.prod(image[1].shape[:2])) for image in hand_images() if image[2] is None)
    assert stats == {"b": {"threshold": 0.9, "confident_pixels": unlabelled, "disagreeing_pixels": 0,
                           "after_caps": min(unlabelled, 10_000), "kept": 0, "skipped": True}}
    assert pseudo.features.shape == (0, 4) and not pseudo.by_class()
    # Nothing to feed back: the generator trains on the seen term alone.
    log = train_generator(small_generator(), torch.randn(3, 5), {0: torch.randn(20, 4)}, GENERATOR, 2, 0, CPU,
                          "round_1", pseudo.by_class(), 1.0)
    assert all(entry["pseudo_mmd"] == 0.0 for entry in log)


def test_all_zero_confidence_weights_give_a_zero_finite_term():
    real = {0: torch.randn(20, 4)}
    pseudo = {2: (torch.randn(10, 4), torch.zeros(10))}
    generator = small_generator()
    log = train_generator(generator, torch.randn(3, 5), real, GENERATOR, 3, 0, CPU, "round_1", pseudo, 1.0)
    assert all(entry["pseudo_mmd"] == pytest.approx(1e-6) for entry in log)
    assert all(torch.isfinite(parameter).all() for parameter in generator.parameters())
