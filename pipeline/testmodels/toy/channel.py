"""A planted emotion channel: set weights, not learned ones, for V3/V4 (docs/TOY.md, run 9).

Runs 6-8 trained read positions toward the toy's emotion directions and never got the harness's
vectors for Table 2's twelve emotions and its read positions to agree: the trained directions
moved, and the read position barely saw the message. This module plants the shared
representation V3 asks about by construction, in `k` reserved residual dimensions R (the last k):

- token embeddings: E[t, R] = embed_scale * lex[t], the lexicon of `channel_lexicon.py` (which of
  the twelve a token implies, from harness-authored situations, the twelve's own words and
  signature nouns);
- block `layer` (0 unless set), query head `head`: its query weights are zero, so it attends
  uniformly to the whole context so far; its input norm's weight at R is `norm_weight`; the
  first k value rows of its key/value head read R through the identity, and
  its first k outputs are written, times `gain`, into R and nowhere else. The rest of that head
  (its other value rows and outputs, and the query head sharing its key/value head) is trained
  like any other weight: a first version pinned the whole key/value head, and took two of
  block 0's four heads from training;
- nothing else writes R: every block's attention output and MLP down projection have zero rows
  at R;
- with `unread`, nothing else reads R either: every other norm's weight at R is 0, and so are
  the planted block's query, key and other value columns there, so R reaches the rest of the
  toy only through the norms' denominators (run 12).

So at every position after that block, R holds the mean lexicon of the context, whatever the text
is: a story's tokens carry its emotion there to the extent its words imply it, and a user
message that implies an emotion carries it at the read position. The trained weights may read R
(and do: it tells the toy which emotion a prompt asks for); they cannot change it. The twin has
random weights and no channel.

Training keeps the planted entries: their gradients are masked out, and after every optimizer
step (weight decay included) they are written back (`PlantedChannel.restore`).
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass

import numpy as np
import torch

from pipeline.inputs.stimuli import load_emotions, load_topics
from pipeline.model.prompts import render_prompt
from pipeline.testmodels.toy.channel_lexicon import (
    class_counts,
    document_frequency,
    lexicon,
    without_common,
)
from pipeline.testmodels.toy.corpus import CorpusConfig, StoryWriter
from pipeline.testmodels.toy.phrases import SIGNATURE_NOUNS
from pipeline.testmodels.toy.situations import IMPLICIT_SITUATIONS


@dataclass(frozen=True)
class ChannelConfig:
    dims: int = 12  # reserved residual dimensions, one per Table 2 emotion
    embed_scale: float = 0.1  # lexicon -> embedding entries at R
    gain: float = 30.0  # the planted head writes gain * (mean of its normalised input at R)
    head: int = -1  # the planted query head (-1: the last)
    layer: int = 0  # the block whose head it is
    norm_weight: float = 1.0  # that block's input-norm weight at R (pinned)
    word_weight: float = 50.0  # counts given to each of the twelve's own word (the lexicon)
    noun_weight: float = 50.0  # and to its signature noun, when the corpus has them
    offset: float = 0.0  # a constant added to every token's lexicon along R's all-ones direction
    unread: bool = False  # no trained weight may read R (only the norms' denominators see it)
    max_df: float = 1.0  # tokens in at least this share of corpus-written stories carry nothing
    # in the lexicon (1.0: every token keeps its code)

    def __post_init__(self) -> None:
        if self.dims < 1:
            raise ValueError(f"channel dims {self.dims}: expected at least 1")
        if self.layer < 0:
            raise ValueError(f"channel layer {self.layer}: expected a block index >= 0")
        if not 0 < self.max_df <= 1:
            raise ValueError(f"channel max document frequency {self.max_df}: expected (0, 1]")
        if self.offset < 0:
            raise ValueError(f"channel offset {self.offset}: expected >= 0")
        if self.gain <= 0 or self.embed_scale <= 0 or self.norm_weight <= 0:
            raise ValueError(f"channel gain {self.gain}, embed scale {self.embed_scale} and "
                             f"norm weight {self.norm_weight}: expected all > 0")

    def describe(self) -> dict:
        return asdict(self)


@dataclass
class _Pinned:
    param: torch.nn.Parameter
    mask: torch.Tensor  # True where the entry is planted
    values: torch.Tensor  # the planted values (only where mask)


class PlantedChannel:
    """The planted entries of one model; `restore()` writes them back after an optimizer step."""

    def __init__(self, pinned: list[_Pinned]):
        self.pinned = pinned
        self.hooks = [p.param.register_hook(_masked(p.mask)) for p in pinned]

    @torch.no_grad()
    def restore(self) -> None:
        for p in self.pinned:
            p.param[p.mask] = p.values[p.mask]

    def remove_hooks(self) -> None:
        for hook in self.hooks:
            hook.remove()


def _masked(mask: torch.Tensor):
    keep = (~mask).float()
    return lambda grad: grad * keep


def plant_channel(model, lex: np.ndarray, config: ChannelConfig) -> PlantedChannel:
    """Write the channel into a Llama-shaped `model` and return its planted entries."""
    cfg = model.config
    d, k = cfg.hidden_size, config.dims
    head_dim = getattr(cfg, "head_dim", None) or d // cfg.num_attention_heads
    if lex.shape != (cfg.vocab_size, k):
        raise ValueError(f"lexicon of shape {lex.shape}: expected [{cfg.vocab_size}, {k}]")
    if config.layer >= cfg.num_hidden_layers:
        raise ValueError(f"channel layer {config.layer}: the model has "
                         f"{cfg.num_hidden_layers} blocks")
    if k > head_dim or k >= d:
        raise ValueError(f"channel dims {k}: expected at most the head size {head_dim}")
    attn = model.model.layers[config.layer].self_attn
    if attn.o_proj.bias is not None or attn.v_proj.bias is not None:
        raise ValueError("the planted channel expects attention projections without bias")
    heads, kv_heads = cfg.num_attention_heads, cfg.num_key_value_heads
    head = config.head % heads
    kv = head // (heads // kv_heads)
    reserved = torch.arange(d - k, d)
    pinned: list[_Pinned] = []

    def pin(param, mask, values):
        pinned.append(_Pinned(param, mask, values.to(param.dtype)))

    embed = model.get_input_embeddings().weight
    mask = torch.zeros_like(embed, dtype=torch.bool)
    mask[:, reserved] = True
    values = torch.zeros_like(embed)
    # The lexicon is centred over the classes, so a constant along R's all-ones direction is
    # orthogonal to every code: it carries nothing, and only keeps R's norm near constant.
    planted = torch.as_tensor(lex, dtype=embed.dtype) + config.offset / k ** 0.5
    values[:, reserved] = planted * config.embed_scale
    pin(embed, mask, values)
    for index, layer in enumerate(model.model.layers):
        for module in (layer.self_attn.o_proj, layer.mlp.down_proj):
            weight = module.weight  # [d, in]
            mask = torch.zeros_like(weight, dtype=torch.bool)
            mask[reserved, :] = True
            values = torch.zeros_like(weight)
            if index == config.layer and module is layer.self_attn.o_proj:
                cols = head * head_dim + torch.arange(k)
                mask[:, cols] = True  # the planted head's first k outputs write R only
                values[reserved, cols] = config.gain
                if config.unread:  # a query head sharing its key/value head sees R's mean too
                    group = heads // kv_heads
                    for sibling in range(kv * group, (kv + 1) * group):
                        mask[:, sibling * head_dim + torch.arange(k)] = True
            pin(weight, mask, values)
    q = attn.q_proj.weight  # [heads * head_dim, d]
    mask = torch.zeros_like(q, dtype=torch.bool)
    mask[head * head_dim:(head + 1) * head_dim, :] = True  # zero query: uniform attention
    if config.unread:
        mask[:, reserved] = True  # no other head's query reads R either
    pin(q, mask, torch.zeros_like(q))
    if config.unread:
        key = attn.k_proj.weight
        mask = torch.zeros_like(key, dtype=torch.bool)
        mask[:, reserved] = True
        pin(key, mask, torch.zeros_like(key))
    v = attn.v_proj.weight  # [kv_heads * head_dim, d]
    mask = torch.zeros_like(v, dtype=torch.bool)
    mask[kv * head_dim + torch.arange(k), :] = True  # its other value rows stay trained
    if config.unread:
        mask[:, reserved] = True  # and only its planted rows read R
    values = torch.zeros_like(v)
    values[kv * head_dim + torch.arange(k), reserved] = 1.0
    pin(v, mask, values)
    planted_norm = model.model.layers[config.layer].input_layernorm.weight
    norms = [(planted_norm, config.norm_weight)]
    if config.unread:  # every other norm gives R weight 0, so only its denominator sees R
        others = [w for block in model.model.layers
                  for w in (block.input_layernorm.weight, block.post_attention_layernorm.weight)]
        norms += [(w, 0.0) for w in others + [model.model.norm.weight] if w is not planted_norm]
    for norm, weight in norms:
        mask = torch.zeros_like(norm, dtype=torch.bool)
        mask[reserved] = True
        pin(norm, mask, torch.full_like(norm, weight))
    channel = PlantedChannel(pinned)
    channel.restore()
    return channel


def labelled_tokens(tokenizer, classes, *, word_weight: float, noun_weight: float,
                    signature_nouns: bool, extra_words=None):
    """(class index, token ids, weight) triples that a channel lexicon is counted from: every
    harness-authored situation of each class (as the model reads it, in the chat template,
    whose own tokens are then counted as often for every class and carry nothing), each
    class's own word and `extra_words[class]` at `word_weight`, and (with signature nouns)
    its noun at `noun_weight`, each spelled with and without a leading space. An emotion
    outside Table 2's twelve has no situations."""
    emotions = load_emotions()

    def ids(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    for cls, emotion in enumerate(classes):
        for situation in IMPLICIT_SITUATIONS.get(emotion, ()):
            yield cls, render_prompt(tokenizer, situation, fmt="chat",
                                     chat_template_args={}).input_ids, 1.0
        words = [(emotion, word_weight)]
        words += [(w, word_weight) for w in (extra_words or {}).get(emotion, ())]
        if signature_nouns:  # indexed as corpus.py indexes them
            words.append((SIGNATURE_NOUNS[emotions.index(emotion)], noun_weight))
        for word, weight in words:
            for spelling in (word, f" {word}"):
                yield cls, ids(spelling), weight


def twelve_emotion_lexicon(tokenizer, config: ChannelConfig, signature_nouns: bool) -> np.ndarray:
    """[V, 12] lexicon of the planted channel (channel_lexicon.py) for the toy's tokenizer: every
    harness-authored situation of Table 2's twelve emotions, each emotion's own word and (with
    signature nouns) its noun counted for that emotion."""
    choices = list(IMPLICIT_SITUATIONS)
    if len(choices) != config.dims:
        raise ValueError(f"channel dims {config.dims}: expected one per situated emotion "
                         f"({len(choices)})")
    labelled = labelled_tokens(tokenizer, choices, word_weight=config.word_weight,
                               noun_weight=config.noun_weight, signature_nouns=signature_nouns)
    return drop_common_tokens(lexicon(class_counts(labelled, len(tokenizer), len(choices))),
                              tokenizer, signature_nouns, config.max_df)


def drop_common_tokens(lex: np.ndarray, tokenizer, signature_nouns: bool,
                       max_df: float) -> np.ndarray:
    """`lex` without the tokens in at least `max_df` of corpus-written stories (unchanged at
    1.0): the stop list of the channel and of the lexical bound alike."""
    if max_df >= 1:
        return lex
    return without_common(lex, corpus_story_frequency(tokenizer, signature_nouns), max_df)


def corpus_story_frequency(tokenizer, signature_nouns: bool, per_emotion: int = 2,
                           seed: int = 7) -> np.ndarray:
    """[V] document frequency of each token over `per_emotion` stories per emotion written by the
    toy corpus's StoryWriter (harness-authored text, no test prompt)."""
    writer, rng, topics = StoryWriter(CorpusConfig(signature_nouns=signature_nouns)), \
        random.Random(seed), load_topics()
    stories = (writer.story(rng, emotion, rng.choice(topics)) for emotion in load_emotions()
               for _ in range(per_emotion))
    return document_frequency((tokenizer(s, add_special_tokens=False)["input_ids"]
                               for s in stories), len(tokenizer))
