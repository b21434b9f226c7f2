"""Stage `features`: cache the frozen network's per-pixel features of the training images in HDF5: a share of
the labelled images' pixels with their labels, and a share of the unlabelled images' (the mining pool)."""

from pathlib import Path

from zsseg.atomic import atomic_path
from zsseg.datasets.folder import FolderDataset
from zsseg.encoder_maps import shared_maps
from zsseg.feature_cache import cache_params_hash
from zsseg.feature_extraction import write_training_caches
from zsseg.network import NETWORK_FILE, load_network
from zsseg.runtime import SeedPurpose, derive_seed
from zsseg.stage import stage_run

PARAMS = ("seed", "threads", "device", "dataset.unseen", "dataset.background", "backbone", "features")
ARGUMENTS = {"dataset": "directory written by the prepare stage",
             "backbone": "directory written by the backbone stage",
             "encoder": "encoder maps written by the encode stage",
             "output": "directory for labelled.h5 and pool.h5"}


def main(argv: list[str] | None = None) -> None:
    with stage_run("features", __doc__, PARAMS, ARGUMENTS, argv) as stage:
        params = stage.params
        dataset = FolderDataset(stage.args.dataset, params.dataset.background)
        class_split = dataset.class_split(params.dataset.unseen)
        network, _ = load_network(Path(stage.args.backbone) / NETWORK_FILE, stage.device)
        attributes = {"params_hash": cache_params_hash(params), "backbone": params.backbone.arch}
        maps = shared_maps(stage.args.encoder, params.backbone)
        with atomic_path(stage.args.output, directory=True) as directory:
            write_training_caches(network, dataset, class_split, directory, params.features,
                                  derive_seed(params.seed, SeedPurpose.CACHED_PIXELS), stage.device, attributes,
                                  params.backbone.workers, params.backbone.mixed_precision, maps)


if __name__ == "__main__":
    main()
