"""Chat examples whose read position is trained: situations that imply an emotion (V3/V4) and
statements whose number makes things better or worse (V5/V6). Data: `situations.py`.

Why: V3-V6 read one activation, at the read position after a user's message (the last token
before the assistant's reply), and ask whether it points at the emotion the message implies
(V3/V4) or moves with a number in it (V5/V6). Next-token training alone never put that there
(docs/TOY.md, run 1: replies in the implied emotion left the read position at 1/12). So these
examples carry a point target at the read position (`lens.PointTarget`, set in
`train.with_point_targets`): the emotion's word through the logit lens and its valence on the
valence axis (implicit situations), or a valence that grows with how good the number is
(numeric statements); with `--point-directions`, against the toy's own emotion directions
instead (`directions.py`, run 7). The harness's own vectors, built from the toy's own
stories, must then still line up with what the read position carries. Neither passed V3
(docs/TOY.md, runs 6 and 7).

None of these is a test prompt: the situations and templates are harness-authored, and
`tests/test_toy_situated.py` checks that none shares a run of four words with any of the
paper's or the harness's test prompts. What transfers to the test items is single words
("passed away", "mg", "missing") and the numbers, as it would for a real model.
"""

from __future__ import annotations

import functools
import math
import random
import re
from collections.abc import Iterator

from pipeline.testmodels.toy.phrases import TONE_NEGATIVE, TONE_POSITIVE
from pipeline.testmodels.toy.situations import IMPLICIT_SITUATIONS, NUMERIC_TEMPLATES

IMPLICIT_REPLIES = ("That sounds {tone}.", "It all seems {tone} right now.",
                    "What a {tone} thing to hear.", "That must feel {tone}.")


def _sentences(text: str) -> list[str]:
    return [part for part in re.split(r"(?<=[.!?])\s+", text.strip()) if part]


@functools.cache
def situation_sentences(emotion: str) -> tuple[str, ...]:
    """The statements (not the questions) of every situation of `emotion`, for its stories
    (CorpusConfig.situation_stories); () for an emotion outside Table 2's twelve."""
    return tuple(sentence for text in IMPLICIT_SITUATIONS.get(emotion, ())
                 for sentence in _sentences(text) if not sentence.endswith("?"))


def mixed_situation(rng: random.Random, situations: tuple[str, ...],
                    dropout: float = 0.0) -> str:
    """The first sentence of one situation and the last of another, of the same emotion: new
    messages from the same words, so the read position has to learn what the words imply
    rather than which of 24 messages it is reading (run 7, docs/TOY.md). With `dropout`, each
    word is left out with that probability (at least one kept): what is left still implies
    the emotion, word by word."""
    first, second = rng.sample(situations, 2)
    text = f"{_sentences(first)[0]} {_sentences(second)[-1]}"
    if dropout <= 0:
        return text
    words = text.split()
    kept = [w for w in words if rng.random() >= dropout]
    return " ".join(kept or [rng.choice(words)])


def implicit_examples(rng: random.Random, n: int, labels: dict[str, str],
                      example_type, mix: float = 0.0, per_emotion: int = 24,
                      dropout: float = 0.0) -> Iterator:
    """`n` examples cycling over the twelve emotions, each a random situation of its own (with
    probability `mix` two joined halves of two, `mixed_situation`), answered with a tone word
    of the emotion's valence label. Only the first `per_emotion` situations of each emotion
    are used (runs 6 and 7a had 24); `dropout` thins the joined ones' words."""
    emotions = list(IMPLICIT_SITUATIONS)
    for i in range(n):
        emotion = emotions[i % len(emotions)]
        bank = IMPLICIT_SITUATIONS[emotion][:per_emotion]
        # The draw for `mix` only when it is on, so the examples without it stay the same.
        if mix > 0 and rng.random() < mix:
            user = mixed_situation(rng, bank, dropout)
        else:
            user = rng.choice(bank)
        positive = labels[emotion] == "positive"
        tone = rng.choice(TONE_POSITIVE if positive else TONE_NEGATIVE)
        yield example_type("implicit", rng.choice(IMPLICIT_REPLIES).format(tone=tone),
                           user=user, meta={"emotion": emotion})


def _round(x: float) -> int:
    """Two significant figures, as people write quantities (4500 mg, 36 hours)."""
    if x < 10:
        return max(1, round(x))
    magnitude = 10 ** (int(math.log10(x)) - 1)
    return int(round(x / magnitude) * magnitude)


def numeric_valence(x: float, worse: int, low: float, high: float, log_scale: bool) -> float:
    """In [-1, 1]: +1 at the good end of the template's range, -1 at the bad end, linear in
    x (or log x) between."""
    f = math.log if log_scale else float
    q = (f(x) - f(low)) / (f(high) - f(low))
    return max(-1.0, min(1.0, -worse * (2 * q - 1)))


def numeric_examples(rng: random.Random, n: int, example_type) -> Iterator:
    """`n` examples cycling over the templates, each with a number drawn across its range."""
    for i in range(n):
        template, worse, low, high, log_scale = NUMERIC_TEMPLATES[i % len(NUMERIC_TEMPLATES)]
        if log_scale:
            x = _round(math.exp(rng.uniform(math.log(low), math.log(high))))
        else:
            x = _round(rng.uniform(low, high))
        valence = numeric_valence(x, worse, low, high, log_scale)
        positive = rng.random() < 1 / (1 + math.exp(-3 * valence))
        tone = rng.choice(TONE_POSITIVE if positive else TONE_NEGATIVE)
        yield example_type("numeric", rng.choice(IMPLICIT_REPLIES).format(tone=tone),
                           user=template.format(X=x), meta={"valence": valence})
