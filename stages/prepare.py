"""Stage `prepare`: the configured dataset as a checked folder-format view (converted once for VOC/Context/COCO)."""

from zsseg.atomic import atomic_path
from zsseg.datasets.folder import DatasetError, FolderDataset, hold_out_dev
from zsseg.datasets.registry import check_background, prepare_dataset
from zsseg.stage import stage_run

PARAMS = ("threads", "dataset")
ARGUMENTS = {"output": "folder-format dataset directory to write"}


def main(argv: list[str] | None = None) -> None:
    with stage_run("prepare", __doc__, PARAMS, ARGUMENTS, argv, uses_torch=False) as stage:
        dataset, output = stage.params.dataset, stage.args.output
        check_background(dataset.name, dataset.background)
        with atomic_path(output, directory=True) as directory:
            prepare_dataset(dataset.name, dataset.root, directory, stage.params.threads, stage.log.info)
            try:
                # Resolve dataset.unseen now, so a bad K or name fails before any training.
                class_split = FolderDataset(directory, dataset.background).class_split(dataset.unseen)
                hold_out_dev(directory, dataset.dev_fraction, dataset.dev_seed, stage.log.info)
            except DatasetError as error:
                # Name the file as it will be called, not the temporary directory being written.
                raise DatasetError(str(error).replace(str(directory), output)) from error
            stage.log.info("unseen classes: %s", ", ".join(class_split.names[i] for i in class_split.unseen))


if __name__ == "__main__":
    main()
