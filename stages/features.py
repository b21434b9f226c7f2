"""Stage `features`: cache the frozen network's per-pixel features and labels in HDF5 (train, val, dev)."""

from pathlib import Path

from zsseg.atomic import atomic_path
from zsseg.datasets.folder import SPLITS, FolderDataset
from zsseg.encoder_maps import shared_maps
from zsseg.feature_cache import cache_params_hash
from zsseg.feature_extraction import write_feature_cache
from zsseg.network import NETWORK_FILE, load_network
from zsseg.stage import stage_run

PARAMS = ("seed", "threads", "device", "dataset.unseen", "backbone", "features")
ARGUMENTS = {"dataset": "directory written by the prepare stage",
             "backbone": "directory written by the backbone stage",
             "encoder": "encoder maps written by the encode stage",
             "output": "directory for train.h5, val.h5 and dev.h5"}


def main(argv: list[str] | None = None) -> None:
    with stage_run("features", __doc__, PARAMS, ARGUMENTS, argv) as stage:
        params = stage.params
        dataset = FolderDataset(stage.args.dataset)
        class_split = dataset.class_split(params.dataset.unseen)
        network, _ = load_network(Path(stage.args.backbone) / NETWORK_FILE, stage.device)
        attributes = {"params_hash": cache_params_hash(params), "backbone": params.backbone.arch}
        maps = shared_maps(stage.args.encoder, params.backbone)
        with atomic_path(stage.args.output, directory=True) as directory:
            for split in (split for split in SPLITS if dataset.has_split(split)):
                write_feature_cache(network, dataset, split, class_split, directory / f"{split}.h5",
                                    params.features.label_purity, params.features.batch_size, stage.device,
                                    attributes, params.backbone.workers, params.backbone.mixed_precision, maps)


if __name__ == "__main__":
    main()
