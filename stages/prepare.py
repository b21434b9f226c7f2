"""Stage `prepare`: the configured dataset as a checked folder-format view (converted once for VOC/Context)."""

import argparse

from zsseg.atomic import atomic_path
from zsseg.config import load_params
from zsseg.datasets import DatasetError, FolderDataset
from zsseg.pascal import prepare_dataset
from zsseg.runtime import run_stage, stage_logger


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--output", required=True, help="folder-format dataset directory to write")
    args = parser.parse_args(argv)
    log = stage_logger("prepare")

    def body() -> None:
        params = load_params(args.params)
        with atomic_path(args.output, directory=True) as directory:
            prepare_dataset(params.dataset.name, params.dataset.root, directory, params.threads, log.info)
            # Resolve dataset.unseen now, so a bad K or name fails before any training.
            try:
                class_split = FolderDataset(directory).class_split(params.dataset.unseen)
            except DatasetError as error:
                # Name the file as it will be called, not the temporary directory being written.
                raise DatasetError(str(error).replace(str(directory), args.output)) from error
            log.info("unseen classes: %s", ", ".join(class_split.names[i] for i in class_split.unseen))

    run_stage("prepare", body)


if __name__ == "__main__":
    main()
