"""Stage of an ablation of the recursive rounds: every round r = 1..R from ZS3Net's round 0, one after the
other, with the ablation's values of the recursion's params (--set, from its entry in zsseg/methods.py).
Writes OUTPUT/<r>/ for every round, as the recursive_round stages write data/rounds/<r>/."""

from pathlib import Path

from zsseg.atomic import atomic_path
from zsseg.embeddings import load_embeddings
from zsseg.feature_cache import open_training_caches
from zsseg.rounds import save_round, train_recursive_round
from zsseg.sampling import load_seen_samples
from zsseg.stage import stage_run

PARAMS = ("seed", "threads", "device", "dataset.background", "generator", "classifier", "evaluate.batch_size",
          "recursion.rounds", "recursion.threshold", "recursion.per_class_cap", "recursion.min_count",
          "recursion.zs_mmd_lambda", "recursion.generator_steps", "recursion.mining_pool", "recursion.weighting",
          "recursion.selection", "recursion.per_image_cap", "recursion.allow_empty_rounds",
          "recursion.pseudo_labels_in_classifier", "recursion.thresholds", "recursion.class_top_percent",
          "recursion.class_threshold_floor", "recursion.guard")
ARGUMENTS = {"start": "directory of round 0 (ZS3Net's generator and classifier)",
             "features": "directory written by the features stage",
             "samples": ".h5 written by the samples stage",
             "embeddings": ".npz written by the embed stage",
             "output": "directory for one subdirectory per round"}


def main(argv: list[str] | None = None) -> None:
    with stage_run("recursion_ablation", __doc__, PARAMS, ARGUMENTS, argv) as stage:
        caches = open_training_caches(stage.args.features, stage.params)
        embeddings = load_embeddings(stage.args.embeddings, caches.class_names)
        samples = load_seen_samples(stage.args.samples, stage.params)
        with atomic_path(stage.args.output, directory=True) as directory:
            previous = Path(stage.args.start)
            for round_index in sorted(stage.params.recursion.rounds):
                result = train_recursive_round(stage.params, round_index, previous, caches, samples, embeddings,
                                               stage.device, stage.log.info)
                previous = directory / str(round_index)
                previous.mkdir()
                save_round(previous, result, caches)


if __name__ == "__main__":
    main()
