"""Benchmark: feature-extraction throughput (images/s) of DeepLabv3+ ResNet-101 at 512x512.

Usage: python bench/feature_throughput.py [--images 8] [--batch-size 4] [--devices cpu cuda]
Runs the network exactly as the features stage does (eval mode, channels_last, bf16 autocast on
CUDA) on random images and prints images/s per device. Devices that are not present are skipped.
"""

import argparse
import time

import torch

from zsseg.network import SegmentationNetwork
from zsseg.runtime import mixed_precision


def throughput(device: torch.device, images: int, batch_size: int, size: int) -> float:
    network = SegmentationNetwork("deeplabv3plus_resnet101", 21, 256, [6, 12, 18], weights=None).to(device).eval()
    batch = (torch.rand(batch_size, 3, size, size) * 255).to(device)
    with torch.no_grad(), mixed_precision(device, True):
        network.features(batch)                      # warm-up: cuDNN autotuning, lazy allocations
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        done = 0
        while done < images:
            network.features(batch).float().cpu()    # include the copy back, as the cache writer does
            done += batch_size
        if device.type == "cuda":
            torch.cuda.synchronize()
    return done / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--devices", nargs="+", default=["cpu", "cuda"])
    args = parser.parse_args()
    print(f"DeepLabv3+ ResNet-101 features at {args.size}x{args.size}, batch {args.batch_size}, "
          f"torch threads {torch.get_num_threads()}")
    for name in args.devices:
        if name == "cuda" and not torch.cuda.is_available():
            print("cuda: not present, skipped")
            continue
        device = torch.device(name)
        images = args.images * (50 if name == "cuda" else 1)
        label = torch.cuda.get_device_name() if name == "cuda" else "cpu"
        print(f"{name} ({label}): {throughput(device, images, args.batch_size, args.size):.2f} images/s")


if __name__ == "__main__":
    main()
