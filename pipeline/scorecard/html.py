"""The scorecard as HTML, for the pytest-html report: the table, every row in words, the
corpus samples and the layer sweep. Every model-written or row-written string is escaped.

The pytest glue (fixtures/scorecard.py) only collects the results and hands them here.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

from pipeline.scorecard.results import COLUMNS, CriterionResult, table_rows
from pipeline.scorecard.sweep import render_sweep_html


def scorecard_html(results: list[tuple[CriterionResult, str]], notes: list[str],
                   corpora: dict[str, dict], sweeps: dict[str, dict], figure_dir: Path) -> str:
    """The block above pytest-html's own table: results are (row, pytest outcome) pairs."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in COLUMNS)
    body = "".join(
        f'<tr class="{row_class(result, outcome)}">'
        + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>"
        for (result, outcome), row in zip(results, table_rows(results), strict=True)
    )
    sentences = "".join(f"<li>{html.escape(r.sentence())}</li>" for r, _ in results)
    notes_html = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    return (
        STYLE + '<h2>Replication scorecard</h2><table id="scorecard" class="scorecard">'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        f"<h3>Every row in words</h3><ul>{sentences}</ul><ul>{notes_html}</ul>"
        + corpus_html(corpora) + sweeps_html(sweeps, figure_dir)
    )


STYLE = """<style>
table.scorecard { border-collapse: collapse; margin: 8px 0 16px; font-size: 13px; }
table.scorecard th, table.scorecard td { border: 1px solid #bbb; padding: 3px 8px; }
table.scorecard th { background: #eee; }
table.scorecard tr.pass td { background: #e6f4e6; }
table.scorecard tr.fail td { background: #fbe5e5; }
table.scorecard tr.xfail td { background: #fff4d6; }
table.layer-sweep td.pass { background: #e6f4e6; }
table.layer-sweep td.fail { background: #fbe5e5; }
table.layer-sweep tr.allpass td:first-child { font-weight: bold; background: #b9e4b9; }
blockquote.generated { font-family: monospace; white-space: pre-wrap; background: #f6f6f6;
                       border-left: 3px solid #999; padding: 4px 8px; max-width: 1100px; }
</style>"""


def row_class(result: CriterionResult, outcome: str) -> str:
    if outcome == "xfailed":
        return "xfail"
    if result.error:
        return "fail"
    return "pass" if result.passed else "fail"


def corpus_html(corpora: dict[str, dict]) -> str:
    """Corpus counts and sample generations; every model-written character is escaped."""
    if not corpora:
        return ""
    parts = ["<h3>What the story generator wrote</h3>"]
    for model, payload in sorted(corpora.items()):
        counts = ", ".join(f"{html.escape(str(k))}: {html.escape(str(v))}"
                           for k, v in payload["summary"].items())
        parts.append(f"<h4>{html.escape(model)}</h4><p>{counts}</p>")
        for sample in payload["samples"]:
            parts.append(
                f'<blockquote class="generated"><b>{html.escape(sample["emotion"])}</b>: '
                f'{html.escape(sample["text"])}</blockquote>'
            )
    return "".join(parts)


def sweeps_html(sweeps: dict[str, dict], figure_dir: Path) -> str:
    """Each model's layer x criterion table and its plot, embedded so the report stands alone."""
    if not sweeps:
        return ""
    parts = ["<h3>Layer sweep</h3>"]
    for _, payload in sorted(sweeps.items()):
        path = figure_dir / payload.get("figure", "")
        png = base64.b64encode(path.read_bytes()).decode() if path.is_file() else None
        parts.append(render_sweep_html(payload, png))
    return "".join(parts)
