"""The scorecard's report files and terminal lines, from the collected (row, outcome) pairs.

The renderers themselves live beside their format (results.py: text table, Markdown, JSON;
html.py; sweep.py); this module puts each report together, so the pytest glue
(fixtures/scorecard.py) only collects the rows and hands them here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.inputs.artifacts import atomic_write_text
from pipeline.measures.coherence import BROKEN_RATIO
from pipeline.scorecard.results import (
    COLUMNS,
    CriterionResult,
    render_markdown,
    render_text_table,
    table_rows,
    write_json,
)
from pipeline.scorecard.sweep import render_sweep_markdown

COHERENCE_NOTE = (f"* Steering coherence: the steered model's perplexity over the unsteered "
                  f"model's on 16 held-out neutral texts, harness-authored "
                  f"(data/harness/neutral_texts.toml), at each row's layers, strengths and "
                  f"directions; above x{BROKEN_RATIO:g} the steered model is broken (the "
                  f"verdict stands, the row says so).")
Results = list[tuple[CriterionResult, str]]  # (row, pytest outcome: passed/failed/xfailed/...)


def report_notes(results: Results) -> list[str]:
    notes = ["Interval: 95% percentile bootstrap over the criterion's natural unit; '(holds)' "
             "means the verdict is the same at both ends of it."]
    for result, _ in results:
        if result.harness_authored:
            notes.append(f"* {result.id} ({result.model}): {result.harness_authored}")
    coherent = [(r, r.details["coherence"]) for r, _ in results
                if (r.details.get("coherence") or {}).get("note")]
    if coherent:  # steering coherence beside each steered row (issue 16)
        notes.append(COHERENCE_NOTE)
        notes += [f"{r.id} ({r.model}): {c['note']}" for r, c in coherent]
    # Once per model and layer, however many rows read that layer's vectors.
    notes += [f"* Denoising ({r.model}): {entry['note']}." for r, _ in results
              for entry in r.details.get("denoising") or () if entry.get("note")]
    return list(dict.fromkeys(notes))


def terminal_lines(results: Results) -> list[str]:
    """The table, the notes, and one sentence for every row that did not pass."""
    lines = [render_text_table(table_rows(results))] if results else []
    lines += report_notes(results)
    lines += [f"- {result.sentence()}" + (" [expected failure]" if outcome == "xfailed" else "")
              for result, outcome in results if not result.passed]
    return lines


def write_report_files(directory: Path, results: Results, sweeps: dict[str, dict],
                       models: dict[str, Any]) -> None:
    """scorecard.json and scorecard.md (each with the layer sweeps) under `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    meta = {"models": models, "columns": list(COLUMNS)}
    write_json(directory / "scorecard.json", results, meta, layer_sweeps=sweeps)
    markdown = render_markdown(table_rows(results), report_notes(results))
    markdown += "".join("\n" + render_sweep_markdown(p) for p in sweeps.values())
    atomic_write_text(directory / "scorecard.md", markdown)
