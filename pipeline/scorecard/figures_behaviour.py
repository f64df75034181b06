"""Scorecard figures for M1 (mirroring scatter) and B1/B2 (blackmail rate against strength).

Matplotlib with the Agg backend. Titles and labels come from our own data (scenario titles,
emotion names, cell names), never from model-generated text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from pipeline.measures.mirroring import MirroringStats  # noqa: E402


def mirroring_scatter(stats: MirroringStats, title: str):
    """Left: user (U) vs read position (A), one colour per emotion, 8 scenarios each.
    Right: the continuation check, U and A against the response mean."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.2))
    colours = plt.get_cmap("tab10")
    ax = axes[0]
    for j, emotion in enumerate(stats.emotions):
        ax.scatter(stats.user[:, j], stats.assistant[:, j], color=colours(j), label=emotion, s=28)
    ax.set_xlabel("probe at the user's final punctuation (U)")
    ax.set_ylabel("probe at the read position (A)")
    ax.set_title(f"M1: pooled r = {stats.pooled.r:.2f}, emotion-centred r = {stats.centred.r:.2f}")
    ax.legend(fontsize=8, loc="best")
    ax = axes[1]
    response = stats.response
    keep = np.isfinite(response).all(axis=1)
    if keep.any():
        ax.scatter(
            stats.user[keep].ravel(),
            response[keep].ravel(),
            marker="o",
            s=22,
            label=f"U vs response, r = {stats.user_vs_response.r:.2f}",
        )
        ax.scatter(
            stats.assistant[keep].ravel(),
            response[keep].ravel(),
            marker="^",
            s=22,
            label=f"A vs response, r = {stats.assistant_vs_response.r:.2f}",
        )
        ax.legend(fontsize=8, loc="best")
    ax.set_xlabel("probe at U or A")
    ax.set_ylabel("probe mean over the greedy continuation")
    ax.set_title("continuation check (paper: A 0.87, U 0.59)")
    fig.suptitle(f"{title}: Table 3 user vs assistant emotion ({len(stats.titles)} scenarios)")
    fig.tight_layout()
    return fig


def blackmail_curve(
    curves: Mapping[str, Sequence[tuple[float, float, float, float]]],
    title: str,
    *,
    paper: Mapping[str, Sequence[tuple[float, float]]] | None = None,
):
    """Blackmail rate against steering strength, one line per vector.

    curves: vector -> [(strength, rate, wilson_low, wilson_high), ...] sorted by strength.
    paper: vector -> [(strength, rate), ...] reference points drawn as crosses.
    """
    fig, ax = plt.subplots(figsize=(7, 4.8))
    colours = {"desperate": "tab:red", "calm": "tab:blue", "random": "tab:gray"}
    for vector, points in curves.items():
        strengths, rates, lows, highs = (
            np.array(v, dtype=float) for v in zip(*points, strict=True)
        )
        colour = colours.get(vector)
        ax.plot(strengths, rates, marker="o", color=colour, label=vector)
        ax.fill_between(strengths, lows, highs, color=colour, alpha=0.15)
    for vector, points in (paper or {}).items():
        xs, ys = zip(*points, strict=True)
        ax.scatter(
            xs, ys, marker="x", s=60, color=colours.get(vector, "black"), label=f"paper: {vector}"
        )
    ax.set_xlabel("steering strength (fraction of the layer's mean residual norm)")
    ax.set_ylabel("blackmail rate (judged rollouts)")
    ax.set_ylim(-0.02, 1.02)
    ax.axvline(0.0, color="black", lw=0.5)
    ax.legend(fontsize=8)
    ax.set_title(f"{title}: SummitBridge blackmail rate (bands: Wilson 95%)")
    fig.tight_layout()
    return fig
