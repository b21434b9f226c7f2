"""Stage `round_0`: plain ZS3Net (GMMN generator on seen features, classifier on real seen + generated unseen)."""

import argparse
from pathlib import Path

from zsseg.atomic import atomic_path
from zsseg.config import load_params
from zsseg.feature_cache import FeatureCache
from zsseg.rounds import load_embeddings, save_round, train_round_zero
from zsseg.runtime import configure_torch, resolve_device, run_stage, stage_logger
from stages.features import CACHE_SECTIONS


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--unseen", type=int, help="K, replacing dataset.unseen (a cell of the K grid)")
    parser.add_argument("--features", required=True, help="directory written by the features stage")
    parser.add_argument("--embeddings", required=True, help=".npz written by the embed stage")
    parser.add_argument("--output", required=True, help="round directory to write")
    args = parser.parse_args(argv)
    log = stage_logger("round_0")

    def body() -> None:
        params = load_params(args.params, args.unseen)
        device = resolve_device(params.device)
        configure_torch(params.threads, params.seed)
        cache = FeatureCache(Path(args.features) / "train.h5", params.section_hash(*CACHE_SECTIONS))
        embeddings = load_embeddings(args.embeddings, cache.class_names)
        result = train_round_zero(params, cache, embeddings, device, log.info)
        with atomic_path(args.output, directory=True) as directory:
            save_round(directory, result, cache.class_names, cache.unseen)

    run_stage("round_0", body)


if __name__ == "__main__":
    main()
