"""The stimuli lock: pinned sha256 of every canonical stimulus list and of each entry.

`verify_stimuli()` compares the current lists (pipeline.inputs.stimuli.canonical_lists) with
data/stimuli.lock.json and names the list, index and text of every changed entry. Re-pin on
purpose with

    python -m pipeline.inputs.stimuli_lock --write-lock
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pipeline import DATA_DIR
from pipeline.inputs.stimuli import (
    _check_strings,
    _compact_json,
    _display,
    _field,
    _preview,
    _read_json,
    _str_tuple,
    canonical_lists,
    list_digest,
)

LOCK_PATH = DATA_DIR / "stimuli.lock.json"
REPIN_COMMAND = "python -m pipeline.inputs.stimuli_lock --write-lock"


class StimuliChanged(ValueError):
    """The stimuli differ from the pinned lock file; `problems` lists each difference."""

    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.problems = tuple(problems)


def entry_digests(items: Iterable[str]) -> list[str]:
    """sha256 of each entry's canonical JSON encoding."""
    entries = list(items)
    _check_strings(entries)
    return [hashlib.sha256(_compact_json(e).encode("utf-8")).hexdigest() for e in entries]


def build_lock(lists: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    return {
        "_comment": (
            "Pinned sha256 of every canonical stimulus list (pipeline.inputs.stimuli.canonical_lists) "
            f"and of each entry. Generated; re-pin only on purpose with `{REPIN_COMMAND}`."
        ),
        "format": 1,
        "lists": {
            name: {
                "count": len(items),
                "sha256": list_digest(items),
                "entries": entry_digests(items),
            }
            for name, items in sorted(lists.items())
        },
    }


def write_lock(path: Path = LOCK_PATH, lists: Mapping[str, Sequence[str]] | None = None) -> Path:
    """Pin the current stimuli (or `lists`) to `path`."""
    lock = build_lock(canonical_lists() if lists is None else lists)
    path.write_text(json.dumps(lock, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def _read_lock(path: Path) -> dict[str, dict[str, Any]]:
    return _check_lock(_read_json(path), path)


def _check_lock(doc: Mapping[str, Any], path: Path) -> dict[str, dict[str, Any]]:
    lists = _field(doc, "lists", path, "", dict)
    for name, pinned in lists.items():
        _field(pinned, "count", path, f"lists.{name}", int)
        _field(pinned, "sha256", path, f"lists.{name}", str)
        _str_tuple(pinned, "entries", path, f"lists.{name}")
    return lists


_MAX_PROBLEMS_PER_LIST = 10


def _short(digest: str) -> str:
    return digest[:12] + "..."


def _diff_list(name: str, pinned: Mapping[str, Any], items: Sequence[str]) -> list[str]:
    old: list[str] = list(pinned["entries"])
    new = entry_digests(items)
    if list_digest(items) == pinned["sha256"] and old == new and pinned["count"] == len(items):
        return []
    problems = []
    if len(old) != len(new):
        problems.append(
            f"{name}: {len(old)} entries pinned, now {len(new)} ({len(new) - len(old):+d})"
        )
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            continue
        if op == "replace" and i2 - i1 == j2 - j1:
            for i, j in zip(range(i1, i2), range(j1, j2), strict=True):
                problems.append(
                    f"{name}[{j}] changed: now {_preview(items[j], 120)} "
                    f"(pinned sha256 {_short(old[i])}, now {_short(new[j])})"
                )
            continue
        for i in range(i1, i2):
            problems.append(f"{name}[{i}] removed (pinned sha256 {_short(old[i])})")
        for j in range(j1, j2):
            problems.append(
                f"{name}[{j}] added: {_preview(items[j], 120)} (sha256 {_short(new[j])})"
            )
    if not problems:
        problems.append(
            f"{name}: entries match the lock but its list sha256/count do not; the lock file "
            "was edited by hand"
        )
    if len(problems) > _MAX_PROBLEMS_PER_LIST:
        hidden = len(problems) - _MAX_PROBLEMS_PER_LIST
        problems = problems[:_MAX_PROBLEMS_PER_LIST] + [f"{name}: ... and {hidden} more"]
    return problems


def verify_stimuli(
    lists: Mapping[str, Sequence[str]] | None = None,
    lock: Mapping[str, Any] | Path | None = None,
) -> None:
    """Raise StimuliChanged naming every list entry that differs from the pinned lock.

    `lists` defaults to canonical_lists(); `lock` to data/stimuli.lock.json (a path, or a mapping
    shaped like build_lock()'s output).
    """
    current = canonical_lists() if lists is None else lists
    if lock is None or isinstance(lock, Path):
        pinned_lists = _read_lock(LOCK_PATH if lock is None else lock)
    else:
        pinned_lists = _check_lock(lock, Path("<lock mapping>"))
    problems: list[str] = []
    for name in sorted(set(pinned_lists) | set(current)):
        if name not in current:
            problems.append(f"{name}: pinned in the lock but no longer a canonical list")
        elif name not in pinned_lists:
            problems.append(f"{name}: a canonical list that the lock does not pin")
        else:
            problems.extend(_diff_list(name, pinned_lists[name], current[name]))
    if not problems:
        return
    if len(problems) == 1:
        message = f"{problems[0]}; if this change is intended, re-pin with `{REPIN_COMMAND}`"
    else:
        message = (
            f"{len(problems)} stimuli differences from the lock:\n  "
            + "\n  ".join(problems)
            + f"\nif these changes are intended, re-pin with `{REPIN_COMMAND}`"
        )
    raise StimuliChanged(message, problems)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.inputs.stimuli", description="Pin or verify the stimulus lock file."
    )
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--write-lock", action="store_true", help=f"re-pin {_display(LOCK_PATH)}")
    action.add_argument("--verify", action="store_true", help="check the stimuli against it")
    args = parser.parse_args(argv)
    if args.write_lock:
        path = write_lock()
        print(f"pinned {len(canonical_lists())} stimulus lists to {_display(path)}")
        return 0
    try:
        verify_stimuli()
    except StimuliChanged as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"stimuli match {_display(LOCK_PATH)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
