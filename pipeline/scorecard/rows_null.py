"""The embedding null beside a row (issue 16): the row's value when its inputs come from the
token embeddings, before any block runs, and whether the real value beats it.

The null's value is computed by the row's own function (`null_row` calls it on the null's
inputs: `pipeline.measures.results.EmbeddingNull`), so the two values are the same statistic.
"Beats" follows the row's direction in data/criteria.toml: higher is better for counts, |r|
and scores, lower for V4's mean rank; a tie does not beat. The verdict never changes: the
sentence is appended to the explanation, and `details["embedding_null"]` carries the numbers
(the scorecard's "embedding null" column reads it).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from pipeline.measures.results import EmbeddingNull
from pipeline.scorecard.results import CriterionResult
from pipeline.scorecard.rows_controls import with_note

WHAT = "the same statistic from vectors built at the token embeddings, before any block"
# Where a row's null reads something other than the real row's position, and why.
READ_AT = {c: (", read on the mean embedding of each scenario's tokens, as the read "
               "position is the same template token for every scenario")
           for c in ("V3", "V4")}


def null_row(null: EmbeddingNull | str, make: Callable[[EmbeddingNull], CriterionResult]
             ) -> tuple[CriterionResult | None, str]:
    """(the row computed on the null's inputs, '') or (None, why it cannot be): `null` is the
    stage's result, or the sentence saying why the model has no embedding null. An exception
    in the row function is a bug and propagates: the row errors and the run fails, as for any
    row (only a computed verdict may be an expected failure)."""
    if isinstance(null, str):
        return None, null
    return make(null), ""


def beats_null(real: float, null: float, higher_is_better: bool) -> bool | None:
    """Whether `real` is strictly better than `null` in the row's direction; None when either
    is not a number."""
    if not (math.isfinite(real) and math.isfinite(null)):
        return None
    return real > null if higher_is_better else real < null


def embedding_null_note(real: CriterionResult, null: CriterionResult | None,
                        reason: str = "") -> tuple[str, dict]:
    """The sentence and details the null adds to `real`."""
    if null is None or null.error or null.skipped:
        why = reason or (null and (null.error or null.skipped)) or "no null row"
        return (f" Embedding null: cannot be computed ({why}); beats the null: n/a."), {
            "embedding_null": {"value": None, "value_text": "n/a", "beats": None,
                               "reason": why}}
    higher = real.direction in (">=", ">")
    beats = beats_null(real.value, null.value, higher)
    answer = {True: "yes", False: "no", None: "n/a (a value is not a number)"}[beats]
    better = "higher" if higher else "lower"
    return (f" Embedding null ({WHAT}{READ_AT.get(real.id, '')}): {null.value_text}; "
            f"beats the null: {answer} "
            f"({better} is better)."), {
        "embedding_null": {"value": null.value if math.isfinite(null.value) else None,
                           "value_text": null.value_text, "beats": beats,
                           "higher_is_better": higher, "explanation": null.explanation}}


def with_embedding_null(result: CriterionResult, null: CriterionResult | None,
                        reason: str = "") -> CriterionResult:
    """`result` with the null's sentence and details; its verdict unchanged."""
    return with_note(result, *embedding_null_note(result, null, reason))

