"""Benchmark: `zsseg predict` time per 512x512 image (default: 2 CPU threads, as params.yaml sets).

Usage: python bench/predict.py [--data data] [--images 5] [--extra "purple star"]
Needs a trained run (`dvc repro` first). Renders demo scenes scaled to 512x512, then times, for the
run's own class list and for that list plus --extra names: the classifier build (a row fit for the
new names), and per image the backbone + classifier (`segment`) and writing the three outputs.
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from zsseg.config import load_params
from zsseg.datasets.demo import _load_backgrounds, render_image
from zsseg.network import load_network
from zsseg.predict import build_classifier, find_run, segment, write_prediction
from zsseg.runtime import configure_torch, resolve_device


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="data")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--images", type=int, default=5)
    parser.add_argument("--extra", default="purple star", help="names absent from training, comma-separated")
    args = parser.parse_args()
    params = load_params(args.params)
    device = resolve_device(params.device)
    configure_torch(params.threads, params.seed)
    run = find_run(None, args.data)
    rng = np.random.default_rng(0)
    backgrounds = _load_backgrounds()
    # Demo scenes (rendered at the demo's 128 px: the packaged backgrounds are too small for 512) scaled to 512.
    images = [np.array(Image.fromarray(render_image(rng, backgrounds, 128, 2, 4)[0]).resize((512, 512),
                                                                                           Image.BILINEAR))
              for _ in range(args.images)]
    network, _ = load_network(run.network_path, device)
    print(f"run {run.round_directory}, device {device}, {torch.get_num_threads()} threads, "
          f"{args.images} images of 512x512")
    extra = [name.strip() for name in args.extra.split(",") if name.strip()]
    for label, names in (("own class list", run.class_names), (f"own list + {extra}", run.class_names + extra)):
        started = time.perf_counter()
        classifier = build_classifier(run, names, params, device, False, lambda message: None)
        build = time.perf_counter() - started
        segment(network, classifier, images[0], device, params.backbone.mixed_precision)  # warm-up
        segment_times, total_times = [], []
        with tempfile.TemporaryDirectory() as out:
            for index, image in enumerate(images):
                started = time.perf_counter()
                labels = segment(network, classifier, image, device, params.backbone.mixed_precision)
                segmented = time.perf_counter()
                write_prediction(Path(out), f"image{index}", Path(f"image{index}.png"), image, labels, names, run)
                segment_times.append(segmented - started)
                total_times.append(time.perf_counter() - started)
        print(f"{label}: classifier {build:.2f} s; per image: segment {np.mean(segment_times):.3f} s, "
              f"with outputs {np.mean(total_times):.3f} s (median {np.median(total_times):.3f} s)")


if __name__ == "__main__":
    main()
