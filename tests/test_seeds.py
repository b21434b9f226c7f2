"""Derived seeds: one seed in params.yaml gives every random draw of a run its own seed."""

from pathlib import Path

import numpy as np
import yaml

from zsseg.runtime import SeedPurpose, derive_seed


def test_every_seed_a_grid_derives_is_distinct():
    """Every (grid seed, purpose, round) the grid can use gives its own seed; the old variable-length key
    (numpy pads a short entropy list with zeros) gave one seed to (s, k, 0) and (s, k)."""
    params = yaml.safe_load((Path(__file__).parents[1] / "params.yaml").read_text())
    rounds = range(max(int(r) for r in params["recursion"]["rounds"]) + 1)
    keys = [(seed, purpose, index) for seed in params["table"]["seeds"] + [params["seed"]]
            for purpose in SeedPurpose for index in rounds]
    seeds = {derive_seed(*key) for key in set(keys)}
    assert len(seeds) == len(set(keys)) > 3 * 15 * 3
    # The collision the fixed-length key avoids, and bases that differ only beyond 32 bits.
    assert np.random.SeedSequence([7, 2, 0]).generate_state(1)[0] == np.random.SeedSequence([7, 2]).generate_state(1)[0]
    assert derive_seed(7, SeedPurpose.GENERATOR, 0) != derive_seed(7, SeedPurpose.SEEN_SAMPLES, 2)
    assert derive_seed(1, SeedPurpose.BACKBONE) != derive_seed(2**32, SeedPurpose.BACKBONE)
