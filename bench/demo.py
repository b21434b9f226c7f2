"""Benchmark: a clean `dvc repro` of the default demo, with per-stage wall times and per-round metrics.

Usage: python bench/demo.py [--keep]   (run from the project root, with the venv's bin on PATH)
It removes data/ and runs every stage (unless --keep is given), and checks the issue's targets:
`dvc repro` <= 240 s, round 0 unseen mIoU >= 45, best hIoU >= 75 and >= round 0 hIoU + 10.
"""

import argparse
import json
import shutil
from pathlib import Path

from machine_load import other_load_since, snapshot
from stage_times import repro_stage_times

ROOT = Path(__file__).resolve().parents[1]


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


if __name__ == "__main__":
    main()
