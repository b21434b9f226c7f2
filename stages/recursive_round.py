"""Stage `round@r` (r >= 1): pseudo-features from round r-1, generator retrained with ZS-MMD, new classifier."""

import argparse
from pathlib import Path

from zsseg.atomic import atomic_path
from zsseg.config import ParamsError, load_params
from zsseg.feature_cache import FeatureCache
from zsseg.rounds import load_embeddings, save_round, train_recursive_round
from zsseg.runtime import configure_torch, resolve_device, run_stage, stage_logger
from stages.features import CACHE_SECTIONS


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--unseen", type=int, help="K, replacing dataset.unseen (a cell of the K grid)")
    parser.add_argument("--round", type=int, required=True, help="round index r >= 1")
    parser.add_argument("--previous", required=True, help="directory of round r-1")
    parser.add_argument("--features", required=True, help="directory written by the features stage")
    parser.add_argument("--embeddings", required=True, help=".npz written by the embed stage")
    parser.add_argument("--output", required=True, help="round directory to write")
    args = parser.parse_args(argv)
    log = stage_logger(f"round_{args.round}")

    def body() -> None:
        params = load_params(args.params, args.unseen)
        if args.round not in params.recursion.rounds:
            raise ParamsError(f"params.yaml: recursion.rounds = {params.recursion.rounds} has no round {args.round}")
        device = resolve_device(params.device)
        configure_torch(params.threads, params.seed)
        cache = FeatureCache(Path(args.features) / "train.h5", params.section_hash(*CACHE_SECTIONS))
        embeddings = load_embeddings(args.embeddings, cache.class_names)
        result = train_recursive_round(params, args.round, args.previous, cache, embeddings, device, log.info)
        with atomic_path(args.output, directory=True) as directory:
            save_round(directory, result, cache.class_names, cache.unseen)

    run_stage(f"round_{args.round}", body)


if __name__ == "__main__":
    main()
