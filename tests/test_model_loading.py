"""Locating weights offline: option, environment, shipped folder, Hugging Face cache."""

import os
import subprocess
import sys

import pytest

from pipeline import REPO_ROOT
from pipeline.inputs.registry import get_spec
from pipeline.model.loading import WeightsNotFound, resolve_weights, weights_fingerprint


def test_importing_the_library_switches_hugging_face_offline():
    code = "import pipeline, os; print(os.environ['HF_HUB_OFFLINE'], os.environ['TRANSFORMERS_OFFLINE'])"
    env = {k: v for k, v in os.environ.items() if not k.endswith("_OFFLINE")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=REPO_ROOT, check=True)
    assert out.stdout.split() == ["1", "1"]


def test_missing_weights_name_what_was_searched_and_how_to_fix(monkeypatch, tmp_path):
    spec = get_spec("llama31_8b")
    monkeypatch.delenv(spec.env_var, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-home"))
    with pytest.raises(WeightsNotFound) as err:
        resolve_weights(spec, {})
    message = str(err.value)
    assert "--model-path llama31_8b=" in message
    assert "EMOTION_SCORECARD_MODEL_LLAMA31_8B" in message
    assert "Hugging Face cache" in message


def test_an_explicit_path_wins_and_a_wrong_one_is_an_error(tmp_path):
    spec = get_spec("tiny")
    shipped = REPO_ROOT / "data" / "models" / "tiny"
    assert resolve_weights(spec, {"tiny": str(shipped)}).source == "option"
    with pytest.raises(WeightsNotFound, match="no config.json"):
        resolve_weights(spec, {"tiny": str(tmp_path)})


def test_the_environment_variable_is_searched(monkeypatch):
    spec = get_spec("tiny")
    monkeypatch.setenv(spec.env_var, str(REPO_ROOT / "data" / "models" / "tiny"))
    assert resolve_weights(spec, {}).source == "env"


def test_pickle_only_weights_are_refused(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"\x80")
    with pytest.raises(WeightsNotFound, match="safetensors only"):
        resolve_weights(get_spec("tiny"), {"tiny": str(tmp_path)})


def test_the_shipped_tiny_model_is_found_without_configuration():
    location = resolve_weights(get_spec("tiny"), {})
    assert location.source == "shipped"
    assert len(weights_fingerprint(location.path)) == 20


def test_the_fingerprint_changes_when_a_weight_byte_changes(tmp_path):
    import shutil

    copy = tmp_path / "tiny"
    shutil.copytree(REPO_ROOT / "data" / "models" / "tiny", copy)
    before = weights_fingerprint(copy)
    weights = copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    assert weights_fingerprint(copy) != before
