"""V1/V2: the direct logit effect of emotion vectors through the unembedding (numpy only).

logits_e = W_U @ v_e, with no final norm: the paper's "multiply each emotion vector by the
unembedding" (whether a final layer norm was applied is unstated; a norm's gain would rescale
dimensions, not change which words a direction promotes in the way V1 asks).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

VALENCE_PAIRS = (
    ("happy", "sad"),
    ("calm", "desperate"),
    ("proud", "ashamed"),
    ("excited", "bored"),
    ("loving", "hostile"),
)
TOP_K = 20


# Word-boundary markers of the tokenizer families in use: byte-level BPE (GPT-2, Llama 3, Qwen,
# SmolLM2) writes a leading space as 'Ġ', SentencePiece/Metaspace (Gemma, Llama 2) as '▁'.
WORD_BOUNDARY = ("Ġ", "▁")


@dataclass(frozen=True)
class OwnToken:
    emotion: str
    ids: tuple[int, ...]  # the word's whole-word token (leading space), or () when it has none

    @property
    def single_token(self) -> bool:
        return bool(self.ids)


def whole_word_token(tokenizer, word: str) -> int | None:
    """The one token that spells `word` as a whole word after a space, else None.

    " word" must encode to a single token, or (tokenizers that add their own dummy prefix)
    "word" to a single token that starts with a boundary marker. The first token of a longer
    encoding is never accepted: it is a fragment ('s', 'g', 'dis') shared by several emotions
    and by unrelated words, so matching it counts hits that are not the emotion's word.
    """
    for text in (" " + word, word):
        ids = tokenizer.encode(text, add_special_tokens=False)
        if len(ids) != 1:
            continue
        piece = tokenizer.convert_ids_to_tokens(ids[0])
        spaced = text.startswith(" ") or piece.startswith(WORD_BOUNDARY)
        if spaced and tokenizer.decode(ids).strip() == word:
            return int(ids[0])
    return None


def own_tokens(tokenizer, emotions: Sequence[str]) -> list[OwnToken]:
    result = []
    for emotion in emotions:
        token = whole_word_token(tokenizer, emotion)
        result.append(OwnToken(emotion, () if token is None else (token,)))
    return result


def direct_logits(unembedding: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """W_U [V, d] x vectors [E, d] -> [E, V]."""
    return vectors @ unembedding.T


def own_token_hits(logits: np.ndarray, tokens: Sequence[OwnToken], k: int = TOP_K) -> np.ndarray:
    """[E] bool: the emotion's whole-word token is among its vector's top-k logits (an emotion
    without one cannot hit)."""
    top = np.argpartition(-logits, k - 1, axis=1)[:, :k]
    return np.array([bool(set(t.ids) & set(row.tolist())) for t, row in zip(tokens, top,
                                                                          strict=True)])


def valence_pair_dots(logits: np.ndarray, emotions: Sequence[str],
                      pairs: Sequence[tuple[str, str]] = VALENCE_PAIRS) -> np.ndarray:
    """[P] dot(W_U v_a, W_U v_b) for each opposite-valence pair."""
    index = {e: i for i, e in enumerate(emotions)}
    return np.array([float(logits[index[a]] @ logits[index[b]]) for a, b in pairs])


def vocabulary_centred(logits: np.ndarray) -> np.ndarray:
    """Each row of W_U v minus its mean over the vocabulary: the same logits up to a shift of
    all of them, which no probability sees (as if W_U's mean row were removed).

    Why V2 reports it beside the raw dot: the raw dot sums over the vocabulary, so a shared
    shift (v's component along W_U's mean row, large in trained models) adds the product of
    the two shifts to it whatever the pair's valence; on the toy one direction of W_U, its mean
    row and top singular direction, carried up to 56k of dots of -2k to -80k (docs/TOY.md,
    run 10). The verdict stays on the raw dot (the reference's statistic)."""
    logits = np.asarray(logits, dtype=np.float64)
    return logits - logits.mean(axis=1, keepdims=True)


def top_tokens(logits_row: np.ndarray, tokenizer, k: int = 5) -> tuple[list[str], list[str]]:
    """Decoded top-k promoted and suppressed tokens of one vector (model text: escape it)."""
    up = np.argsort(-logits_row)[:k]
    down = np.argsort(logits_row)[:k]
    decode = lambda ids: [tokenizer.decode([int(i)]) for i in ids]  # noqa: E731
    return decode(up), decode(down)
