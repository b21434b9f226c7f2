"""Stage `encode`: the frozen ImageNet encoder's maps of every image, once for every K and seed
(backbone.share_encoder_maps); with sharing off, a file that says so."""

from pathlib import Path

from zsseg.atomic import atomic_path
from zsseg.datasets.folder import FolderDataset
from zsseg.encoder_maps import write_encoder_maps
from zsseg.network import check_backbone_params
from zsseg.stage import stage_run

PARAMS = ("seed", "threads", "device", "backbone.arch", "backbone.weights", "backbone.share_encoder_maps",
          "backbone.freeze_encoder", "backbone.crop_size", "backbone.checkpoint", "backbone.feature_dim",
          "backbone.aspp_rates", "features.batch_size")
ARGUMENTS = {"dataset": "directory written by the prepare stage",
             "output": "HDF5 file of every split's encoder maps"}


def main(argv: list[str] | None = None) -> None:
    with stage_run("encode", __doc__, PARAMS, ARGUMENTS, argv) as stage:
        backbone = stage.params.backbone
        check_backbone_params(backbone)
        with atomic_path(Path(stage.args.output)) as temporary:
            write_encoder_maps(backbone, FolderDataset(stage.args.dataset), temporary,
                               stage.params.features.batch_size, stage.device)


if __name__ == "__main__":
    main()
