"""Under `pytest -n N --dist loadgroup`, every test of one model runs in one xdist worker."""

import json
import os
import subprocess
import sys
from collections import defaultdict

from fixtures.models import model_params
from pipeline import REPO_ROOT
from pipeline.inputs.registry import load_registry

_CONFTEST = """
from pipeline.inputs.registry import load_registry

pytest_plugins = ["fixtures.options", "fixtures.models"]


def pytest_configure(config):
    for spec in load_registry().values():
        for marker in spec.markers:
            config.addinivalue_line("markers", marker)
"""

_TESTS = """
import json
import os

import pytest


@pytest.mark.parametrize("case", range(3))
def test_records_its_worker(model_spec, case):
    worker = os.environ.get("PYTEST_XDIST_WORKER", "controller")
    with open(os.path.join(os.environ["GROUP_LOG"], worker + ".jsonl"), "a") as log:
        log.write(json.dumps({"model": model_spec.name, "case": case}) + "\\n")
"""


def test_every_model_parameter_carries_an_xdist_group_of_its_own_name():
    for param in model_params():
        groups = [mark.kwargs["name"] for mark in param.marks if mark.name == "xdist_group"]
        assert groups == [param.id], param.id


def test_loadgroup_keeps_each_models_tests_in_one_worker(tmp_path):
    (tmp_path / "conftest.py").write_text(_CONFTEST)
    (tmp_path / "test_groups.py").write_text(_TESTS)
    log = tmp_path / "log"
    log.mkdir()
    env = {**os.environ, "GROUP_LOG": str(log), "PYTHONPATH": str(REPO_ROOT),
           "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-v",
         "-p", "no:cacheprovider", "-p", "no:randomly", "test_groups.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    # The scheduler groups by the "@group" suffix of each node id: test_...[tiny-0]@tiny
    assert "[tiny-0]@tiny " in result.stdout and "[llama31_8b-2]@llama31_8b " in result.stdout

    workers_of = defaultdict(set)
    ran = 0
    for path in log.glob("*.jsonl"):
        for line in path.read_text().splitlines():
            workers_of[json.loads(line)["model"]].add(path.stem)
            ran += 1
    assert set(workers_of) == set(load_registry())
    assert ran == 3 * len(load_registry())
    assert all(len(workers) == 1 for workers in workers_of.values()), dict(workers_of)
    assert set().union(*workers_of.values()) == {"gw0", "gw1"}  # the models were shared out
