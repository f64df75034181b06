"""The model registry: required fields, validation messages, markers kept in sync."""

import configparser
from pathlib import Path

import pytest

from pipeline import REPO_ROOT
from pipeline.inputs.registry import RegistryError, load_registry, parse_registry

GOOD = """
[m]
hf_id = "org/model"
revision = "main"
n_layers = 4
analysis_layer = 2
probe_layers = [2]
steering_layers = [1, 2]
dtype = "float32"
prompt_format = "chat"
read_position = "last_prompt_token"
chat_template_args = {}
trust_remote_code = false
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "models.toml"
    path.write_text(text)
    return path


def test_the_shipped_registry_names_the_required_models():
    specs = load_registry()
    for name in ("llama31_8b", "llama33_70b", "llama32_3b", "qwen3_8b", "gemma3_4b", "tiny"):
        assert name in specs
    assert specs["llama31_8b"].hf_id == "meta-llama/Llama-3.1-8B-Instruct"
    assert specs["llama31_8b"].analysis_layer == 21
    assert specs["llama31_8b"].chat_template_args == {"date_string": "26 Jul 2024"}
    assert specs["qwen3_8b"].chat_template_args == {"enable_thinking": False}
    assert {s.prompt_format for s in specs.values()} == {"chat", "raw"}
    assert all(not s.trust_remote_code for s in specs.values())


def test_every_real_model_reads_about_two_thirds_deep():
    for spec in (s for s in load_registry().values() if {"real", "real_small"} & set(s.groups)):
        assert 0.55 <= spec.analysis_layer / spec.n_layers <= 0.72, spec.name


def test_pytest_ini_registers_one_marker_per_model_and_group():
    ini = configparser.ConfigParser()
    ini.read(REPO_ROOT / "pytest.ini")
    declared = {line.split(":")[0].strip() for line in ini["pytest"]["markers"].splitlines() if line}
    wanted = {m for spec in load_registry().values() for m in spec.markers}
    assert wanted <= declared, f"add to pytest.ini markers: {sorted(wanted - declared)}"


def test_a_valid_entry_parses(tmp_path):
    spec = parse_registry(write(tmp_path, GOOD))["m"]
    assert spec.steering_layers == (1, 2)
    assert spec.markers == ("m",)


def test_an_unknown_key_is_an_error_naming_file_entry_and_field(tmp_path):
    path = write(tmp_path, GOOD + 'colour = "blue"\n')
    with pytest.raises(RegistryError) as err:
        parse_registry(path)
    assert str(path) in str(err.value)
    assert "[m]" in str(err.value) and "'colour'" in str(err.value) and "unknown" in str(err.value)


def test_a_missing_field_is_an_error_naming_file_entry_and_field(tmp_path):
    path = write(tmp_path, GOOD.replace('dtype = "float32"\n', ""))
    with pytest.raises(RegistryError, match=r"models.toml: model \[m\], field 'dtype': missing"):
        parse_registry(path)


def test_a_layer_beyond_the_model_depth_is_rejected(tmp_path):
    path = write(tmp_path, GOOD.replace("steering_layers = [1, 2]", "steering_layers = [1, 4]"))
    with pytest.raises(RegistryError, match="layer 4 is beyond the model's depth"):
        parse_registry(path)


def test_a_wrong_type_names_the_value_and_the_expected_type(tmp_path):
    path = write(tmp_path, GOOD.replace("n_layers = 4", 'n_layers = "4"'))
    with pytest.raises(RegistryError, match=r"field 'n_layers': got '4' \(str\); expected int"):
        parse_registry(path)


def test_an_unknown_prompt_format_is_rejected(tmp_path):
    path = write(tmp_path, GOOD.replace('prompt_format = "chat"', 'prompt_format = "alpaca"'))
    with pytest.raises(RegistryError, match="prompt_format"):
        parse_registry(path)


def test_models_that_cannot_follow_a_rubric_are_judged_by_rules(tmp_path):
    assert parse_registry(write(tmp_path, GOOD))["m"].blackmail_judge == "llm"  # the default
    specs = load_registry()
    for name in ("tiny", "tiny_raw", "toy", "toy_random"):
        assert specs[name].blackmail_judge == "rule", name
    assert all(s.blackmail_judge == "llm" for s in specs.values() if "real" in s.groups)


def test_an_unknown_blackmail_judge_is_rejected(tmp_path):
    path = write(tmp_path, GOOD + 'blackmail_judge = "vibes"\n')
    with pytest.raises(RegistryError, match=r"field 'blackmail_judge': got 'vibes'"):
        parse_registry(path)
