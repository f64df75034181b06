"""Teacher-forced mean next-token NLL of plain texts, steered or not (steering coherence).

Each text is tokenized as the tokenizer does by default (its BOS where it adds one), the batch
is right-padded, and a text's NLL is the mean over its real next-token targets, in float32
whatever the model's dtype. Steering adds `vectors[layer]` at every real token of the text (the
padding is left alone) through `pipeline.model.hooks.additive_steering`, the hook the
preference and blackmail experiments steer with.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from pipeline.model.devices import input_device
from pipeline.model.hooks import additive_steering


def text_nlls(model, tokenizer, texts: Sequence[str], *,
              steering: Mapping[int, torch.Tensor] | None = None,
              batch_size: int = 16) -> np.ndarray:
    """[len(texts)] mean NLL per text in nats per token; NaN or inf when the model overflows."""
    encoded = [list(tokenizer(text)["input_ids"]) for text in texts]
    short = [i for i, ids in enumerate(encoded) if len(ids) < 2]
    if short:
        raise ValueError(f"texts {short} have fewer than 2 tokens; a text needs at least one "
                         "next-token target")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    device = input_device(model)
    out = np.full(len(texts), np.nan)
    current: dict[str, torch.Tensor] = {}
    hook = (additive_steering(model, sorted(steering), dict(steering),
                              mask=lambda: current["mask"])
            if steering else contextlib.nullcontext())
    with hook, torch.inference_mode():
        for start in range(0, len(encoded), batch_size):
            batch = encoded[start:start + batch_size]
            width = max(len(ids) for ids in batch)
            ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, tokens in enumerate(batch):
                ids[row, :len(tokens)] = torch.tensor(tokens, dtype=torch.long)
                mask[row, :len(tokens)] = 1
            current["mask"] = mask
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device),
                           use_cache=False).logits.float()
            # cross_entropy takes the log-softmax and the target in one pass, without a second
            # [batch, tokens, vocabulary] tensor (262k wide for Gemma 3).
            targets = ids[:, 1:].to(logits.device)
            nll = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), targets,
                                                    reduction="none")
            real = mask[:, 1:].to(nll.device).bool()
            total = torch.where(real, nll, torch.zeros_like(nll)).sum(dim=1)
            out[start:start + len(batch)] = (total / real.sum(dim=1)).double().cpu().numpy()
    return out
