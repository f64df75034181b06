"""Generation backends: the transformers seam is generate_batch; vLLM is optional and isolated."""

import json
import os
import subprocess
import sys
import types
from types import SimpleNamespace

import pytest

from pipeline import REPO_ROOT
from pipeline.inputs.artifacts import ArtifactStore, content_key
from pipeline.inputs.registry import RegistryError, parse_registry
from pipeline.model.backends import BackendUnavailable, get_backend
from pipeline.model.backends.transformers_backend import TransformersBackend
from pipeline.model.generation import Generation, SamplingSettings, generate_batch
from pipeline.model.prompts import render_prompt
from pipeline.model.runtime import ModelRuntime
from pipeline.stages.extraction import StageSettings, stories_stage

USERS = ["Write a story about a calm harbour.", "Write a story about a storm.",
         "Write a story about a lighthouse keeper."]


@pytest.fixture(scope="module")
def prompts(tiny_spec, tiny_tokenizer):
    return [render_prompt(tiny_tokenizer, user, fmt="chat",
                          chat_template_args=tiny_spec.chat_template_args,
                          assistant_prefill="[story 1]\n") for user in USERS]


@pytest.fixture
def tiny_runtime(tiny_spec, tiny_location):
    return ModelRuntime(tiny_spec, tiny_location, device="cpu", scale="smoke")


def test_the_transformers_backend_samples_exactly_what_generate_batch_samples(
        tiny_model, tiny_tokenizer, prompts):
    settings = SamplingSettings(max_new_tokens=12, seed=3)
    direct = generate_batch(tiny_model, tiny_tokenizer, prompts, settings, seed=1234)
    seam = TransformersBackend(tiny_model, tiny_tokenizer).generate(prompts, settings, seed=1234)
    assert seam == [[generation] for generation in direct]
    other = TransformersBackend(tiny_model, tiny_tokenizer).generate(prompts, settings, seed=99)
    assert other != seam  # the seed reaches the sampler


def test_n_samples_per_prompt_are_n_rows_of_one_seeded_batch(tiny_model, tiny_tokenizer,
                                                             prompts):
    settings = SamplingSettings(max_new_tokens=10)
    samples = TransformersBackend(tiny_model, tiny_tokenizer).generate(prompts[:2], settings,
                                                                       seed=7, n=3)
    assert [len(row) for row in samples] == [3, 3]
    repeated = [prompts[0]] * 3 + [prompts[1]] * 3
    assert [g for row in samples for g in row] == generate_batch(
        tiny_model, tiny_tokenizer, repeated, settings, seed=7)
    assert len({g.text for g in samples[0]}) > 1  # independent samples, not one copied
    with pytest.raises(ValueError, match="n = 0 samples per prompt"):
        TransformersBackend(tiny_model, tiny_tokenizer).generate(prompts, settings, 7, n=0)


def test_asking_for_vllm_without_it_installed_names_the_extra_to_install(monkeypatch,
                                                                         tiny_runtime):
    monkeypatch.setitem(sys.modules, "vllm", None)  # makes `import vllm` raise ImportError
    with pytest.raises(BackendUnavailable, match=r"pip install \.\[vllm\]"):
        get_backend("vllm", tiny_runtime)


def test_an_unknown_backend_is_refused_with_the_known_names(tiny_runtime):
    with pytest.raises(ValueError, match="'transformers', 'vllm'"):
        get_backend("tgi", tiny_runtime)
    with pytest.raises(ValueError, match="generation backend 'tgi'"):
        StageSettings(backend="tgi")


def test_tensor_parallel_size_defaults_to_one_and_must_be_positive(tmp_path):
    entry = ('[m]\nhf_id = "org/m"\nrevision = "main"\nn_layers = 4\nanalysis_layer = 2\n'
             'probe_layers = [2]\nsteering_layers = [2]\ndtype = "bfloat16"\n'
             'prompt_format = "chat"\nread_position = "last_prompt_token"\n'
             'chat_template_args = {}\ntrust_remote_code = false\n')
    path = tmp_path / "models.toml"
    path.write_text(entry)
    assert parse_registry(path)["m"].tensor_parallel_size == 1
    path.write_text(entry + "tensor_parallel_size = 4\n")
    assert parse_registry(path)["m"].tensor_parallel_size == 4
    path.write_text(entry + "tensor_parallel_size = 0\n")
    with pytest.raises(RegistryError, match="tensor_parallel_size.*positive number of GPUs"):
        parse_registry(path)


class _FakeVLLM:
    """Records how the backend drives vLLM's documented API; answers with fixed token ids."""

    def __init__(self, tokenizer, stop_id: int):
        self.tokenizer, self.stop_id = tokenizer, stop_id
        self.llm_kwargs: dict = {}
        self.requests: list = []
        self.params: list = []

    def module(self) -> types.ModuleType:
        fake = self
        vllm = types.ModuleType("vllm")
        inputs = types.ModuleType("vllm.inputs")

        class LLM:
            def __init__(self, **kwargs):
                fake.llm_kwargs = kwargs

            def generate(self, requests, sampling_params, use_tqdm=True):
                fake.requests, fake.params = requests, sampling_params
                return [SimpleNamespace(outputs=[fake.sample(i, k, p)
                                                 for k in reversed(range(p.n))])
                        for i, p in enumerate(sampling_params)]

        vllm.LLM = LLM
        vllm.SamplingParams = lambda **kwargs: SimpleNamespace(**kwargs)
        vllm.__version__ = "0.0-fake"
        inputs.TokensPrompt = lambda prompt_token_ids: {"prompt_token_ids": prompt_token_ids}
        vllm.inputs = inputs
        return vllm

    def sample(self, prompt: int, k: int, params) -> SimpleNamespace:
        ids = self.tokenizer(f" a calm sea {prompt} {k}", add_special_tokens=False)["input_ids"]
        if k % 2 == 0:  # even samples stop on the end-of-turn id, odd ones hit the limit
            return SimpleNamespace(index=k, token_ids=ids + [self.stop_id, 7, 7],
                                   finish_reason="stop")
        return SimpleNamespace(index=k, token_ids=ids, finish_reason="length")


@pytest.fixture
def fake_vllm(monkeypatch, tiny_tokenizer):
    fake = _FakeVLLM(tiny_tokenizer, stop_id=4)  # 4 is one of the tiny model's eos ids
    module = fake.module()
    monkeypatch.setitem(sys.modules, "vllm", module)
    monkeypatch.setitem(sys.modules, "vllm.inputs", module.inputs)
    return fake


def test_the_vllm_backend_sends_token_ids_and_decodes_ids_with_the_harness_tokenizer(
        fake_vllm, tiny_runtime, tiny_tokenizer, prompts):
    backend = get_backend("vllm", tiny_runtime)
    kwargs = fake_vllm.llm_kwargs
    assert kwargs["enable_prefix_caching"] is True
    assert kwargs["tensor_parallel_size"] == tiny_runtime.spec.tensor_parallel_size == 1
    assert kwargs["model"] == str(tiny_runtime.location.path)
    assert kwargs["load_format"] == "safetensors" and kwargs["dtype"] == "float32"
    assert kwargs["max_model_len"] == 2048  # the tiny model's window, below the 8192 cap

    settings = SamplingSettings(max_new_tokens=64, temperature=0.8, top_p=0.9)
    out = backend.generate(prompts, settings, seed=1000, n=12)
    assert fake_vllm.requests == [{"prompt_token_ids": p.input_ids} for p in prompts]
    assert [p.n for p in fake_vllm.params] == [12, 12, 12]
    assert [p.seed for p in fake_vllm.params] == [1000, 1012, 1024]  # sample k gets seed + k
    first = fake_vllm.params[0]
    assert (first.temperature, first.top_p, first.max_tokens) == (0.8, 0.9, 64)
    assert first.stop_token_ids == [1, 4] and first.detokenize is False

    assert [len(row) for row in out] == [12, 12, 12]
    sample = out[1][2]  # prompt 1, sample 2: stopped on the eos id, which is not decoded
    ids = tiny_tokenizer(" a calm sea 1 2", add_special_tokens=False)["input_ids"]
    assert sample == Generation(tiny_tokenizer.decode(ids, skip_special_tokens=True), len(ids),
                                True)
    assert out[1][3].finished is False  # sample order follows the index, not arrival
    assert "1 3" in out[1][3].text


def test_the_corpus_stage_keys_and_records_its_backend(monkeypatch, tmp_path, tiny_runtime):
    import pipeline.stages.extraction as stages

    made = []

    class Canned:
        def __init__(self, name):
            self.name = name
            made.append(name)

        def generate(self, prompts, settings, seed, n=1, seeds=None):
            return [[Generation(f"A {self.name} story.", 4, True)] for _ in prompts]

        def describe(self):
            return {"name": self.name}

    monkeypatch.setattr(stages, "get_backend", lambda name, runtime: Canned(name))
    store = ArtifactStore(tmp_path)
    quiet = dict(log=lambda message: None)
    via_hf = stories_stage(tiny_runtime, store, StageSettings(**quiet))
    via_vllm = stories_stage(tiny_runtime, store, StageSettings(backend="vllm", **quiet))
    again = stories_stage(tiny_runtime, store, StageSettings(backend="vllm", **quiet))
    assert via_hf.key != via_vllm.key and again.key == via_vllm.key
    assert made == ["transformers", "vllm"]  # the third call was a cache hit
    assert via_vllm.provenance["inputs"]["backend"] == "vllm"
    assert via_vllm.provenance["result"]["backend"] == {"name": "vllm"}
    assert via_vllm.key == content_key(via_vllm.provenance["inputs"])
    first = json.loads(next(via_vllm.path.glob("items-*.jsonl")).read_text().splitlines()[0])
    assert first["text"] == "A vllm story."


_NO_VLLM = """
import importlib, pkgutil, sys
import pipeline
names = [m.name for m in pkgutil.walk_packages(pipeline.__path__, "pipeline.")]
for name in names:
    importlib.import_module(name)
assert "vllm" not in sys.modules, "vllm was imported"
print(len(names))
"""


def test_importing_every_pipeline_module_never_imports_vllm(tmp_path):
    # A stand-in `vllm` that fails loudly if anything imports it.
    (tmp_path / "vllm").mkdir()
    (tmp_path / "vllm" / "__init__.py").write_text("raise RuntimeError('vllm was imported')\n")
    result = subprocess.run([sys.executable, "-c", _NO_VLLM], cwd=REPO_ROOT, text=True,
                            capture_output=True, timeout=300,
                            env={**os.environ, "PYTHONPATH": f"{tmp_path}:{REPO_ROOT}",
                                 "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert int(result.stdout.split()[-1]) >= 30  # the walk really covered the package


@pytest.mark.gpu
def test_vllm_samples_twelve_reproducible_continuations_per_prompt(tiny_runtime, prompts):
    pytest.importorskip("vllm", reason="the vLLM backend needs `pip install .[vllm]`")
    import torch

    if not torch.cuda.is_available():
        pytest.skip("vLLM needs a CUDA GPU")
    from pipeline.model.backends.vllm_backend import VLLMBackend

    backend = VLLMBackend(tiny_runtime.spec, tiny_runtime.location, tiny_runtime.tokenizer,
                          max_model_len=1024, gpu_memory_utilization=0.2)
    settings = SamplingSettings(max_new_tokens=16)
    first = backend.generate(prompts, settings, seed=5, n=12)
    assert [len(row) for row in first] == [12, 12, 12]
    assert all(0 < g.n_tokens <= 16 for row in first for g in row)
    assert len({g.text for g in first[0]}) > 1
    assert backend.generate(prompts, settings, seed=5, n=12) == first
