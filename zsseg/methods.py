"""The methods of the paper's table, declared once.

Each entry names a method, the stage module that trains it, where its classifier lands in a run
directory and what its stage reads. Both engines build the method's stage from its entry
(``zsseg.pipeline``), the evaluate stage scores every result, and the report, the K grid's table,
its plots and captions list the methods in this order under these names. Adding a method is its
training code, its stage module, one entry here and its tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Method:
    name: str                  # the one name in every table, plot, caption and log
    key: str                   # its metric names' prefix (`dvc exp show` columns): short, no spaces
    label: str                 # its short title where a figure has no room for the name
    stage: str                 # the stage that trains it: its DVC stage and Snakemake rule
    output: str                # its directory in a run; "{round}" in it: one result per recursive round
    metrics: str               # the stem of its metrics and confusion files; "{round}" as in output
    inputs: dict[str, str]     # its stage's inputs: option -> path ("{run}": the run, "{data}": shared)
    summary: str               # one line for captions and the docs
    round: int = 0             # the round it reports, when it has a single result
    arguments: dict[str, str] = field(default_factory=dict)  # options that are not paths
    module: str = ""           # its stage module, stages/<module>.py, when it is not stages/<stage>.py
    overrides: dict = field(default_factory=dict)  # params.yaml values its stage runs with (an ablation's)
    chain: bool = False        # one stage trains every recursive round (else one stage per round)
    zero_shot: bool = True     # False: it learns from unseen labels, an upper bound, never a zero-shot result
    proposed: bool = False     # the method that the paired comparisons set against every other zero-shot one

    @property
    def per_round(self) -> bool:
        return "{round}" in self.output

    @property
    def stage_output(self) -> str:
        """What its stage writes: its output, or for a chain the directory holding every round."""
        return self.output.rsplit("/", 1)[0] if self.chain else self.output


@dataclass(frozen=True)
class Result:
    """One trained classifier of a method: a row of the table."""

    method: Method
    round: int
    directory: str             # relative to the run directory
    metrics: str               # metrics and confusion file stem


# Inputs every zero-shot method stage reads.
TRAINING_INPUTS = {"features": "{run}/features", "samples": "{run}/samples.h5", "embeddings": "{data}/embeddings.npz"}
# The ablations of the recursive rounds: the same chain of rounds from ZS3Net's round 0, one choice changed.
ABLATION_INPUTS = {"start": "{run}/rounds/0", **TRAINING_INPUTS}

METHODS = (
    Method("ZS3Net", "zs3net", "ZS3Net", "round_0", "rounds/0", "round_0", TRAINING_INPUTS,
           "round 0: the generator learns seen features from class embeddings, the classifier is trained on real "
           "seen and generated unseen features"),
    Method("ZS5Net", "zs5net", "ZS5Net", "self_training", "self_training", "self_training",
           {"previous": "{run}/rounds/0", **TRAINING_INPUTS},
           "ZS3Net's self-training baseline: round 0's most confident unseen predictions on unlabelled training "
           "pixels join the classifier's training set"),
    Method("recursive ZS-MMD", "recursive", "recursive ZS-MMD", "recursive_round", "rounds/{round}", "round_{round}",
           {"previous": "{run}/rounds/{previous}", **TRAINING_INPUTS},
           "round r: confident unseen pseudo-features of round r-1 pull the generator through the confidence-"
           "weighted ZS-MMD loss, then the classifier is retrained",
           arguments={"round": "{round}"}, proposed=True),
    Method("recursion without pseudo-features", "no_pseudo_features", "w/o pseudo-features",
           "recursion_without_pseudo_features",
           "ablations/without_pseudo_features/{round}", "without_pseudo_features_round_{round}", ABLATION_INPUTS,
           "ablation: the recursive rounds with zs_mmd_lambda = 0, the same retraining without what the "
           "pseudo-features bring", module="recursion_ablation", overrides={"recursion.zs_mmd_lambda": 0.0},
           chain=True),
    Method("recursion with pseudo-labelled classifier", "pseudo_labelled", "pseudo-labelled clf.",
           "recursion_with_pseudo_labelled_classifier",
           "ablations/pseudo_labelled_classifier/{round}", "pseudo_labelled_classifier_round_{round}",
           ABLATION_INPUTS,
           "ablation: the recursive rounds, whose pseudo-features also train the classifier as real features "
           "of their class, as ZS5Net's pseudo-labels do", module="recursion_ablation",
           overrides={"recursion.pseudo_labels_in_classifier": True}, chain=True),
    Method("supervised ceiling (uses unseen labels)", "ceiling", "ceiling (unseen labels)", "ceiling", "ceiling", "ceiling",
           {"features": "{run}/features", "labels": "{run}/ceiling_labels.h5"},
           "upper bound, not zero-shot: the classifier on real features of every class, unseen included, "
           "with the unseen labels of the training images", zero_shot=False),
)


def results(rounds: list[int]) -> list[Result]:
    """Every result of every method, in table order; ``rounds`` are the recursive rounds 1..R."""
    found = []
    for method in METHODS:
        for round_index in (rounds if method.per_round else [method.round]):
            found.append(Result(method, round_index, method.output.format(round=round_index),
                                method.metrics.format(round=round_index)))
    return found


def final_results(rounds: list[int]) -> list[Result]:
    """One result per method: the last round of a per-round method."""
    return [result for result in results(rounds) if not result.method.per_round or result.round == rounds[-1]]


def proposed() -> Method:
    return next(method for method in METHODS if method.proposed)


def ceiling() -> Method:
    return next(method for method in METHODS if not method.zero_shot)


def round_curve(rounds: list[int]) -> list[Result]:
    """The proposed method round by round, from its round 0: the method whose output its round 0 is."""
    method = proposed()
    start = next(other for other in METHODS if other.output == method.output.format(round=0))
    return [result for result in results(rounds) if result.method in (start, method)]
