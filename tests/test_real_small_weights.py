"""The fetched real_small models load from their converted GGUFs (skipped until fetched).

`python -m pipeline fetch-models` (CI: .ci/fetch-real-models) leaves each model converted in the
artifact cache; this checks that pytest finds it there, that it is the registry's file and depth,
and that its prompt format matches what the GGUF ships (a chat template or none).
"""

import pytest

from fixtures.models import model_params

REAL_SMALL = [p for p in model_params() if "real_small" in p.values[0].groups]


@pytest.mark.parametrize("model_spec", REAL_SMALL, indirect=True)
def test_a_fetched_real_small_model_loads_from_its_packaged_gguf(model_spec, runtime):
    import torch

    assert runtime.location.source in ("packaged-gguf", "option", "env")
    if runtime.location.source == "packaged-gguf":
        assert runtime.location.gguf_sha256 == model_spec.gguf.sha256
        assert runtime.location.path.parent.name == model_spec.gguf.sha256[:16]
    tokenizer = runtime.tokenizer
    # Gemma 3 270M's GGUF has no chat template, so it is registered in the raw format.
    assert bool(tokenizer.chat_template) == (model_spec.prompt_format == "chat")
    model = runtime.model  # load_model checks the depth against n_layers
    assert next(model.parameters()).dtype == torch.float32
    ids = tokenizer("The sea is", return_tensors="pt").to(model.device)
    with torch.no_grad():
        logits = model(**ids).logits[0, -1]
    assert torch.isfinite(logits).all()
    # A pretrained model, not random weights: its top next-token guess is a real word piece.
    assert tokenizer.decode(int(logits.argmax())).strip().isalpha()
