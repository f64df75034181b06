"""Scorecard figures for V7-V11 (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

VALENCE_COLOURS = {"positive": "tab:blue", "negative": "tab:red"}


def category_ratings(ratings: np.ndarray, categories: Sequence[str], title: str,
                     paper_elo: np.ndarray | None = None):
    """Each activity's rating by category (dots), category means (bars), Table 9 for reference."""
    names = list(dict.fromkeys(categories))
    labels = np.asarray(categories)
    fig, ax = plt.subplots(figsize=(9, 4.2))
    for k, name in enumerate(names):
        values = np.asarray(ratings)[labels == name]
        ax.bar(k, values.mean() - 1500, bottom=1500, color="0.85", edgecolor="0.4")
        ax.plot(np.full(len(values), k), values, "o", color="tab:blue", ms=4,
                label="this model" if k == 0 else None)
        if paper_elo is not None:
            ax.plot(k + 0.25, np.asarray(paper_elo)[labels == name].mean(), "D",
                    color="tab:orange", label="Table 9 mean (Claude)" if k == 0 else None)
    ax.axhline(1500, color="0.5", lw=0.8)
    ax.set_xticks(range(len(names)), names, rotation=20)
    ax.set_ylabel("Bradley-Terry rating (Elo scale)")
    ax.set_title(f"{title}: activity ratings by category")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def correlation_bars(emotions: Sequence[str], r: np.ndarray, valence: dict[str, str],
                     title: str, threshold: float = 0.3, n_activities: int = 64):
    """All emotions' probe-preference r, sorted, coloured by (harness-authored) valence."""
    order = sorted(range(len(emotions)), key=lambda i: -np.nan_to_num(r[i], nan=-2.0))
    fig, ax = plt.subplots(figsize=(max(12, len(emotions) * 0.11), 4.8))
    colours = [VALENCE_COLOURS[valence[emotions[i]]] for i in order]
    ax.bar(range(len(order)), np.nan_to_num(r[order]), color=colours, width=0.85)
    ax.set_xticks(range(len(order)), [emotions[i] for i in order], rotation=90, fontsize=5)
    for y in (threshold, -threshold):
        ax.axhline(y, color="0.4", lw=0.8, ls="--")
    ax.set_ylabel(f"Pearson r (probe vs rating, {n_activities} activities)")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in VALENCE_COLOURS.values()]
    ax.legend(handles, [f"{v} (harness label)" for v in VALENCE_COLOURS], fontsize=8)
    ax.set_title(f"{title}: emotion probe vs preference, by emotion (dashed: |r| = {threshold})")
    ax.set_xlim(-1, len(order))
    fig.tight_layout()
    return fig


def strength_histogram(r: np.ndarray, title: str, threshold: float = 0.3):
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.hist(np.abs(r[np.isfinite(r)]), bins=30, color="tab:blue")
    ax.axvline(threshold, color="k", ls="--", label=f"|r| = {threshold}")
    ax.set_xlabel("|r| (probe vs rating)")
    ax.set_ylabel("emotions")
    ax.set_title(f"{title}: strength of the probe-preference correlations")
    ax.legend()
    fig.tight_layout()
    return fig


def steering_scatter(names: Sequence[str], r: np.ndarray, delta: np.ndarray, title: str,
                     control: float | None = None):
    """Each steered emotion's r against its mean Delta-Elo, with the least-squares line."""
    fig, ax = plt.subplots(figsize=(7, 5.5))
    ax.scatter(r, delta, color="tab:purple", s=18)
    for name, x, y in zip(names, r, delta, strict=True):
        ax.annotate(name, (x, y), fontsize=6, xytext=(2, 2), textcoords="offset points")
    if len(r) > 1 and np.ptp(r) > 0:
        slope, intercept = np.polyfit(r, delta, 1)
        xs = np.linspace(min(r), max(r), 2)
        ax.plot(xs, slope * xs + intercept, color="k", lw=1,
                label=f"fit: {slope:.3g} Elo per unit r")
    if control is not None:
        ax.axhline(control, color="tab:gray", ls=":",
                   label=f"matched-norm random direction: {control:+.3g}")
    ax.axhline(0, color="0.7", lw=0.6)
    ax.axvline(0, color="0.7", lw=0.6)
    ax.set_xlabel("r (probe vs rating)")
    ax.set_ylabel("mean Delta-Elo of the steered activities")
    ax.set_title(f"{title}: steering effect against probe correlation")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def exemplar_panels(exemplars: dict[str, dict[str, np.ndarray]], title: str):
    """Per exemplar: probe value vs baseline rating (64), Delta-Elo vs baseline (steered 32).

    exemplars[name] holds "probe" [N], "baseline" [N], "r" (scalar array), "steered_baseline"
    [S] and "delta" [S].
    """
    fig, axes = plt.subplots(2, len(exemplars), figsize=(5.2 * len(exemplars), 8), squeeze=False)
    for col, (name, data) in enumerate(exemplars.items()):
        top, bottom = axes[0, col], axes[1, col]
        top.scatter(data["probe"], data["baseline"], s=14, color="tab:blue")
        top.set_xlabel(f"{name} probe (cosine, activity tokens)")
        top.set_ylabel("baseline rating")
        top.set_title(f"{name}: r = {float(data['r']):.2f}")
        bottom.scatter(data["steered_baseline"], data["delta"], s=14, color="tab:purple")
        bottom.axhline(float(np.mean(data["delta"])), color="k", ls="--",
                       label=f"mean {float(np.mean(data['delta'])):+.3g}")
        bottom.axhline(0, color="0.7", lw=0.6)
        bottom.set_xlabel("baseline rating (steered activities)")
        bottom.set_ylabel(f"Delta-Elo when steered with {name}")
        bottom.legend(fontsize=8)
    fig.suptitle(f"{title}: the paper's exemplars (Claude: blissful r 0.71, +212; "
                 "hostile r -0.74, -303)")
    fig.tight_layout()
    return fig
