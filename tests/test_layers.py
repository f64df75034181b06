"""The library's layers (docs/LAYERS.md): the pure side never imports a model library.

`pipeline.inputs` and `pipeline.measures` are standard library, numpy and scipy; the scorecard
(results, rows, renderers) and the criteria modules read cached results through
`pipeline.measures.results`, so importing them must not import torch or transformers. Each
check runs in a fresh interpreter, since this test process has imported torch already.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import REPO_ROOT

PIPELINE = REPO_ROOT / "pipeline"
HEAVY = ("torch", "transformers")


def _modules(package: str) -> list[str]:
    folder = PIPELINE / package
    return sorted(f"pipeline.{package}.{p.stem}" for p in folder.glob("*.py")
                  if p.stem != "__init__")


PURE_MODULES = [*_modules("inputs"), *_modules("measures"), *_modules("scorecard")]
CRITERIA = sorted(p.name for p in (REPO_ROOT / "criteria").glob("test_*.py"))

_PROBE = """
import importlib, importlib.util, json, sys
for target in json.loads(sys.argv[1]):
    if target.endswith(".py"):
        spec = importlib.util.spec_from_file_location("criterion_under_test", target)
        spec.loader.exec_module(importlib.util.module_from_spec(spec))
    else:
        importlib.import_module(target)
print(json.dumps(sorted(m for m in ("torch", "transformers") if m in sys.modules)))
"""


def _heavy_after_importing(targets: list[str]) -> list[str]:
    result = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(targets)], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _culprits(targets: list[str]) -> list[str]:
    """Importing all of `targets` in one interpreter is quick; only when that pulls in a model
    library is each one imported alone, to name the ones that do."""
    if not _heavy_after_importing(targets):
        return []
    return [target for target in targets if _heavy_after_importing([target])]


def test_the_pure_layers_import_no_model_library():
    culprits = _culprits(PURE_MODULES)
    assert not culprits, (
        f"importing {', '.join(culprits)} imports {' or '.join(HEAVY)}; they are on the pure side "
        "of the layers (docs/LAYERS.md): move what needs a model into pipeline/model or "
        "pipeline/stages")


def test_the_criteria_modules_import_no_model_library():
    culprits = _culprits([str(REPO_ROOT / "criteria" / name) for name in CRITERIA])
    assert not culprits, (
        f"importing {', '.join(culprits)} imports torch or transformers; a criterion reads its "
        "results from fixtures and pipeline.measures.results, never from a stage module")


# Which layer may import which: a layer imports only itself and the layers listed here.
ALLOWED = {
    "inputs": {"inputs"},
    "measures": {"inputs", "measures"},
    "scorecard": {"inputs", "measures", "scorecard"},
    "model": {"inputs", "measures", "model"},
    "stages": {"inputs", "measures", "model", "stages"},
    "testmodels": {"inputs", "measures", "model", "testmodels"},
}


def _imported_layers(path: Path) -> set[str]:
    layers = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = ([node.module or ""] if isinstance(node, ast.ImportFrom)
                 else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
        for name in names:
            parts = name.split(".")
            if parts[0] == "pipeline" and len(parts) > 1:
                layers.add(parts[1])
    return layers


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_layer_imports_only_the_layers_below_it(layer):
    wrong = {}
    for path in sorted((PIPELINE / layer).rglob("*.py")):
        bad = _imported_layers(path) - ALLOWED[layer]
        if bad:
            wrong[str(path.relative_to(REPO_ROOT))] = sorted(bad)
    assert not wrong, f"{layer} may import only {sorted(ALLOWED[layer])}; found {wrong}"


def test_every_module_is_in_a_layer():
    loose = sorted(p.name for p in PIPELINE.glob("*.py")
                   if p.name not in ("__init__.py", "__main__.py"))
    assert not loose, (f"pipeline/{loose[0]} sits outside the layers; move it into one of "
                       f"{sorted(ALLOWED)} (docs/LAYERS.md)")
