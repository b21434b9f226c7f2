"""Stage `demo`: generate the embedded offline demo dataset in the folder format."""

import argparse

from zsseg.config import load_params
from zsseg.demo import write_demo_dataset
from zsseg.runtime import run_stage


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--output", required=True, help="dataset directory to write")
    args = parser.parse_args(argv)

    def body() -> None:
        params = load_params(args.params)
        demo = params.demo
        write_demo_dataset(args.output, demo.train_images, demo.val_images, demo.image_size,
                           demo.min_objects, demo.max_objects, demo.seed, workers=params.threads)

    run_stage("demo", body)


if __name__ == "__main__":
    main()
