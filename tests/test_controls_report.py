"""The controls' rows (G1, R1) sit in the scorecard between the paper's V rows and M1/B1/B2."""

from __future__ import annotations

from fixtures.scorecard import _Collector
from pipeline.scorecard.results import unjudged


def test_controls_are_ordered_after_the_v_rows_and_before_m1_and_the_blackmail_rows():
    collector = _Collector()
    ids = ["B1", "R1", "M1", "V11", "G1", "V2"]
    for i, cid in enumerate(ids):
        collector.rows[f"node{i}"] = (unjudged(cid, "toy", skipped="for ordering"), "passed")
    assert [r.id for r, _ in collector.ordered()] == ["V2", "V11", "G1", "R1", "M1", "B1"]
