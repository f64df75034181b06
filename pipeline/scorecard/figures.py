"""Scorecard figures for V1-V6 (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from pipeline.measures.implicit import ImplicitScores  # noqa: E402
from pipeline.measures.numerical import PairResult  # noqa: E402


def implicit_heatmap(scores: ImplicitScores, title: str):
    """Two 12 x 12 heatmaps (raw and scenario-centred cosine), diagonal boxed."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.2))
    for ax, matrix, label in ((axes[0], scores.raw, "raw cosine (verdict)"),
                              (axes[1], scores.centred, "scenario-centred cosine")):
        limit = float(np.nanmax(np.abs(matrix))) or 1.0
        image = ax.imshow(matrix, cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.set_xticks(range(len(scores.emotions)), scores.emotions, rotation=60, ha="right")
        ax.set_yticks(range(len(scores.emotions)), [f"{e} scenario" for e in scores.emotions])
        for i in range(len(scores.emotions)):
            ax.add_patch(plt.Rectangle((i - 0.5, i - 0.5), 1, 1, fill=False, lw=1.5))
            j = int(np.argmax(matrix[i]))
            ax.text(j, i, "*", ha="center", va="center", fontsize=12)
        ax.set_xlabel("emotion vector")
        ax.set_title(label)
        fig.colorbar(image, ax=ax, shrink=0.8)
    fig.suptitle(f"{title}: Table 2 scenarios at the read position (* = row argmax)")
    fig.tight_layout()
    return fig


def numerical_grid(pairs: Sequence[PairResult], title: str):
    """3 x 2 grid: one panel per template, probe value against X for each emotion."""
    templates = list(dict.fromkeys(p.template for p in pairs))
    fig, axes = plt.subplots(3, 2, figsize=(11, 10))
    for ax, template in zip(axes.flat, templates, strict=False):
        for pair in (p for p in pairs if p.template == template):
            mark = "" if pair.sign_ok else " (wrong sign)"
            source = "paper" if pair.sign_source == "paper" else "harness"
            ax.plot(pair.x, pair.probe, marker="o",
                    label=f"{pair.emotion} {'+' if pair.expected_sign > 0 else '-'} [{source}] "
                          f"rho={pair.rho:.2f}{mark}")
        ax.set_title(template)
        ax.set_xlabel("X")
        ax.set_ylabel("cosine with vector")
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(templates):]:
        ax.axis("off")
    fig.suptitle(f"{title}: numerical templates (expected sign, its source, Spearman rho)")
    fig.tight_layout()
    return fig


def logit_lens_table(examples: dict[str, dict[str, list[str]]], title: str):
    """Top-5 promoted and suppressed tokens for the Table 1 emotions, drawn as a table image.

    Tokens are model output; drawing them (with repr) keeps them out of the HTML entirely.
    """
    def cell(tokens: list[str]) -> str:
        # "$" would start matplotlib mathtext; tokens are drawn literally.
        return "  ".join(repr(t) for t in tokens).replace("$", r"\$")

    rows = [[emotion, cell(item["up"]), cell(item["down"])] for emotion, item in examples.items()]
    fig, ax = plt.subplots(figsize=(12, 0.4 * len(rows) + 1))
    ax.axis("off")
    table = ax.table(cellText=rows, colLabels=["emotion", "top-5 promoted", "top-5 suppressed"],
                     loc="center", cellLoc="left", colWidths=[0.12, 0.44, 0.44])
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    ax.set_title(f"{title}: logit lens (W_U . v)")
    fig.tight_layout()
    return fig
