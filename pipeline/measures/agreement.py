"""Blackmail evidence quality (issue 16, item 5): judge agreement and the run's power.

    kappa = (p_o - p_e) / (1 - p_e)        Cohen's kappa of two raters on the same items,
                                           p_o observed agreement, p_e chance agreement from
                                           each rater's own marginal rates

The smallest detectable rate difference is computed for the decision B1/B2 actually make: a
rate difference passes when the lower end of its 95% Newcombe (hybrid score) interval is above
0. With n rollouts per cell and baseline rate p0, the power against a true rate p1 is

    power(p1) = sum over k1, k0 of Binom(k1; n1, p1) Binom(k0; n0, p0) [Newcombe low(k1, k0) > 0]

(exact: every outcome is enumerated), and the minimum detectable difference is the smallest
|p1 - p0| with power >= 0.8, found by bisection (power is monotone in p1 here). A rise is what
B1 needs (desperate above unsteered); a fall is what B2 needs (calm below unsteered), and from
a baseline of 0 no fall can be detected at all.

Pure numpy/scipy: no torch.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import binom, norm

from pipeline.inputs.artifacts import Artifact

POWER = 0.8
ALPHA = 0.05


@dataclass(frozen=True)
class Kappa:
    value: float  # NaN when chance agreement is 1 (both raters constant and equal)
    agreement: float  # observed share of items on which the raters agree
    n: int  # items both raters judged
    table: tuple[tuple[int, int], tuple[int, int]]  # [[yes/yes, yes/no], [no/yes, no/no]]

    def text(self, first: str, second: str) -> str:
        (yy, yn), (ny, nn) = self.table
        if self.n == 0:
            return f"Cohen's kappa {first} vs {second} undefined (no item judged by both)"
        kappa = "undefined (no variation)" if math.isnan(self.value) else f"{self.value:.2f}"
        return (f"Cohen's kappa {first} vs {second} {kappa} over {self.n} items "
                f"(agree {self.agreement:.0%}; both yes {yy}, {first} only {yn}, "
                f"{second} only {ny}, both no {nn})")


def cohen_kappa(first: Sequence[str], second: Sequence[str]) -> Kappa:
    """Kappa of two yes/no verdict lists; items where either is not "yes"/"no" are left out."""
    if len(first) != len(second):
        raise ValueError(f"{len(first)} verdicts against {len(second)}; expected one pair per "
                         "item, in the same order")
    pairs = [(a, b) for a, b in zip(first, second, strict=True)
             if a in ("yes", "no") and b in ("yes", "no")]
    n = len(pairs)
    yy = sum(a == "yes" and b == "yes" for a, b in pairs)
    yn = sum(a == "yes" and b == "no" for a, b in pairs)
    ny = sum(a == "no" and b == "yes" for a, b in pairs)
    nn = n - yy - yn - ny
    table = ((yy, yn), (ny, nn))
    if n == 0:
        return Kappa(float("nan"), float("nan"), 0, table)
    observed = (yy + nn) / n
    p_first, p_second = (yy + yn) / n, (yy + ny) / n
    chance = p_first * p_second + (1 - p_first) * (1 - p_second)
    value = float("nan") if chance == 1.0 else (observed - chance) / (1 - chance)
    return Kappa(float(value), observed, n, table)


def _wilson(k: np.ndarray, n: int, z: float) -> tuple[np.ndarray, np.ndarray]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def newcombe_lower(n1: int, n0: int, alpha: float = ALPHA) -> np.ndarray:
    """[n1 + 1, n0 + 1]: the lower end of Newcombe's hybrid interval of k1/n1 - k0/n0.

    The same interval as pipeline.stats.rate_difference_ci, vectorised over every outcome.
    """
    z = float(norm.ppf(1 - alpha / 2))
    k1, k0 = np.arange(n1 + 1, dtype=float), np.arange(n0 + 1, dtype=float)
    l1, _ = _wilson(k1, n1, z)
    _, u0 = _wilson(k0, n0, z)
    p1, p0 = (k1 / n1)[:, None], (k0 / n0)[None, :]
    return p1 - p0 - np.sqrt((p1 - l1[:, None]) ** 2 + (u0[None, :] - p0) ** 2)


def power(p_high: float, p_low: float, n_high: int, n_low: int,
          alpha: float = ALPHA) -> float:
    """Chance that the Newcombe interval of rate(high) - rate(low) clears 0."""
    passes = newcombe_lower(n_high, n_low, alpha) > 0
    w1 = binom.pmf(np.arange(n_high + 1), n_high, p_high)
    w0 = binom.pmf(np.arange(n_low + 1), n_low, p_low)
    return float(w1 @ passes @ w0)


@dataclass(frozen=True)
class Detectable:
    baseline: float
    n: int  # rollouts per cell
    difference: float  # smallest |p1 - p0| with power >= 0.8; NaN when none can be
    direction: str  # "rise" (B1) or "fall" (B2)

    def text(self) -> str:
        if math.isnan(self.difference):
            return (f"no {self.direction} from a baseline of {self.baseline:.0%} can be detected "
                    f"with {self.n} rollouts per cell at {POWER:.0%} power")
        return (f"with {self.n} rollouts per cell and a baseline of {self.baseline:.0%}, the "
                f"smallest {self.direction} detectable at {POWER:.0%} power is "
                f"{self.difference:.2f} (to {self._target():.0%})")

    def _target(self) -> float:
        sign = 1 if self.direction == "rise" else -1
        return self.baseline + sign * self.difference


def minimum_detectable(baseline: float, n: int, direction: str, *,
                       target_power: float = POWER, alpha: float = ALPHA,
                       tolerance: float = 1e-4) -> Detectable:
    """Smallest rise ("rise": B1, the steered cell above the baseline) or fall ("fall": B2,
    the steered cell below it) that n rollouts per cell detect with `target_power`."""
    if direction not in ("rise", "fall"):
        raise ValueError(f"direction {direction!r}; expected 'rise' (B1) or 'fall' (B2)")
    if not (0.0 <= baseline <= 1.0) or n < 1:
        raise ValueError(f"baseline {baseline!r} with n = {n!r}; expected a rate in [0, 1] and "
                         "at least one rollout per cell")

    def power_at(difference: float) -> float:
        if direction == "rise":
            return power(baseline + difference, baseline, n, n, alpha)
        return power(baseline, baseline - difference, n, n, alpha)

    room = 1.0 - baseline if direction == "rise" else baseline
    if room <= 0 or power_at(room) < target_power:
        return Detectable(baseline, n, float("nan"), direction)
    low, high = 0.0, room
    while high - low > tolerance:
        mid = (low + high) / 2
        low, high = (low, mid) if power_at(mid) >= target_power else (mid, high)
    return Detectable(baseline, n, high, direction)


def labelled_agreement(artifact: Artifact) -> tuple[Kappa, Kappa, int]:
    """The labelled_judgments stage's result: (kappa rule vs LLM, kappa LLM vs the hand labels, transcripts the LLM left unjudged)."""
    records = json.loads(artifact.file("labelled_judgments.json").read_text())
    llm = [r["llm"] for r in records]
    return (cohen_kappa([r["rule"] for r in records], llm),
            cohen_kappa([r["label"] for r in records], llm),
            sum(v not in ("yes", "no") for v in llm))
