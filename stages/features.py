"""Stage `features`: cache the frozen network's per-pixel features and labels in HDF5 (train and val)."""

import argparse
from pathlib import Path

from zsseg.atomic import atomic_path
from zsseg.config import load_params
from zsseg.datasets import FolderDataset
from zsseg.network import load_network
from zsseg.runtime import configure_torch, resolve_device, run_stage
from zsseg.segmentation import write_feature_cache
from stages.backbone import NETWORK_FILE

CACHE_SECTIONS = ("seed", "dataset", "backbone", "features")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--unseen", type=int, help="K, replacing dataset.unseen (a cell of the K grid)")
    parser.add_argument("--dataset", required=True, help="directory written by the prepare stage")
    parser.add_argument("--backbone", required=True, help="directory written by the backbone stage")
    parser.add_argument("--output", required=True, help="directory for train.h5 and val.h5")
    args = parser.parse_args(argv)

    def body() -> None:
        params = load_params(args.params, args.unseen)
        device = resolve_device(params.device)
        configure_torch(params.threads, params.seed)
        dataset = FolderDataset(args.dataset)
        class_split = dataset.class_split(params.dataset.unseen)
        network, _ = load_network(Path(args.backbone) / NETWORK_FILE, device)
        attributes = {"params_hash": params.section_hash(*CACHE_SECTIONS), "backbone": params.backbone.arch}
        with atomic_path(args.output, directory=True) as directory:
            for split in ("train", "val"):
                write_feature_cache(network, dataset, split, class_split, directory / f"{split}.h5",
                                    params.features.label_purity, params.features.batch_size, device, attributes,
                                    params.backbone.workers, params.backbone.mixed_precision)

    run_stage("features", body)


if __name__ == "__main__":
    main()
