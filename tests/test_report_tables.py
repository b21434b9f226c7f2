"""The markdown tables of the report and the grid (zsseg/report.py): one formatter for every table, against
tables written out by hand."""

import math

import numpy as np
import pandas as pd

from zsseg.report import markdown_table, mean_and_t_interval, views_markdown


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
