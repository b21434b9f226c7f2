"""Stage `self_training`: ZS5Net, ZS3Net's self-training baseline, as one stage after round 0."""

import argparse
from pathlib import Path

from zsseg.atomic import atomic_path
from zsseg.config import load_params
from zsseg.feature_cache import FeatureCache
from zsseg.rounds import load_embeddings, save_classifier, train_self_training
from zsseg.runtime import configure_torch, resolve_device, run_stage, stage_logger
from stages.features import CACHE_SECTIONS


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--unseen", type=int, help="K, replacing dataset.unseen (a cell of the K grid)")
    parser.add_argument("--previous", required=True, help="directory of round 0 (its classifier and generator)")
    parser.add_argument("--features", required=True, help="directory written by the features stage")
    parser.add_argument("--embeddings", required=True, help=".npz written by the embed stage")
    parser.add_argument("--output", required=True, help="directory for the retrained classifier")
    args = parser.parse_args(argv)
    log = stage_logger("self_training")

    def body() -> None:
        params = load_params(args.params, args.unseen)
        device = resolve_device(params.device)
        configure_torch(params.threads, params.seed)
        cache = FeatureCache(Path(args.features) / "train.h5", params.section_hash(*CACHE_SECTIONS))
        embeddings = load_embeddings(args.embeddings, cache.class_names)
        classifier, training_log = train_self_training(params, args.previous, cache, embeddings, device, log.info)
        with atomic_path(args.output, directory=True) as directory:
            save_classifier(directory, classifier, training_log, cache.class_names, cache.unseen)

    run_stage("self_training", body)


if __name__ == "__main__":
    main()
