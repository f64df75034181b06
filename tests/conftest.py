"""Shared helpers for unit tests: the shipped tiny model, loaded once per session."""

import pytest

from pipeline.inputs.registry import get_spec
from pipeline.model.loading import load_model, load_tokenizer, resolve_weights


@pytest.fixture(scope="session")
def tiny_spec():
    return get_spec("tiny")


@pytest.fixture(scope="session")
def tiny_location(tiny_spec):
    return resolve_weights(tiny_spec, {})


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_spec, tiny_location):
    return load_tokenizer(tiny_spec, tiny_location)


@pytest.fixture(scope="session")
def tiny_model(tiny_spec, tiny_location):
    return load_model(tiny_spec, tiny_location, device="cpu")


@pytest.fixture(scope="module")
def tokenizer(tiny_tokenizer):
    return tiny_tokenizer


@pytest.fixture(scope="module")
def model(tiny_model):
    return tiny_model


@pytest.fixture(scope="module", params=["chat", "raw"])
def prompts(request, tokenizer):
    """(format, the 4032 preference prompts of the 64 activities) in both prompt formats."""
    from pipeline.inputs.stimuli import load_activities
    from pipeline.model.ab_pass import build_preference_prompts

    return request.param, build_preference_prompts(tokenizer, load_activities(),
                                                   fmt=request.param, chat_template_args={})


# The three real pretrained tokenizers of issue 12, found through the same environment variables
# that locate their weights (a model directory with tokenizer.json). Skipped when unset, except in
# CI, where a missing tokenizer must fail rather than quietly skip the real-tokenizer checks.
REAL_TOKENIZER_MODELS = ("smollm2_135m", "qwen25_coder_05b", "gemma3_270m")


def real_tokenizer_or_skip(name: str):
    import os
    from pathlib import Path

    from transformers import AutoTokenizer

    variable = f"EMOTION_SCORECARD_MODEL_{name.upper()}"
    directory = os.environ.get(variable)
    if not directory:
        # Fetched with `python -m pipeline fetch-models` (CI: .ci/fetch-real-models): converted
        # in the artifact cache, where the weights resolver finds it.
        from pipeline.inputs.registry import get_spec
        from pipeline.model.loading import WeightsNotFound, resolve_weights

        try:
            directory = str(resolve_weights(get_spec(name), {}).path)
        except WeightsNotFound:
            directory = None
    if not directory:
        # `fetch-models --tokenizer-only` (CI, for the models it runs no scorecard on).
        from pipeline.inputs.artifacts import default_root
        from pipeline.inputs.registry import get_spec
        from pipeline.model.gguf import tokenizer_only_dir

        candidate = tokenizer_only_dir(default_root(), get_spec(name).gguf.sha256)
        directory = str(candidate) if (candidate / "tokenizer.json").is_file() else None
    if not directory:
        message = (f"{variable} is not set and {name} is not fetched; run `python -m pipeline "
                   f"fetch-models {name}` (or with --tokenizer-only) or point {variable} at the converted model directory")
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    if not (Path(directory) / "tokenizer.json").is_file():
        pytest.fail(f"{variable}={directory!r} has no tokenizer.json; point it at a model "
                    "directory")
    return AutoTokenizer.from_pretrained(directory)


@pytest.fixture(scope="session", params=REAL_TOKENIZER_MODELS)
def real_tokenizer(request):
    """(name, tokenizer) for each real model tokenizer."""
    return request.param, real_tokenizer_or_skip(request.param)


@pytest.fixture(scope="session")
def load_real_tokenizer():
    """`load_real_tokenizer(name)`: one fresh real tokenizer, skipped (failed in CI) as above."""
    return real_tokenizer_or_skip
