"""The shipped tiny model: deterministic rebuild, safetensors only, Llama-3-shaped tokenizer."""

from __future__ import annotations

import json

import pytest
import tokenizers
import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

from pipeline.testmodels.tiny import (
    BOS,
    END_OF_TEXT,
    EOT,
    PAD,
    SPECIAL_TOKENS,
    TINY_MODEL_DIR,
    build_tiny_model,
)

BUILD_FILES = (
    "model.safetensors",
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "chat_template.jinja",
)


@pytest.fixture(scope="module")
def built_twice(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    return build_tiny_model(root / "first"), build_tiny_model(root / "second")


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(TINY_MODEL_DIR)


def test_building_twice_gives_byte_identical_files(built_twice):
    first, second = built_twice
    for name in (*BUILD_FILES, "provenance.json"):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_shipped_model_is_what_the_build_command_produces(built_twice):
    provenance = json.loads((TINY_MODEL_DIR / "provenance.json").read_text())
    here = {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
    }
    if provenance["versions"] != here:
        pytest.skip(f"shipped model was built with {provenance['versions']}, running {here}")
    fresh, _ = built_twice
    for name in (*BUILD_FILES, "provenance.json"):
        assert (fresh / name).read_bytes() == (TINY_MODEL_DIR / name).read_bytes(), (
            f"data/models/tiny/{name} is stale; rebuild with "
            "`python -m pipeline.testmodels.tiny --out data/models/tiny`"
        )


def test_shipped_model_is_small_and_stored_as_safetensors_only():
    names = {path.name for path in TINY_MODEL_DIR.iterdir()}
    assert "model.safetensors" in names
    assert not {name for name in names if name.endswith((".bin", ".pt", ".pth", ".ckpt"))}
    size = sum(path.stat().st_size for path in TINY_MODEL_DIR.iterdir())
    assert size < 2 * 1024 * 1024


def test_provenance_records_seed_corpus_hash_and_versions():
    provenance = json.loads((TINY_MODEL_DIR / "provenance.json").read_text())
    assert provenance["seed"] == 0
    assert len(provenance["corpus_sha256"]) == 64
    assert provenance["config"]["hidden_size"] == 64
    assert set(provenance["versions"]) == {"torch", "transformers", "tokenizers"}


def test_model_config_is_the_tiny_llama_with_special_token_ids(tokenizer):
    model = AutoModelForCausalLM.from_pretrained(TINY_MODEL_DIR, use_safetensors=True)
    config = model.config
    assert type(model).__name__ == "LlamaForCausalLM"
    assert (config.hidden_size, config.num_hidden_layers) == (64, 4)
    assert (config.num_attention_heads, config.num_key_value_heads) == (4, 2)
    assert config.intermediate_size == 128
    assert config.tie_word_embeddings is False
    assert config.vocab_size == len(tokenizer)
    ids = tokenizer.convert_tokens_to_ids
    assert config.bos_token_id == ids(BOS)
    assert config.pad_token_id == ids(PAD)
    assert list(config.eos_token_id) == [ids(EOT), ids(END_OF_TEXT)]
    assert list(model.generation_config.eos_token_id) == [ids(EOT), ids(END_OF_TEXT)]


def test_tokenizer_has_llama3_special_tokens_and_no_baked_in_left_padding(tokenizer):
    for token in SPECIAL_TOKENS:
        assert tokenizer.convert_tokens_to_ids(token) != tokenizer.unk_token_id
        assert len(tokenizer(token, add_special_tokens=False)["input_ids"]) == 1
    assert tokenizer.bos_token == BOS
    assert tokenizer.eos_token == EOT
    assert tokenizer.pad_token == PAD
    assert tokenizer.padding_side == "right"


def test_tokenizer_adds_exactly_one_bos_only_when_asked(tokenizer):
    with_special = tokenizer("How would you feel about that?")["input_ids"]
    without = tokenizer("How would you feel about that?", add_special_tokens=False)["input_ids"]
    assert with_special == [tokenizer.bos_token_id, *without]
    assert tokenizer.bos_token_id not in without


def test_tokenizer_round_trips_text_outside_its_training_corpus(tokenizer):
    text = "Zürich naïve café — 😀 \t tabs\r\nand 中文"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == text
    assert tokenizer.unk_token_id is None or tokenizer.unk_token_id not in ids


def test_chat_template_renders_llama3_headers(tokenizer):
    text = tokenizer.apply_chat_template(
        [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}],
        add_generation_prompt=True,
        tokenize=False,
    )
    assert text == (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nU<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )


def test_build_refuses_to_replace_a_folder_that_is_not_a_tiny_model(tmp_path):
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not a tiny model folder"):
        build_tiny_model(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "keep me"
