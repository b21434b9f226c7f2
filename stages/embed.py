"""Stage `embed`: class-name embeddings of the dataset's classes."""

import argparse

import numpy as np

from zsseg.atomic import atomic_path
from zsseg.config import load_params
from zsseg.datasets import FolderDataset
from zsseg.embeddings import class_embeddings
from zsseg.runtime import configure_torch, run_stage, stage_logger


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--dataset", required=True, help="directory written by the prepare stage")
    parser.add_argument("--output", required=True, help=".npz with class_names, vectors and source")
    args = parser.parse_args(argv)
    log = stage_logger("embed")

    def body() -> None:
        params = load_params(args.params)
        configure_torch(params.threads, params.seed)
        names = FolderDataset(args.dataset).class_names
        vectors = class_embeddings(names, params.embed.source, params.embed.path)
        log.info("%d classes embedded with %s: %d dimensions", len(names), params.embed.source, vectors.shape[1])
        with atomic_path(args.output) as temporary:
            with temporary.open("wb") as handle:
                np.savez(handle, class_names=np.asarray(names), vectors=vectors,
                         source=np.asarray(params.embed.source))

    run_stage("embed", body)


if __name__ == "__main__":
    main()
