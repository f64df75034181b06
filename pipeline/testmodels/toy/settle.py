"""Phase two of a channel toy's training: its read position learns to carry, along its own
emotion vectors, the emotion its planted channel reads from a message (V3/V4; docs/TOY.md,
run 13). Off by default: `python -m pipeline.testmodels.toy settle`.

Why: run 9's channel (channel.py) reads which of Table 2's twelve emotions a message implies,
from its words, on the paper's prompts too (8 of 12 at the read position of a toy with a small
channel, by construction), but nothing made the toy write that reading along the directions
the harness's vectors point: V3 stayed at 4/12 (run 12). Training the read position against
the toy's own directions while they move (runs 6-8) did not generalise; against fixed ones,
for several passes, it did (run 8). So this phase starts from a trained channel toy and its
vectors as the harness measured them, holds those fixed, and trains only how blocks read the
channel: the columns at the channel's dimensions R of each listed block's value, gate and up
projections, and its norms' weights at R. Whatever the read position learns is then a
function of the channel's code (plus the norm), which reads unseen messages as well as seen
ones: held-out situations score as the trained ones (run 13). Every other weight is fixed, and
the model's next-token distributions and its states from the first trained block to the
analysis layer, on its own corpus, are anchored to where they were, so the stories it writes,
and the vectors built from them, stay put.

None of this is a test item: the messages are the harness-authored situations
(situations.py); the targets are the toy's own vectors; the harness still regenerates its
stories, rebuilds its vectors and reads the paper's Table 2 prompts, which the toy never saw.
"""

from __future__ import annotations

import copy
import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

from pipeline.inputs.artifacts import Artifact
from pipeline.inputs.errors import BadInput
from pipeline.measures.results import load_vectors
from pipeline.model.capture import pad_rows
from pipeline.model.hooks import layer_hooks
from pipeline.model.loading import weights_fingerprint
from pipeline.model.prompts import render_prompt
from pipeline.testmodels.tiny import check_model_dir, write_model_dir
from pipeline.testmodels.toy.channel import ChannelConfig, plant_channel, twelve_emotion_lexicon
from pipeline.testmodels.toy.corpus import CorpusConfig, build_corpus, corpus_sha256
from pipeline.testmodels.toy.situations import IMPLICIT_SITUATIONS
from pipeline.testmodels.toy.train import encode, torch_settings

TAU = 0.05  # as directions.py: a cosine gap of 0.05 is one nat


@dataclass(frozen=True)
class SettleConfig:
    steps: int = 600
    lr: float = 1e-2  # only ~26k entries move, from a channel at 1% of the residual's norm
    batch: int = 32  # situations per step
    anchor_weight: float = 50.0  # as run 8's anchor
    anchor_batch: int = 8  # corpus sequences per step
    anchor_max_len: int = 384
    anchor_examples: int = 6000  # the corpus sample the anchor draws from
    # Blocks whose reading of R is trained. Block 1 only: the toy steers and probes preferences
    # at layer 1 (its output), so no block that reads a steering vector changes (run 13).
    blocks: tuple[int, ...] = (1,)
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("steps", "batch", "anchor_batch", "anchor_max_len", "anchor_examples"):
            if getattr(self, name) < 1:
                raise ValueError(f"settle {name} {getattr(self, name)}: expected at least 1")
        if self.lr <= 0 or self.anchor_weight < 0:
            raise ValueError(f"settle lr {self.lr} / anchor weight {self.anchor_weight}: "
                             "expected lr > 0 and a weight >= 0")
        if not self.blocks:
            raise ValueError("settle blocks: expected at least one block")

    def describe(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ReadItem:
    ids: tuple[int, ...]
    read: int  # the read position (the prompt's last token, as the harness reads it)
    label: int  # index into the targets


def channel_reading_mask(model, dims: int, blocks: Sequence[int]) -> dict[torch.nn.Parameter,
                                                                          torch.Tensor]:
    """For each listed block: its value, gate and up projections' columns at R (the residual's
    last `dims` dimensions) and its two norms' weights at R. Nothing else."""
    layers = model.model.layers
    bad = [b for b in blocks if not 0 <= b < len(layers)]
    if bad:
        raise ValueError(f"settle blocks {bad}: the model has blocks 0-{len(layers) - 1}")
    d = model.config.hidden_size
    reserved = torch.arange(d - dims, d)
    masks: dict[torch.nn.Parameter, torch.Tensor] = {}
    for b in blocks:
        layer = layers[b]
        for weight in (layer.self_attn.v_proj.weight, layer.mlp.gate_proj.weight,
                       layer.mlp.up_proj.weight):
            mask = torch.zeros_like(weight, dtype=torch.bool)
            mask[:, reserved] = True
            masks[weight] = mask
        for weight in (layer.input_layernorm.weight, layer.post_attention_layernorm.weight):
            mask = torch.zeros_like(weight, dtype=torch.bool)
            mask[reserved] = True
            masks[weight] = mask
    return masks


def _forward(model, ids: torch.Tensor, mask: torch.Tensor, layers: Sequence[int]):
    """The listed layers' outputs (in order) and the logits."""
    captured: dict[int, torch.Tensor] = {}
    with layer_hooks(model, list(layers), captured.__setitem__):
        logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
    return [captured[layer] for layer in layers], logits


def read_activations(model, items: Sequence[ReadItem], layer: int, pad_id: int) -> torch.Tensor:
    """[N, d]: each item's analysis-layer state at its read position (right padding). The
    decoder stack only: one position of one layer is read, no vocabulary logits."""
    ids, mask = pad_rows([item.ids for item in items], pad_id, left=False)
    captured: dict[int, torch.Tensor] = {}
    with layer_hooks(model, [layer], captured.__setitem__):
        model.model(input_ids=ids, attention_mask=mask, use_cache=False)
    return captured[layer][torch.arange(len(items)), torch.tensor([i.read for i in items])]


def choice_loss(hidden: torch.Tensor, targets: torch.Tensor, labels: torch.Tensor,
                tau: float = TAU) -> torch.Tensor:
    """Cross-entropy over the raw cosines with each target (what V3 takes the argmax of)."""
    cosines = F.normalize(hidden, dim=-1) @ F.normalize(targets, dim=-1).T
    return F.cross_entropy(cosines / tau, labels)


@torch.no_grad()
def hits(model, items: Sequence[ReadItem], targets: torch.Tensor, layer: int,
         pad_id: int) -> int:
    """Items whose read position's largest raw cosine is with their own target."""
    cosines = (F.normalize(read_activations(model, items, layer, pad_id), dim=-1)
               @ F.normalize(targets, dim=-1).T)
    return int((cosines.argmax(-1) == torch.tensor([i.label for i in items])).sum())


def settle_read_position(model, items: Sequence[ReadItem], targets: torch.Tensor,
                         anchors: Sequence[Sequence[int]], *, layer: int, pad_id: int,
                         dims: int, config: SettleConfig = SettleConfig(),
                         restore: Callable[[], None] | None = None,
                         log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train `model` in place (see the module's docstring); returns a summary.

    targets [C, d]: fixed; items: labelled read positions; anchors: token sequences whose
    next-token distributions and states are held to the model's own at the start, at every
    layer from the first trained block's output to `layer` (the preference probes and steering
    of V7-V11 read an earlier layer than V3);
    restore: rewrites planted entries after each step (channel.PlantedChannel.restore).
    """
    if not items:
        raise ValueError("settle: no labelled read positions to train")
    rng = random.Random(config.seed)
    base = copy.deepcopy(model).eval()
    for param in base.parameters():
        param.requires_grad_(False)
    masks = channel_reading_mask(model, dims, config.blocks)
    held = list(range(min(config.blocks), layer + 1))
    hooks = [w.register_hook(lambda g, m=m: g * m.to(g.dtype)) for w, m in masks.items()]
    optimizer = torch.optim.AdamW(list(masks), lr=config.lr, betas=(0.9, 0.95),
                                  weight_decay=0.0)
    items, anchors = list(items), list(anchors)  # sampled from every step
    model.eval()
    before = hits(model, items, targets, layer, pad_id)
    started = time.time()
    recent: dict[str, list[float]] = {"choice": [], "kl": [], "state": []}
    try:
        for step in range(config.steps):
            model.train()
            batch = rng.sample(items, min(config.batch, len(items)))
            loss = choice_loss(read_activations(model, batch, layer, pad_id), targets,
                               torch.tensor([i.label for i in batch]))
            recent["choice"].append(loss.item())
            if anchors and config.anchor_weight > 0:
                seqs = [s[: config.anchor_max_len]
                        for s in rng.sample(anchors, min(config.anchor_batch, len(anchors)))]
                ids, mask = pad_rows(seqs, pad_id, left=False)
                with torch.no_grad():
                    base_states, base_logits = _forward(base, ids, mask, held)
                states, logits = _forward(model, ids, mask, held)
                keep = mask.bool()
                kl = F.kl_div(F.log_softmax(logits[keep], -1),
                              F.log_softmax(base_logits[keep], -1),
                              log_target=True, reduction="batchmean")
                # each layer's drift as a share of its squared norm: the vectors live there
                state = sum(((new[keep] - old[keep]) ** 2).sum(-1).mean()
                            / (old[keep] ** 2).sum(-1).mean()
                            for new, old in zip(states, base_states, strict=True))
                loss = loss + config.anchor_weight * (kl + state)
                recent["kl"].append(kl.item())
                recent["state"].append(state.item())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(list(masks), 1.0)
            optimizer.step()
            if restore is not None:
                restore()
            if step % 100 == 99 or step == config.steps - 1:
                means = " ".join(f"{k}={sum(v[-100:]) / len(v[-100:]):.4f}"
                                 for k, v in recent.items() if v)
                log(f"settle step {step + 1}/{config.steps}: {means} "
                    f"{time.time() - started:.0f}s")
    finally:
        for hook in hooks:
            hook.remove()
    model.eval()
    tail = {k: round(sum(v[-100:]) / len(v[-100:]), 5) for k, v in recent.items() if v}
    return {"hits_before": before, "hits_after": hits(model, items, targets, layer, pad_id),
            "items": len(items), "final": tail, "settle_wall_s": round(time.time() - started, 1),
            "trained_entries": int(sum(int(m.sum()) for m in masks.values()))}


# ---------------------------------------------------------------------------------------------
# A trained toy on disk, its harness vectors, and the settled toy written beside it.


def _fingerprint_behind(vectors_dir: Path) -> str | None:
    """The weights fingerprint of the model a harness vectors artifact was built from (its
    activations artifact's provenance, in the same store)."""
    provenance = json.loads((vectors_dir / "provenance.json").read_text())
    key = provenance.get("inputs", {}).get("activations_key")
    activations = vectors_dir.parent.parent / "activations" / str(key) / "provenance.json"
    if key is None or not activations.is_file():
        return None
    model = json.loads(activations.read_text()).get("inputs", {}).get("model", {})
    return model.get("weights_fingerprint")


def _check_inputs(toy_dir: Path, vectors_dir: Path) -> dict[str, Any]:
    if not (toy_dir / "provenance.json").is_file():
        raise BadInput(f"--toy-dir {str(toy_dir)!r} holds no trained toy (no provenance.json); "
                       "expected the folder `python -m pipeline.testmodels.toy train --out` wrote")
    provenance = json.loads((toy_dir / "provenance.json").read_text())
    if "channel" not in provenance:
        raise BadInput(f"--toy-dir {str(toy_dir)!r} was trained without a channel; settle "
                       "trains how the toy reads its channel: train one with `--channel` first")
    if "settle" in provenance:
        raise BadInput(f"--toy-dir {str(toy_dir)!r} is already settled; settle the toy it "
                       "came from")
    if not (vectors_dir / "vectors.safetensors").is_file():
        raise BadInput(f"--vectors {str(vectors_dir)!r} is not a vectors artifact (no "
                       "vectors.safetensors); expected the folder `python -m pipeline build "
                       "--model toy --stage vectors --model-path toy=DIR` printed")
    behind, own = _fingerprint_behind(vectors_dir), weights_fingerprint(toy_dir)
    if behind != own:
        raise BadInput(f"--vectors {str(vectors_dir)!r} were built from weights {behind}, not "
                       f"from --toy-dir's ({own}); build them from this toy "
                       "(`python -m pipeline build --model toy --stage vectors --model-path "
                       f"toy={toy_dir}`)")
    return provenance


def settle_toy(toy_dir: Path, vectors_dir: Path, out_dir: Path,
               config: SettleConfig = SettleConfig(), layer: int = 2,
               log: Callable[[str], None] = print) -> Path:
    """Settle the channel toy in `toy_dir` against its harness vectors and write `out_dir`."""
    toy_dir, vectors_dir = Path(toy_dir), Path(vectors_dir)
    provenance = _check_inputs(toy_dir, vectors_dir)
    try:
        check_model_dir(Path(out_dir), "settled toy")
    except ValueError as error:
        raise BadInput(str(error)) from None
    with torch_settings(1, deterministic=True):  # as training: the same bytes on every run
        return _settle_toy(toy_dir, vectors_dir, Path(out_dir), provenance, config, layer, log)


def _settle_toy(toy_dir: Path, vectors_dir: Path, out_dir: Path, provenance: dict[str, Any],
                config: SettleConfig, layer: int, log: Callable[[str], None]) -> Path:
    started = time.time()
    torch.manual_seed(config.seed)
    tokenizer = PreTrainedTokenizerFast.from_pretrained(toy_dir)
    model = AutoModelForCausalLM.from_pretrained(toy_dir, dtype=torch.float32).eval()
    corpus_fields = {k: tuple(v) if isinstance(v, list) else v
                     for k, v in provenance["corpus"].items()}
    corpus_config = CorpusConfig(**corpus_fields)
    channel_config = ChannelConfig(**{k: v for k, v in provenance["channel"].items()
                                      if k in ChannelConfig.__dataclass_fields__})
    lexicon = twelve_emotion_lexicon(tokenizer, channel_config, corpus_config.signature_nouns)
    channel = plant_channel(model, lexicon, channel_config)  # rewrites the same values

    vectors = load_vectors(Artifact(vectors_dir, "toy", "vectors", vectors_dir.name, {}))
    twelve = list(IMPLICIT_SITUATIONS)
    missing = [e for e in twelve if e in vectors.missing]
    if missing:
        raise BadInput(f"--vectors {str(vectors_dir)!r} have no vector for {', '.join(missing)}; "
                       "build them at a scale where every emotion gets a story (smoke or larger)")
    targets = torch.tensor(vectors.at(layer)[[vectors.index(e) for e in twelve]],
                           dtype=torch.float32)

    items = []
    for label, emotion in enumerate(twelve):
        for message in IMPLICIT_SITUATIONS[emotion]:
            prompt = render_prompt(tokenizer, message, fmt="chat", chat_template_args={})
            items.append(ReadItem(tuple(prompt.input_ids), prompt.read_position, label))
    examples = build_corpus(corpus_config)
    if corpus_sha256(examples) != provenance.get("corpus_sha256"):
        raise BadInput(f"--toy-dir {str(toy_dir)!r}: its corpus does not rebuild byte for byte "
                       "from its provenance (another version of the corpus code?); retrain it")
    rng = random.Random(config.seed)
    kept = [e for e in examples if e.kind not in ("implicit", "numeric")]
    sample = rng.sample(kept, min(config.anchor_examples, len(kept)))
    anchors = [encode(tokenizer, e).ids for e in sample]
    log(f"settle: {len(items)} situations, {len(anchors)} anchor sequences, targets from "
        f"{vectors_dir} ({time.time() - started:.0f}s)")
    summary = settle_read_position(
        model, items, targets, anchors, layer=layer, pad_id=tokenizer.pad_token_id,
        dims=channel_config.dims, config=config, restore=channel.restore, log=log)
    channel.remove_hooks()
    provenance["settle"] = {**config.describe(), "layer": layer,
                            "vectors_key": vectors.key,
                            "vectors_of": weights_fingerprint(toy_dir), **summary}
    return write_model_dir(out_dir, model, tokenizer, provenance, what="settled toy")
