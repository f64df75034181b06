"""Scorecard rows for the controls no public replication has (issue 16): G1, R1, the
evidence sentence B1/B2 carry (minimum detectable difference, judge agreement) and V3/V4's
(and V8/V9's) margin over a text-only baseline.

Like pipeline/rows.py, each `*_row` turns measurements (from pipeline/measures/) into a
`CriterionResult`; the criterion tests (criteria/test_controls.py) call them, and the planted
signal tests (tests/test_controls_*.py) call them on synthetic inputs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np

from pipeline.measures.agreement import POWER, cohen_kappa, minimum_detectable
from pipeline.measures.blackmail_judge import VerdictCounts
from pipeline.measures.geometry import component_alignment
from pipeline.measures.implicit import ImplicitScores
from pipeline.measures.preference_analysis import columnwise_pearson, count_strong, valence_extremes
from pipeline.measures.reliability import MIN_TOPICS_PER_HALF, SplitHalf
from pipeline.scorecard.results import CriterionResult, judge

VALENCE_SOURCE = ("valence labels are harness-authored from the paper's Table 12 clusters "
                  "(data/harness/valence_labels.toml); no human valence/arousal norms ship "
                  "with a package on the index under a licence that allows use (NRC VAD is "
                  "research-only and not on PyPI), so G2 (PC2 against arousal) waits for norms")


def g1_row(model: str, vectors: np.ndarray, emotions: Sequence[str],
           valence: Mapping[str, str], *, layer: int, missing: Sequence[str] = (),
           n_boot: int = 1000) -> CriterionResult:
    """vectors [E, d] (denoised, one layer); emotions without a vector (`missing`) left out."""
    present = [i for i, e in enumerate(emotions) if e not in set(missing)]
    fit = component_alignment(np.asarray(vectors)[present], [emotions[i] for i in present],
                              valence, component=0, n_boot=n_boot)
    return judge(
        "G1", model, fit.value, fit.ci,
        value_text=f"{fit.value:.2f}",
        explanation=(
            f"PC1 explains {fit.explained[0]:.0%} of the variance over {len(fit.emotions)} "
            f"emotions (paper 26%), |r| with valence {fit.abs_r[0]:.2f}; PC2 explains "
            f"{fit.explained[1]:.0%} (paper 15%), |r| with valence {fit.abs_r[1]:.2f}. A PC's "
            "sign is arbitrary, so |r|. G2 (PC2 against arousal, paper 0.66) waits for human "
            "arousal norms."),
        method=(f"PCA over emotions of the denoised vectors at layer {layer}; Pearson r of the "
                "PC1 scores with +1/-1 valence; bootstrap over emotions redoes the PCA"),
        harness_authored=VALENCE_SOURCE,
        details={"layer": layer, "abs_r_pc1": fit.abs_r[0], "abs_r_pc2": fit.abs_r[1],
                 "explained_pc1": fit.explained[0], "explained_pc2": fit.explained[1],
                 "n_emotions": len(fit.emotions), "missing": list(missing)},
    )


def r1_row(model: str, split: SplitHalf, *, layer: int) -> CriterionResult:
    """R1: the median split-half cosine; with fewer than 2 topics in a half, a computed FAIL
    whose sentence says why (and with no topic in one half, no value at all)."""
    n_a, n_b = (len(h) for h in split.halves)
    n_scored = int(split.scored.sum())
    unmet = ""
    if not (n_a and n_b):
        unmet = (f"cannot be computed: the stories span {n_a + n_b} topic(s), and a split by "
                 "topic needs at least 2 (one per half); use --scale cpu or larger")
    elif not split.enough_topics:
        unmet = (f"only {n_a} and {n_b} topic(s) per half: the interval over topics needs at "
                 f"least {MIN_TOPICS_PER_HALF} in each (4 topics; --scale cpu or larger)")
    unscored = split.unscored
    value = split.median
    return judge(
        "R1", model, value, split.ci,
        value_text="n/a" if np.isnan(value) else f"{value:.2f}",
        explanation=(
            "No split-half value: one half of the topics is empty." if not (n_a and n_b) else
            f"Topics split alternately into {n_a} and {n_b}; {split.n_distinct} of {n_scored} "
            "emotions have halves that agree better with each other than with any other "
            "emotion's half"
            + (f"; {len(unscored)} emotion(s) lack a usable story in one half and are left out"
               f" ({', '.join(unscored[:5])}{' ...' if len(unscored) > 5 else ''})"
               if unscored else "")
            + (f"; lowest: {_lowest(split)}" if n_scored else "") + "."),
        method=(f"story means at layer {layer}, neutral PCs projected out, per-half emotion "
                "means centred across emotions; percentile bootstrap resampling topics within "
                "each half"),
        details={"layer": layer, "topics_a": list(split.halves[0]),
                 "topics_b": list(split.halves[1]), "n_distinct": split.n_distinct,
                 "n_scored": n_scored, "unscored": unscored,
                 "cosines": {e: float(c) for e, c in zip(split.emotions, split.cosines,
                                                         strict=True) if not np.isnan(c)}},
        unmet_precondition=unmet,
    )


def _lowest(split: SplitHalf, k: int = 3) -> str:
    scored = [(c, e) for e, c in zip(split.emotions, split.cosines, strict=True)
              if not np.isnan(c)]
    return ", ".join(f"{e} {c:.2f}" for c, e in sorted(scored)[:k])


def blackmail_evidence(criterion: str, high: VerdictCounts, low: VerdictCounts, *,
                       n_rollouts: int, rule: Sequence[str] | None = None,
                       judge: Sequence[str] | None = None) -> tuple[str, dict]:
    """The sentence B1/B2 add on their evidence: the smallest difference the run could detect
    at 80% power from the measured baseline (the unsteered cell: `low` for B1, which needs a
    rise, `high` for B2, which needs a fall), and, where an LLM judge ran, its agreement with
    the rule-based classifier on the same rollouts (`rule` and `judge`, paired verdicts)."""
    baseline, direction = (low, "rise") if criterion == "B1" else (high, "fall")
    if baseline.judged:
        found = minimum_detectable(baseline.rate, n_rollouts, direction)
        power_text, mdd = found.text(), found.difference
    else:
        power_text, mdd = ("the minimum detectable difference cannot be computed: the "
                           "unsteered cell has no judged rollout"), float("nan")
    details: dict = {"minimum_detectable_difference": mdd, "power": POWER,
                     "mdd_direction": direction, "mdd_rollouts_per_cell": n_rollouts}
    if rule is not None and judge is not None:
        kappa = cohen_kappa(rule, judge)
        agreement = kappa.text("rule", "LLM judge") + " on this run's rollouts"
        details.update({"kappa_rule_vs_llm": kappa.value, "kappa_n": kappa.n,
                        "kappa_table": [list(r) for r in kappa.table]})
    else:
        agreement = ("judge agreement not measured: only the rule-based classifier judged "
                     "these rollouts")
    return f" Evidence: {power_text}; {agreement}.", details


def text_baseline_margin(criterion: str, probe: ImplicitScores,
                         text: ImplicitScores) -> tuple[str, dict]:
    """V3 (diagonal hits) or V4 (mean rank): the probe's margin over the same decision made
    from the words alone (pipeline/measures/text_baseline.py), as a sentence and details."""
    if criterion == "V3":
        p, t = int(probe.diagonal_hits().sum()), int(text.diagonal_hits().sum())
        margin, n = p - t, len(probe.emotions)
        verdict = "beats" if margin > 0 else "does not beat"
        sentence = (f" Text-only baseline (bag of words, scenario against each emotion's "
                    f"stories): {t}/{n}; the probe's margin {margin:+d} ({verdict} it).")
    elif criterion == "V4":
        p, t = float(probe.ranks().mean()), float(text.ranks().mean())
        margin = t - p  # ranks: lower is better, so a positive margin favours the probe
        verdict = "beats" if margin > 0 else "does not beat"
        sentence = (f" Text-only baseline (bag of words): mean rank {t:.2f}; the probe's "
                    f"margin {margin:+.2f} ranks ({verdict} it).")
    else:
        raise ValueError(f"criterion {criterion!r}; the text baseline covers 'V3' and 'V4'")
    return sentence, {"text_baseline": {"value": t, "probe_margin": margin,
                                        "winners": text.winners(),
                                        "ranks": text.ranks().tolist()}}


def with_note(result: CriterionResult, sentence: str, details: dict) -> CriterionResult:
    """`result` with a control's sentence appended to its explanation and its details merged."""
    return replace(result, explanation=result.explanation + sentence,
                   details={**result.details, **details})


def preference_text_margin(criterion: str, probe_value: float, emotions: Sequence[str],
                           text_values: np.ndarray, ratings: np.ndarray,
                           valence: Mapping[str, str]) -> tuple[str, dict]:
    """V8 (valence extremes score) or V9 (count of |r| > 0.3) computed on text-only probe
    values [N activities, E] (`text_cosines`), and the probe's margin over it."""
    r = columnwise_pearson(text_values, ratings)
    if criterion == "V8":
        if np.isfinite(r).sum() < 6:  # the activities share too few words with the stories
            return (" Text-only baseline (bag of words): cannot be computed, fewer than 6 "
                    "emotions' word vectors vary over the activities."), {}
        extremes = valence_extremes(emotions, r, valence)
        value, shown = float(extremes.score), (
            f"{extremes.positive_in_top}+{extremes.negative_in_bottom}")
    elif criterion == "V9":
        value = float(count_strong(r))
        shown = f"{int(value)}/{len(emotions)}"
    else:
        raise ValueError(f"criterion {criterion!r}; the preference text baseline covers 'V8' "
                         "and 'V9'")
    margin = probe_value - value
    verdict = "beats" if margin > 0 else "does not beat"
    return (f" Text-only baseline (bag of words, activity against each emotion's stories): "
            f"{shown}; the probe's margin {margin:+g} ({verdict} it)."), {
        "text_baseline": {"value": value, "probe_margin": margin,
                          "r": {e: float(x) for e, x in zip(emotions, r, strict=True)}}}
