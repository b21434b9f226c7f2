"""Stage `predict` (also `zsseg predict`): segment any images with any class names from a trained run.

Writes, per image, STEM_labels.png (class indices), STEM_overlay.png (colours and a legend) and
STEM.json (per-class pixel fractions) into --out, and prints the fractions. With `evaluate.scales` or
`evaluate.flip` set, it classifies with the evaluate stage's test-time augmentation.
"""

import argparse
from pathlib import Path

from tqdm import tqdm

from zsseg.datasets.folder import read_rgb_image
from zsseg.dense_prediction import TestTimeAugmentation, augmented
from zsseg.network import load_network
from zsseg.predict import (build_classifier, find_images, find_run, fraction_table, parse_class_names, segment,
                           write_prediction)
from zsseg.stage import stage_run

PARAMS = ("seed", "threads", "device", "backbone.mixed_precision", "generator.real_features_per_class", "classifier",
          "evaluate.batch_size", "evaluate.scales", "evaluate.flip", "embed.path")


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zsseg predict", description=__doc__)
    parser.add_argument("images", nargs="+", help="image files or directories of images")
    classes = parser.add_mutually_exclusive_group(required=True)
    classes.add_argument("--classes", help="class names separated by commas, e.g. 'background, cat, dog'")
    classes.add_argument("--classes-file", help="a file with one class name per line")
    parser.add_argument("--run", help="round number or round directory (default: the last round under --data)")
    parser.add_argument("--data", default="data", help="the run's data directory (default: data)")
    parser.add_argument("--refit", action="store_true",
                        help="fit every classifier row, even for the run's own classes")
    parser.add_argument("--out", required=True, help="directory for the label PNGs, overlays and JSON files")
    parser.add_argument("--params", default="params.yaml")
    return parser


def main(argv: list[str] | None = None) -> None:
    with stage_run("predict", __doc__, PARAMS, {}, argv, parser=parser()) as stage:
        args, params = stage.args, stage.params
        if args.classes_file:
            path = Path(args.classes_file)
            if not path.is_file():
                raise FileNotFoundError(f"--classes-file {path}: file not found")
            names = parse_class_names(path.read_text(), str(path))
        else:
            names = parse_class_names(args.classes)
        images = find_images(args.images)
        run = find_run(args.run, args.data)
        stage.log.info("round %s, %d classes, %d image(s)", run.round_directory, len(names), len(images))
        classifier = build_classifier(run, names, params, stage.device, args.refit, stage.log.info)
        network, _ = load_network(run.network_path, stage.device)
        augmentation = None
        if augmented(params.evaluate.scales, params.evaluate.flip):
            augmentation = TestTimeAugmentation.of_network(network, params.evaluate.scales, params.evaluate.flip,
                                                           stage.device, params.backbone.mixed_precision)
            stage.log.info("test-time augmentation: scales %s%s", params.evaluate.scales,
                           ", each also flipped" if params.evaluate.flip else "")
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        results = {}
        for path in tqdm(images, desc="predict", unit="img"):
            image = read_rgb_image(path)
            labels = segment(network, classifier, image, stage.device, params.backbone.mixed_precision,
                             augmentation)
            results[str(path)] = write_prediction(out, path.stem, path, image, labels, names, run)
        print(fraction_table(results))


if __name__ == "__main__":
    main()
