"""The markdown tables of the report and the grid (zsseg/report.py): one formatter for every table, against
tables written out by hand."""

import math

import numpy as np
import pandas as pd
import pytest

from zsseg.report import (holm_adjusted, markdown_table, mean_and_t_interval, mean_table, mean_views, t_test_p_value,
                          views_markdown)


def test_numbers_counts_missing_values_and_text_are_each_printed_as_such():
    frame = pd.DataFrame({"k": [2, 4], "seed": [0, 1], "method": ["ZS3Net", "recursive ZS-MMD"],
                          "hiou": [63.876, 74.144], "mined_classes": [math.nan, 4.0]})
    assert markdown_table(frame) == (
        "| k | seed | method | hiou | mined_classes |\n"
        "|---:|---:|---|---:|---:|\n"
        "| 2 | 0 | ZS3Net | 63.88 | n/a |\n"
        "| 4 | 1 | recursive ZS-MMD | 74.14 | 4 |\n")


def test_views_are_headed_tables_with_their_preformatted_cells_kept():
    intervals = pd.DataFrame({"k": np.array([2], dtype=np.int64), "comparison": ["recursive ZS-MMD - ZS3Net"],
                              "metric": ["hiou"], "n": np.array([3], dtype=np.int64), "mean difference": ["+12.20"],
                              "95% t-interval": ["[10.77, 13.64]"]})
    means = pd.DataFrame({"k": [2], "method": ["ZS3Net"], "hiou": ["63.88 ± 0.48"], "unseen_of_ceiling": ["n/a"]})
    assert views_markdown([("Means", means), ("Paired", intervals)]) == (
        "## Means\n\n"
        "| k | method | hiou | unseen_of_ceiling |\n"
        "|---:|---|---:|---:|\n"
        "| 2 | ZS3Net | 63.88 ± 0.48 | n/a |\n"
        "\n## Paired\n\n"
        "| k | comparison | metric | n | mean difference | 95% t-interval |\n"
        "|---:|---|---|---:|---:|---:|\n"
        "| 2 | recursive ZS-MMD - ZS3Net | hiou | 3 | +12.20 | [10.77, 13.64] |\n")


def test_mean_and_t_interval_by_hand():
    # Differences 1, 2, 3: mean 2, standard error 1/sqrt(3). With 2 degrees of freedom Student's t has a
    # closed-form quantile, t_p = (2p - 1) / sqrt(2 p (1 - p)): 4.3027 at p = 0.975.
    mean, low, high = mean_and_t_interval([1.0, 2.0, 3.0])
    half_width = 0.95 / math.sqrt(2 * 0.975 * 0.025) / math.sqrt(3)
    assert mean == 2.0
    assert math.isclose(low, 2.0 - half_width, rel_tol=1e-12) and math.isclose(high, 2.0 + half_width, rel_tol=1e-12)
    assert mean_and_t_interval([0.5, 0.5, 0.5]) == (0.5, 0.5, 0.5)  # no spread: the point itself
    single = mean_and_t_interval([1.5])
    assert single[0] == 1.5 and math.isnan(single[1]) and math.isnan(single[2])


def test_t_test_p_value_by_hand():
    # With 2 degrees of freedom, Student's t has a closed-form two-sided tail: p = 1 - |t| / sqrt(2 + t^2).
    differences = [1.0, 2.0, 4.0]
    mean, sd = np.mean(differences), np.std(differences, ddof=1)
    t = mean / (sd / math.sqrt(3))
    assert math.isclose(t_test_p_value(differences), 1 - abs(t) / math.sqrt(2 + t * t), rel_tol=1e-10)
    assert math.isnan(t_test_p_value([1.0]))
    assert t_test_p_value([0.5, 0.5, 0.5]) == 0.0 and t_test_p_value([0.0, 0.0]) == 1.0


def test_holm_adjustment_by_hand():
    # m = 4 present (NaN is no member of the family): sorted 0.01, 0.02, 0.03, 0.04 -> 4 x 0.01 = 0.04,
    # 3 x 0.02 = 0.06, 2 x 0.03 = 0.06, 1 x 0.04 = 0.04 raised to the running maximum 0.06.
    adjusted = holm_adjusted([0.03, float("nan"), 0.01, 0.04, 0.02])
    expected = [0.06, float("nan"), 0.04, 0.06, 0.06]
    np.testing.assert_allclose(adjusted, expected, rtol=1e-12)
    assert holm_adjusted([0.5, 0.9]).tolist() == [1.0, 1.0]  # capped at 1
    # Brute force: Holm rejects H_(i) at alpha iff p_(j) <= alpha / (m - j + 1) for every j <= i.
    rng = np.random.default_rng(0)
    for _ in range(200):
        p_values = rng.uniform(0, 0.2, size=7)
        order = np.argsort(p_values)
        for alpha in (0.01, 0.05, 0.1):
            rejected = set()
            for rank, index in enumerate(order):
                if p_values[index] > alpha / (len(order) - rank):
                    break
                rejected.add(index)
            assert {i for i, value in enumerate(holm_adjusted(p_values)) if value <= alpha} == rejected


def test_one_seed_prints_no_spread_and_n_counts_only_seeds_with_a_metric():
    table = pd.DataFrame({"dataset": "demo", "k": 2, "seed": [0, 1, 2], "method": "ZS3Net", "round": 0,
                          "pixel_acc": 90.0, "mean_acc": 80.0, "seen_miou": [70.0, 72.0, 71.0],
                          "unseen_miou": [50.0, float("nan"), 54.0], "miou": 60.0, "hiou": [58.33, float("nan"), 61.2],
                          "mined_classes": float("nan"), "seen_pixel_acc": [90.0, 92.0, 91.0],
                          "unseen_pixel_acc": [50.0, float("nan"), 54.0], "seen_mean_acc": 80.0,
                          "unseen_mean_acc": [40.0, float("nan"), 44.0], "unseen_of_ceiling": float("nan")})
    classes = pd.DataFrame(columns=["k", "seed", "method", "round", "class", "iou"])
    means = mean_table(table, classes)
    assert means["n"].tolist() == [2]
    assert means["hiou_mean"].tolist() == [pytest.approx((58.33 + 61.2) / 2)]
    # The peers' accuracy columns, each over the seeds that have it: std of (50, 54) is 2 x sqrt(2).
    accuracy = mean_views(means, paired_table_of_nothing())[1][1]
    assert accuracy[["seen_pixel_acc", "unseen_pixel_acc", "seen_mean_acc", "unseen_mean_acc"]].values.tolist() == \
        [["91.00 ± 1.00", "52.00 ± 2.83", "80.00 ± 0.00", "42.00 ± 2.83"]]
    one_seed = mean_table(table[table["seed"] == 0], classes)
    view = mean_views(one_seed, paired_table_of_nothing())[0][1]
    assert view["hiou"].tolist() == ["58.33 ± n/a"] and view["n"].tolist() == [1]


def paired_table_of_nothing() -> pd.DataFrame:
    return pd.DataFrame(columns=["k", "comparison", "metric", "n", "mean_difference", "ci_low", "ci_high",
                                 "excludes_zero", "p_value", "p_holm"])
