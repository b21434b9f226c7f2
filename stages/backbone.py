"""Stage `backbone`: train the DeepLabv3+ head (and optionally the encoder) on seen classes only."""

import argparse
import json

from zsseg.atomic import atomic_path
from zsseg.config import load_params
from zsseg.datasets import open_dataset
from zsseg.network import SegmentationNetwork, save_network
from zsseg.rounds import derive_seed
from zsseg.runtime import configure_torch, resolve_device, run_stage, stage_logger
from zsseg.segmentation import seen_training_set, train_segmentation_network

NETWORK_FILE = "network.pt"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--output", required=True, help="directory for network.pt and training_log.json")
    args = parser.parse_args(argv)
    log = stage_logger("backbone")

    def body() -> None:
        params = load_params(args.params)
        device = resolve_device(params.device)
        configure_torch(params.threads, derive_seed(params.seed, 0))
        dataset = open_dataset(params.dataset.name, params.dataset.root)
        class_split = dataset.class_split(params.dataset.unseen)
        images, labels, kept = seen_training_set(dataset, class_split, log.info)
        network = SegmentationNetwork(len(class_split.seen), params.backbone.feature_dim, params.backbone.aspp_rates)
        history = train_segmentation_network(network, images, labels, params.backbone, derive_seed(params.seed, 0),
                                             device)
        with atomic_path(args.output, directory=True) as directory:
            save_network(network.cpu(), directory / NETWORK_FILE,
                         {"class_names": list(class_split.names), "seen": list(class_split.seen),
                          "unseen": list(class_split.unseen), "training_ids": kept})
            (directory / "training_log.json").write_text(json.dumps(history, indent=2) + "\n")

    run_stage("backbone", body)


if __name__ == "__main__":
    main()
