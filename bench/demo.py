"""Benchmark: a clean `dvc repro` of the default demo, with per-stage wall times and per-round metrics.

Usage: python bench/demo.py [--keep]   (run from the project root, with the venv's bin on PATH)
It removes data/ and runs every stage (unless --keep is given), and checks the issue's targets:
`dvc repro` <= 240 s, round 0 unseen mIoU >= 45, best hIoU >= 75 and >= round 0 hIoU + 10. It also prints
what the run wrote under data/ (the demo images, the prepared dataset and the shared encoder maps aside:
372 MB before the real-size cache layout, whose target is 40% of that) and the bytes data/ and DVC's cache
take together, a file linked into both counted once.
"""

import argparse
import json
import shutil
from pathlib import Path

from machine_load import other_load_since, snapshot
from stage_times import repro_stage_times

ROOT = Path(__file__).resolve().parents[1]


# Written once for every K and seed, or a view of the images: not part of what a cell writes.
SHARED_OUTPUTS = ("demo", "dataset", "encoder_maps.h5")


def written_bytes(data: Path) -> int:
    return sum(path.stat().st_size for path in data.rglob("*")
               if path.is_file() and path.relative_to(data).parts[0] not in SHARED_OUTPUTS)


def bytes_on_disk(*directories: Path) -> int:
    """Apparent bytes of every file under ``directories``, each inode once (a hard link is not a copy)."""
    seen, total = set(), 0
    for directory in directories:
        for path in directory.rglob("*"):
            if path.is_file() and not path.is_symlink() and (path.stat().st_dev, path.stat().st_ino) not in seen:
                seen.add((path.stat().st_dev, path.stat().st_ino))
                total += path.stat().st_size
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", action="store_true", help="keep existing outputs (time only what is stale)")
    args = parser.parse_args()
    if not args.keep:
        shutil.rmtree(ROOT / "data", ignore_errors=True)
    load = snapshot()
    # --force: execute every stage, as on a fresh clone, instead of restoring DVC's run-cache.
    command = ["dvc", "repro"] if args.keep else ["dvc", "repro", "--force"]
    stages, total = repro_stage_times(ROOT, command)
    print(f"{'stage':<12} {'seconds':>8}")
    for stage, seconds in stages.items():
        print(f"{stage:<12} {seconds:8.1f}")
    print(f"{'dvc repro':<12} {total:8.1f}  (target <= 240)")
    print(other_load_since(load))
    rounds = sorted((ROOT / "data" / "metrics").glob("round_*.json"), key=lambda p: int(p.stem.split("_")[1]))
    metrics = {int(path.stem.split("_")[1]): json.loads(path.read_text()) for path in rounds}
    print(f"\n{'round':<6}" + "".join(f"{key:>12}" for key in ("pixel_acc", "seen_miou", "unseen_miou", "hiou")))
    for round_index, values in metrics.items():
        print(f"{round_index:<6}" + "".join(f"{values[key]:12.2f}" for key in
                                            ("pixel_acc", "seen_miou", "unseen_miou", "hiou")))
    self_training = json.loads((ROOT / "data" / "metrics" / "self_training.json").read_text())
    print("ZS5Net" + "".join(f"{self_training[key]:12.2f}" for key in ("pixel_acc", "seen_miou", "unseen_miou", "hiou")))
    best = max(values["hiou"] for values in metrics.values())
    print(f"\nround 0 unseen mIoU {metrics[0]['unseen_miou']:.1f} (target >= 45); best hIoU {best:.1f} "
          f"(target >= 75); gain over round 0 {best - metrics[0]['hiou']:+.1f} (target >= +10)")
    written = written_bytes(ROOT / "data")
    print(f"written under data/ (demo, dataset and encoder maps aside): {written / 1e6:.1f} MB, "
          f"{written / 372e6:.0%} of the 372 MB before the real-size cache (target <= 40%); data/ and .dvc/cache: "
          f"{bytes_on_disk(ROOT / 'data', ROOT / '.dvc' / 'cache') / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
