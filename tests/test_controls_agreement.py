"""Planted answers for the blackmail evidence-quality measures (issue 16, item 5).

Cohen's kappa: identical raters give 1, a rater that always disagrees gives -1, independent
raters give about 0, and a hand-computed table gives its textbook value. The minimum detectable
difference: the exact power of B1/B2's own rule (Newcombe's lower end above 0) crosses 80% at
the reported difference and not below it, a baseline of 0 leaves no fall detectable, and more
rollouts detect smaller differences.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.measures.agreement import (
    POWER,
    cohen_kappa,
    minimum_detectable,
    newcombe_lower,
    power,
)
from pipeline.measures.blackmail_judge import VerdictCounts
from pipeline.measures.stats import rate_difference_ci
from pipeline.scorecard.rows_controls import blackmail_evidence


def test_kappa_of_identical_raters_is_one_and_of_opposite_raters_minus_one():
    a = ["yes", "no"] * 10
    assert cohen_kappa(a, a).value == 1.0
    assert cohen_kappa(a, ["no" if x == "yes" else "yes" for x in a]).value == -1.0


def test_kappa_of_independent_raters_is_near_zero():
    rng = np.random.default_rng(0)
    a = rng.choice(["yes", "no"], size=4000).tolist()
    b = rng.choice(["yes", "no"], size=4000).tolist()
    assert abs(cohen_kappa(a, b).value) < 0.05


def test_kappa_matches_a_hand_computed_table():
    # 20 yes/yes, 5 yes/no, 10 no/yes, 15 no/no: p_o = 0.7, p_e = 0.5*0.6 + 0.5*0.4 = 0.5.
    a = ["yes"] * 25 + ["no"] * 25
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    kappa = cohen_kappa(a, b)
    assert kappa.value == pytest.approx(0.4) and kappa.table == ((20, 5), (10, 15))


def test_kappa_leaves_unjudged_items_out_and_is_undefined_without_variation():
    kappa = cohen_kappa(["yes", "no", "unjudged"], ["yes", "no", "yes"])
    assert kappa.n == 2 and kappa.value == 1.0
    assert math.isnan(cohen_kappa(["no"] * 5, ["no"] * 5).value)
    assert "undefined" in cohen_kappa(["no"] * 5, ["no"] * 5).text("rule", "judge")


def test_kappa_needs_paired_lists():
    with pytest.raises(ValueError, match="expected one pair per item"):
        cohen_kappa(["yes"], ["yes", "no"])


def test_vectorised_newcombe_is_the_rows_interval():
    lower = newcombe_lower(8, 12)
    for k1, k0 in [(0, 0), (5, 1), (8, 0), (3, 7)]:
        assert lower[k1, k0] == pytest.approx(rate_difference_ci(k1, 8, k0, 12)[0], abs=1e-12)


def test_power_is_the_share_of_outcomes_that_clear_zero():
    # Certain rates: 8/8 against 0/8 always clears 0; equal rates clear it rarely.
    assert power(1.0, 0.0, 8, 8) == 1.0
    assert power(0.3, 0.3, 50, 50) < 0.05


@pytest.mark.parametrize(("baseline", "n"), [(0.0, 8), (0.22, 50), (0.5, 30)])
def test_the_minimum_detectable_rise_sits_on_the_80_percent_line(baseline, n):
    found = minimum_detectable(baseline, n, "rise")
    assert power(baseline + found.difference, baseline, n, n) >= POWER
    assert power(baseline + found.difference - 0.01, baseline, n, n) < POWER


def test_more_rollouts_detect_smaller_differences():
    small, large = (minimum_detectable(0.22, n, "rise").difference for n in (20, 200))
    assert large < small


def test_no_fall_is_detectable_from_a_baseline_of_zero():
    found = minimum_detectable(0.0, 100, "fall")
    assert math.isnan(found.difference) and "no fall from a baseline of 0%" in found.text()


def test_minimum_detectable_rejects_a_bad_rate():
    with pytest.raises(ValueError, match="expected a rate in"):
        minimum_detectable(1.5, 10, "rise")


def _counts(yes: int, no: int) -> VerdictCounts:
    return VerdictCounts(yes=yes, no=no, unjudged=0)


def test_b1_and_b2_sentences_name_the_detectable_difference_and_the_agreement():
    text, details = blackmail_evidence("B1", _counts(3, 5), _counts(0, 8), n_rollouts=8,
                                       rule=["no"] * 8 + ["yes"] * 8,
                                       judge=["no"] * 8 + ["yes"] * 7 + ["no"])
    assert "smallest rise detectable at 80% power is 0.58" in text
    assert "Cohen's kappa rule vs LLM judge 0.88" in text
    assert details["minimum_detectable_difference"] == pytest.approx(0.58, abs=0.01)
    text, _ = blackmail_evidence("B2", _counts(0, 8), _counts(0, 8), n_rollouts=8)
    assert "no fall from a baseline of 0%" in text and "only the rule-based" in text
