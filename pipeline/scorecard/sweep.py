"""The layer sweep's report: a layer x criterion table (JSON payload, text, Markdown, HTML) and a
plot of each row's margin over its threshold against the layer.

The payload is plain JSON so it can travel in a test report's `user_properties` and land in
scorecard.json unchanged; every renderer reads only the payload.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

from pipeline.scorecard.results import CriterionResult

ALL_PASS = "all pass"
CLIP = 2.0  # plotted margins are clipped here: one row far off would flatten every other line


def sweep_table(model: str, analysis_layer: int,
                results: Mapping[int, Sequence[CriterionResult]]) -> dict[str, Any]:
    """{layer: [row results]} -> the JSON payload; `all_pass` lists layers where every row passes."""
    layers = sorted(results)
    criteria = [r.id for r in results[layers[0]]] if layers else []
    rows = []
    for layer in layers:
        by_id = {r.id: r for r in results[layer]}
        if list(by_id) != criteria:
            raise ValueError(
                f"layer {layer} has rows {list(by_id)}, layer {layers[0]} has {criteria}; every "
                "layer of a sweep must report the same criteria"
            )
        cells = {cid: {"value": _json_float(r.value), "value_text": r.value_text,
                       "threshold": r.threshold, "direction": r.direction, "passed": r.passed}
                 for cid, r in by_id.items()}
        rows.append({"layer": layer, "cells": cells,
                     "all_pass": all(c["passed"] for c in cells.values())})
    return {"model": model, "analysis_layer": analysis_layer, "layers": layers,
            "criteria": criteria, "rows": rows,
            "all_pass_layers": [row["layer"] for row in rows if row["all_pass"]]}


def _json_float(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


def margin(value: float | None, threshold: float, direction: str) -> float:
    """How far a value is on the passing side of its threshold, in units of |threshold|.

    Positive passes (zero passes only for >= and <=); NaN when the value is missing.
    """
    if value is None or math.isnan(value):
        return math.nan
    sign = 1.0 if direction in (">=", ">") else -1.0
    scale = abs(threshold) or 1.0
    return sign * (value - threshold) / scale


def _cell_text(cell: Mapping[str, Any]) -> str:
    return f"{cell['value_text']} {'PASS' if cell['passed'] else 'FAIL'}"


def _layer_text(row: Mapping[str, Any], analysis_layer: int) -> str:
    marks = [ALL_PASS] if row["all_pass"] else []
    if row["layer"] == analysis_layer:
        marks.append("registry")
    return f"{row['layer']}" + (f" ({', '.join(marks)})" if marks else "")


def sweep_grid(payload: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of plain-text cells: one row per layer, one column per criterion."""
    header = ["layer", *payload["criteria"]]
    body = [[_layer_text(row, payload["analysis_layer"]),
             *(_cell_text(row["cells"][cid]) for cid in payload["criteria"])]
            for row in payload["rows"]]
    return header, body


def _summary(payload: Mapping[str, Any]) -> str:
    passing = payload["all_pass_layers"]
    return (f"Layers where every row passes: {', '.join(map(str, passing)) or 'none'}. "
            f"The scorecard rows use the registry layers (analysis layer "
            f"{payload['analysis_layer']}).")


def render_sweep_text(payload: Mapping[str, Any]) -> str:
    header, body = sweep_grid(payload)
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(header, widths, strict=True)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in body]
    return "\n".join([f"layer sweep: {payload['model']}", *lines, _summary(payload)])


def render_sweep_markdown(payload: Mapping[str, Any]) -> str:
    def esc(text: str) -> str:
        return str(text).replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")

    header, body = sweep_grid(payload)
    out = [f"## Layer sweep: {esc(payload['model'])}", "",
           "| " + " | ".join(esc(c) for c in header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(esc(c) for c in row) + " |" for row in body]
    out += ["", esc(_summary(payload))]
    if payload.get("figure"):
        out += ["", f"![layer sweep of {esc(payload['model'])}](figures/{payload['figure']})"]
    return "\n".join(out) + "\n"


def render_sweep_html(payload: Mapping[str, Any], png_base64: str | None = None) -> str:
    """The table with every cell escaped; passing cells and all-pass layers are classed."""
    header, body = sweep_grid(payload)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in header)
    rows = []
    for row, cells in zip(payload["rows"], body, strict=True):
        tds = [f"<td>{html.escape(cells[0])}</td>"]
        for cid, text in zip(payload["criteria"], cells[1:], strict=True):
            css = "pass" if row["cells"][cid]["passed"] else "fail"
            tds.append(f'<td class="{css}">{html.escape(text)}</td>')
        css = ' class="allpass"' if row["all_pass"] else ""
        rows.append(f"<tr{css}>{''.join(tds)}</tr>")
    model = html.escape(payload["model"])
    image = (f'<img class="layer-sweep" alt="layer sweep of {model}" '
             f'src="data:image/png;base64,{png_base64}"/>' if png_base64 else "")
    return (f"<h4>Layer sweep: {model}</h4>"
            f'<table class="scorecard layer-sweep" data-model="{model}">'
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
            f"<p>{html.escape(_summary(payload))}</p>{image}")


def sweep_figure(payload: Mapping[str, Any]):
    """Each row's margin over its threshold against the layer; the passing side shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    layers = payload["layers"]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.5 * len(layers) + 4), 4.5))
    ax.axhspan(0, CLIP * 1.05, color="#e6f4e6", zorder=0, label="passing side")
    ax.axhline(0, color="#555", linewidth=0.8)
    colours = plt.get_cmap("tab20").colors  # 11 rows: tab10 would repeat a colour
    for i, cid in enumerate(payload["criteria"]):
        # np.clip keeps NaN (no value at that layer) as a gap; Python's min/max would not.
        ys = np.clip([margin(row["cells"][cid]["value"], row["cells"][cid]["threshold"],
                             row["cells"][cid]["direction"]) for row in payload["rows"]],
                     -CLIP, CLIP)
        ax.plot(layers, ys, marker="o", markersize=3, linewidth=1.2, label=cid,
                color=colours[(2 * i) % 20 + (2 * i) // 20],
                linestyle="-" if i % 2 == 0 else "--")
    for layer in payload["all_pass_layers"]:
        ax.axvline(layer, color="#2a7a2a", linestyle=":", linewidth=1.5)
    ax.axvline(payload["analysis_layer"], color="#999", linestyle="--", linewidth=0.8)
    ax.set_ylim(-CLIP * 1.05, CLIP * 1.05)
    ax.set_xlabel("layer (dotted green: every row passes; dashed grey: registry layer)")
    ax.set_ylabel(f"(value - threshold) / |threshold|\n(passing side up; clipped at +-{CLIP:g})")
    ax.set_title(f"Layer sweep: {payload['model']}")
    ax.set_xticks(layers)
    ax.legend(fontsize=7, ncol=2, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return fig
