"""Stage `backbone`: train the DeepLabv3+ network on seen classes only, or load a ZS3Net checkpoint."""

import argparse
import json

from zsseg.atomic import atomic_path
from zsseg.config import load_params
from zsseg.datasets import FolderDataset
from zsseg.network import SegmentationNetwork, load_zs3net_checkpoint, save_network
from zsseg.rounds import derive_seed
from zsseg.runtime import configure_torch, resolve_device, run_stage, stage_logger
from zsseg.segmentation import seen_training_ids, train_segmentation_network

NETWORK_FILE = "network.pt"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--unseen", type=int, help="K, replacing dataset.unseen (a cell of the K grid)")
    parser.add_argument("--dataset", required=True, help="directory written by the prepare stage")
    parser.add_argument("--output", required=True, help="directory for network.pt and training_log.json")
    args = parser.parse_args(argv)
    log = stage_logger("backbone")

    def body() -> None:
        params = load_params(args.params, args.unseen)
        backbone = params.backbone
        device = resolve_device(params.device)
        configure_torch(params.threads, derive_seed(params.seed, 0))
        dataset = FolderDataset(args.dataset)
        class_split = dataset.class_split(params.dataset.unseen)
        kept = seen_training_ids(dataset, class_split, log.info)
        weights = None if backbone.weights == "none" or backbone.checkpoint else backbone.weights
        network = SegmentationNetwork(backbone.arch, len(class_split.seen), backbone.feature_dim,
                                      backbone.aspp_rates, weights)
        if backbone.checkpoint:
            load_zs3net_checkpoint(network, backbone.checkpoint, list(class_split.seen), class_split.num_classes)
            log.info("loaded ZS3Net checkpoint %s instead of training", backbone.checkpoint)
            history = [{"checkpoint": backbone.checkpoint}]
        else:
            history = train_segmentation_network(network, dataset, kept, class_split, backbone,
                                                 derive_seed(params.seed, 0), device)
        with atomic_path(args.output, directory=True) as directory:
            save_network(network.cpu(), directory / NETWORK_FILE,
                         {"class_names": list(class_split.names), "seen": list(class_split.seen),
                          "unseen": list(class_split.unseen), "training_ids": kept})
            (directory / "training_log.json").write_text(json.dumps(history, indent=2) + "\n")

    run_stage("backbone", body)


if __name__ == "__main__":
    main()
