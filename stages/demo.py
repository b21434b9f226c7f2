"""Stage `demo`: generate the embedded offline demo dataset in the folder format."""

from zsseg.datasets.demo import write_demo_dataset
from zsseg.stage import stage_run

PARAMS = ("threads", "demo")
ARGUMENTS = {"output": "dataset directory to write"}


def main(argv: list[str] | None = None) -> None:
    with stage_run("demo", __doc__, PARAMS, ARGUMENTS, argv, uses_torch=False) as stage:
        demo = stage.params.demo
        write_demo_dataset(stage.args.output, demo.train_images, demo.val_images, demo.image_size,
                           demo.min_objects, demo.max_objects, demo.seed, workers=stage.params.threads,
                           dev_images=demo.dev_images)


if __name__ == "__main__":
    main()
