"""Stage `backbone`: train the DeepLabv3+ network on seen classes only, or load a ZS3Net checkpoint."""

import json

from zsseg.atomic import atomic_path
from zsseg.backbone_training import check_training_params, seen_training_ids, train_segmentation_network
from zsseg.datasets.folder import FolderDataset
from zsseg.encoder_maps import shared_maps
from zsseg.network import (NETWORK_FILE, SegmentationNetwork, imagenet_weights_warning, load_zs3net_checkpoint,
                           save_network, weights_of)
from zsseg.resume_state import TrainingCheckpoint, resume_params_hash, resume_state_path
from zsseg.runtime import SeedPurpose, derive_seed, seed_everything
from zsseg.stage import stage_run

PARAMS = ("seed", "threads", "device", "dataset.unseen", "dataset.background", "backbone")
ARGUMENTS = {"dataset": "directory written by the prepare stage",
             "encoder": "encoder maps written by the encode stage",
             "output": "directory for network.pt and training_log.json (the training's resume state lies beside "
                       "it until then: OUTPUT.resume.pt)"}


def main(argv: list[str] | None = None) -> None:
    with stage_run("backbone", __doc__, PARAMS, ARGUMENTS, argv) as stage:
        params, backbone = stage.params, stage.params.backbone
        check_training_params(backbone)
        seed = derive_seed(params.seed, SeedPurpose.BACKBONE)
        seed_everything(seed)
        dataset = FolderDataset(stage.args.dataset, params.dataset.background)
        class_split = dataset.class_split(params.dataset.unseen)
        if weights_of(backbone) is not None and dataset.source.get("imagenet_overlap"):
            warning = imagenet_weights_warning(backbone.weights)
            if warning:
                stage.log.warning("warning: %s", warning)
        kept = seen_training_ids(dataset, class_split, stage.log.info)
        network = SegmentationNetwork(backbone.arch, len(class_split.seen), backbone.feature_dim,
                                      backbone.aspp_rates, weights_of(backbone))
        if backbone.checkpoint:
            load_zs3net_checkpoint(network, backbone.checkpoint, list(class_split.seen), class_split.num_classes)
            stage.log.info("loaded ZS3Net checkpoint %s instead of training", backbone.checkpoint)
            history, resume = [{"checkpoint": backbone.checkpoint}], None
        else:
            resume = TrainingCheckpoint(resume_state_path(stage.args.output), resume_params_hash(params),
                                        backbone.checkpoint_minutes * 60, stage.log.info)
            history = train_segmentation_network(network, dataset, kept, class_split, backbone, seed, stage.device,
                                                 shared_maps(stage.args.encoder, backbone), resume)
        with atomic_path(stage.args.output, directory=True) as directory:
            save_network(network.cpu(), directory / NETWORK_FILE,
                         {"class_names": list(class_split.names), "seen": list(class_split.seen),
                          "unseen": list(class_split.unseen), "training_ids": kept})
            (directory / "training_log.json").write_text(json.dumps(history, indent=2) + "\n")
        if resume:
            resume.path.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
