# The paper's table: every K of table.k_values through every per-K stage, under data/k<K>/, so that
# parallel jobs never share an output. The K-independent stages (demo, prepare, embed) run once.
# Each per-K rule is the single-run rule with its paths moved and `--unseen K` passed to the stage.
K_VALUES = config["table"]["k_values"]


def per_k(path):
    return f"data/k{{k}}/{path}"


def unseen(wildcards):
    return f"--unseen {wildcards.k}"


use rule backbone as backbone_k with:
    input:
        "data/dataset",
    output:
        directory(per_k("backbone")),
    wildcard_constraints:
        k="[0-9]+",
    log:
        per_k("logs/backbone.log"),
    params:
        extra=unseen,
        depends=sections("seed", "threads", "device", "dataset", "backbone"),


use rule features as features_k with:
    input:
        dataset="data/dataset",
        backbone=per_k("backbone"),
    output:
        directory(per_k("features")),
    wildcard_constraints:
        k="[0-9]+",
    log:
        per_k("logs/features.log"),
    params:
        extra=unseen,
        depends=sections("seed", "threads", "dataset", "backbone", "features"),


use rule round_0 as round_0_k with:
    input:
        features=per_k("features"),
        embeddings="data/embeddings.npz",
    output:
        directory(per_k("rounds/0")),
    wildcard_constraints:
        k="[0-9]+",
    log:
        per_k("logs/round_0.log"),
    params:
        extra=unseen,
        depends=sections("seed", "threads", "generator", "classifier"),


use rule round as round_k with:
    input:
        previous=lambda wildcards: f"data/k{wildcards.k}/rounds/{ROUNDS[int(wildcards.round)]}",
        features=per_k("features"),
        embeddings="data/embeddings.npz",
    output:
        directory(per_k("rounds/{round}")),
    wildcard_constraints:
        k="[0-9]+",
        round="[1-9][0-9]*",
    log:
        per_k("logs/round_{round}.log"),
    params:
        extra=unseen,
        depends=sections("seed", "threads", "generator", "classifier", "recursion"),


use rule self_training as self_training_k with:
    input:
        previous=per_k("rounds/0"),
        features=per_k("features"),
        embeddings="data/embeddings.npz",
    output:
        directory(per_k("self_training")),
    wildcard_constraints:
        k="[0-9]+",
    log:
        per_k("logs/self_training.log"),
    params:
        extra=unseen,
        depends=sections("seed", "threads", "classifier", "self_training"),


use rule evaluate as evaluate_k with:
    input:
        features=per_k("features"),
        rounds=[per_k(f"rounds/{r}") for r in ALL_ROUNDS],
        self_training=per_k("self_training"),
    output:
        metrics=directory(per_k("metrics")),
        confusion=directory(per_k("confusion")),
    wildcard_constraints:
        k="[0-9]+",
    log:
        per_k("logs/evaluate.log"),
    params:
        extra=unseen,
        rounds=lambda wildcards: f"data/k{wildcards.k}/rounds",
        depends=sections("recursion"),


rule table:
    input:
        dataset="data/dataset",
        metrics=expand("data/k{k}/metrics", k=K_VALUES),
        features=expand("data/k{k}/features", k=K_VALUES),
        rounds=expand("data/k{k}/rounds/{round}", k=K_VALUES, round=ALL_ROUNDS),
        self_training=expand("data/k{k}/self_training", k=K_VALUES),
    output:
        report(directory("data/table"), patterns=["{name}.png", "{name}.csv"], caption="../report/table.rst",
               category="Table", labels={"figure": "{name}"}),
    log:
        "data/logs/table.log",
    threads: THREADS
    params:
        depends=sections("table", "recursion", "report"),
    shell:
        "python -m stages.table --dataset {input.dataset} --grid data --output {output}"
