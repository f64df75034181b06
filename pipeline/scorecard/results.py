"""Criterion specs (`data/criteria.toml`), results, and the scorecard's text renderings.

A `CriterionResult` carries its value, the rule it was judged by, a 95% interval with whether
the verdict survives it, the reference and paper values and an explanation, so that a failing
line reads like a sentence and an "unscored" row is explicit, never missing.
"""

from __future__ import annotations

import json
import math
import operator
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from pipeline import DATA_DIR

CRITERIA_PATH = DATA_DIR / "criteria.toml"
_OPS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}
_FIELDS = {"claim", "statistic", "threshold", "direction", "reference", "reference_note", "paper",
           "paper_note", "unit", "version", "ci_must_clear"}
_REQUIRED = {"claim", "statistic", "threshold", "direction", "unit", "version"}


@dataclass(frozen=True)
class CriterionSpec:
    id: str
    claim: str
    statistic: str
    threshold: float
    direction: str
    unit: str
    version: int
    reference: float | None = None
    reference_note: str | None = None
    paper: float | None = None
    paper_note: str | None = None
    ci_must_clear: bool = False

    def passes(self, value: float) -> bool:
        return _passes(value, self.direction, self.threshold)

    @property
    def higher_is_better(self) -> bool:
        return self.direction in (">=", ">")


def parse_criteria(path: Path) -> dict[str, CriterionSpec]:
    raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    specs = {}
    for cid, entry in raw.items():
        unknown = set(entry) - _FIELDS
        missing = _REQUIRED - set(entry)
        if unknown or missing:
            raise ValueError(
                f"{path}: criterion [{cid}]: unknown fields {sorted(unknown)}, missing fields "
                f"{sorted(missing)}; allowed: {sorted(_FIELDS)}"
            )
        if entry["direction"] not in _OPS:
            raise ValueError(
                f"{path}: criterion [{cid}], field 'direction': {entry['direction']!r}; "
                f"expected one of {sorted(_OPS)}"
            )
        specs[cid] = CriterionSpec(id=cid, **entry)
    return specs


@cache
def load_criteria(path: Path = CRITERIA_PATH) -> dict[str, CriterionSpec]:
    return parse_criteria(path)


@dataclass(frozen=True)
class CriterionResult:
    id: str
    model: str
    claim: str
    value: float
    threshold: float
    direction: str
    passed: bool
    ci: tuple[float, float]
    ci_verdict: str  # "holds", "fails" or "straddles": the verdict at both interval ends
    reference: float | None
    reference_note: str | None
    paper: float | None
    paper_note: str | None
    explanation: str
    value_text: str  # e.g. "6/12" or "0.84"
    unit: str
    method: str = ""
    harness_authored: str = ""  # non-empty when part of the stimuli is ours, not the paper's
    details: dict[str, Any] = field(default_factory=dict)
    figures: tuple[str, ...] = ()  # file names under reports/figures
    # Non-empty when what the claim presupposes does not hold (V8-V11 on ratings that carry no
    # preference): the row fails whatever its value, and this says why.
    unmet_precondition: str = ""
    # Non-empty when the row was never judged: `error` says what crashed (or that the row never
    # ran), `skipped` why it was skipped (missing weights without --strict). Such a row has no
    # value; it is written so that every selected row is in the scorecard.
    error: str = ""
    skipped: str = ""

    @property
    def threshold_met(self) -> bool:
        return _passes(self.value, self.direction, self.threshold)

    @property
    def verdict(self) -> str:
        if self.error:
            return "ERROR"
        if self.skipped:
            return "SKIP"
        return "PASS" if self.passed else "FAIL"

    def interval_text(self) -> str:
        low, high = self.ci
        if any(math.isnan(x) for x in self.ci):
            return "n/a"
        return f"[{_fmt(low)}, {_fmt(high)}]"

    def sentence(self) -> str:
        """The result as one line, e.g. 'V3 ... 6/12 < 8 on llama31_8b; happy landed on proud'."""
        if self.error or self.skipped:
            return f"{self.id} {self.claim}: {self.verdict} on {self.model}: " \
                   f"{self.error or self.skipped}"
        relation = self.direction if self.threshold_met else _negate(self.direction)
        ref = f"; reference {self.reference_note or _fmt(self.reference)}" if (
            self.reference is not None or self.reference_note) else ""
        if self.unmet_precondition:
            # The interval verdict is the value's against the threshold, not the row's.
            verdict = (f"FAIL, precondition unmet: {self.unmet_precondition}; 95% CI "
                       f"{self.interval_text()} over {self.unit}, the threshold verdict "
                       f"{self.ci_verdict} across it")
        else:
            verdict = (f"{self.verdict}; 95% CI {self.interval_text()} over {self.unit}, "
                       f"verdict {self.ci_verdict} across it")
        return (
            f"{self.id} {self.claim}: {self.value_text} {relation} {_fmt(self.threshold)} on "
            f"{self.model} ({verdict}{ref}). {self.explanation}"
        )

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["ci"] = [_json_float(x) for x in self.ci]
        data["value"] = _json_float(self.value)
        data["verdict"] = self.verdict
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CriterionResult:
        data = {k: v for k, v in data.items() if k != "verdict"}
        data["ci"] = tuple(math.nan if x is None else x for x in data["ci"])
        data["value"] = math.nan if data["value"] is None else data["value"]
        data["figures"] = tuple(data.get("figures", ()))
        return cls(**data)


def _json_float(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else x


def _passes(value: float | None, direction: str, threshold: float) -> bool:
    return value is not None and not math.isnan(value) and _OPS[direction](value, threshold)


def _negate(direction: str) -> str:
    return {">=": "<", ">": "<=", "<=": ">", "<": ">="}[direction]


def _fmt(x: float | None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if float(x).is_integer():
        return str(int(x))
    return f"{x:.3g}" if abs(x) < 10 else f"{x:.0f}"


def count_threshold(spec_threshold: float, reference_n: int, n: int) -> float:
    """A count threshold set for `reference_n` items, read as the same fraction of `n`.

    Never above the spec's own threshold, so a run with the reference n (or more) is judged
    exactly as the spec says; with fewer items the bar is the same share, rounded up.
    """
    return float(min(spec_threshold, math.ceil(spec_threshold / reference_n * n - 1e-9)))


def judge(
    criterion_id: str,
    model: str,
    value: float,
    ci: tuple[float, float],
    *,
    explanation: str,
    value_text: str | None = None,
    method: str = "",
    harness_authored: str = "",
    details: dict[str, Any] | None = None,
    figures: Sequence[str] = (),
    unmet_precondition: str = "",
    threshold: float | None = None,
) -> CriterionResult:
    """Judge a measured value against its spec; the interval decides `ci_verdict`.

    `threshold` replaces the spec's where the row's n differs from the one it was set for
    (V11 on fewer steered emotions: `count_threshold`); it is reported in the row.

    `unmet_precondition`, when non-empty, fails the row whatever its value (the interval
    verdict still describes the value against the threshold).
    """
    spec = load_criteria()[criterion_id]
    if threshold is not None:
        from dataclasses import replace

        spec = replace(spec, threshold=float(threshold))
    low, high = ci
    passed = spec.passes(value)
    if any(math.isnan(x) for x in (low, high)):
        ci_verdict = "unknown"
    else:
        ends = {spec.passes(low), spec.passes(high)}
        ci_verdict = "straddles" if len(ends) == 2 else ("holds" if ends == {passed} else "fails")
    if spec.ci_must_clear:
        # B1/B2: a rate difference counts only when its whole interval clears the threshold.
        passed = passed and not math.isnan(low) and spec.passes(low)
    if unmet_precondition:
        passed = False
    return CriterionResult(
        id=criterion_id,
        model=model,
        claim=spec.claim,
        value=float(value),
        threshold=spec.threshold,
        direction=spec.direction,
        passed=bool(passed),
        ci=(float(low), float(high)),
        ci_verdict=ci_verdict,
        reference=spec.reference,
        reference_note=spec.reference_note,
        paper=spec.paper,
        paper_note=spec.paper_note,
        explanation=explanation,
        value_text=value_text if value_text is not None else _fmt(value),
        unit=spec.unit,
        method=method,
        harness_authored=harness_authored,
        details=details or {},
        figures=tuple(figures),
        unmet_precondition=unmet_precondition,
    )


def unjudged(criterion_id: str, model: str, *, error: str = "",
             skipped: str = "") -> CriterionResult:
    """The row of a criterion that was never judged: it crashed, never ran, or was skipped."""
    if bool(error) == bool(skipped):
        raise ValueError("unjudged: give exactly one of error= or skipped=")
    spec = load_criteria().get(criterion_id)
    nan = math.nan
    return CriterionResult(
        id=criterion_id, model=model, claim=spec.claim if spec else "(unknown criterion)",
        value=nan, threshold=spec.threshold if spec else nan,
        direction=spec.direction if spec else ">=", passed=False, ci=(nan, nan),
        ci_verdict="unknown", reference=spec.reference if spec else None,
        reference_note=spec.reference_note if spec else None,
        paper=spec.paper if spec else None, paper_note=spec.paper_note if spec else None,
        explanation="", value_text="n/a", unit=spec.unit if spec else "", error=error,
        skipped=skipped)


COLUMNS = ("criterion", "model", "value", "threshold", "interval", "reference", "paper",
           "embedding null", "verdict")


def null_cell(result: CriterionResult) -> str:
    """The "embedding null" cell (issue 16, pipeline.scorecard.rows_null): the row's value at
    the token embeddings and whether the real value beats it; '' for a row without a null."""
    found = result.details.get("embedding_null")
    if not found:
        return ""
    beats = found.get("beats")
    shown = found.get("value_text", "n/a")
    if beats is None:
        return f"{shown} (no comparison)"
    return f"{shown} ({'beaten' if beats else 'not beaten'})"


def table_rows(results: Iterable[tuple[CriterionResult, str]]) -> list[list[str]]:
    """(result, outcome) pairs -> rows of COLUMNS; outcome is pytest's (passed/failed/xfailed)."""
    rows = []
    for result, outcome in results:
        broken = bool((result.details.get("coherence") or {}).get("broken"))
        qualifiers = [q for q, on in (("xfail", outcome == "xfailed"),
                                      ("precondition", bool(result.unmet_precondition)),
                                      ("steered model broken", broken)) if on]
        verdict = result.verdict + (f" ({', '.join(qualifiers)})" if qualifiers else "")
        if result.harness_authored:
            verdict += " *"
        rows.append([
            result.id,
            result.model,
            result.value_text,
            f"{result.direction} {_fmt(result.threshold)}",
            result.interval_text() + f" ({result.ci_verdict})",
            result.reference_note or _fmt(result.reference),
            result.paper_note or _fmt(result.paper),
            null_cell(result),
            verdict,
        ])
    return rows


def render_text_table(rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [list(COLUMNS), *rows]) for i in range(len(COLUMNS))]
    line = "  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(out)


def render_markdown(rows: list[list[str]], notes: Sequence[str] = ()) -> str:
    def esc(text: str) -> str:
        return str(text).replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")

    out = ["# Replication scorecard", "", "| " + " | ".join(COLUMNS) + " |",
           "|" + "---|" * len(COLUMNS)]
    out += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    if notes:
        out += [""] + [f"- {esc(n)}" for n in notes]
    return "\n".join(out) + "\n"


def write_json(path: Path, results: Iterable[tuple[CriterionResult, str]],
               meta: dict[str, Any], layer_sweeps: dict[str, Any] | None = None) -> None:
    from pipeline.inputs.artifacts import atomic_write_text

    payload = {"meta": meta,
               "results": [{**r.to_json(), "pytest_outcome": o} for r, o in results]}
    if layer_sweeps:  # only a --layers run has them; the default JSON keeps its shape
        payload["layer_sweep"] = layer_sweeps
    atomic_write_text(path, json.dumps(payload, indent=2, default=str))
