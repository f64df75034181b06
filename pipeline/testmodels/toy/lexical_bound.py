"""How far could a toy that reads emotions from words get on V3/V4 and M1? A bound from text alone.

Runs 6-9 of docs/TOY.md spent 15-36 minutes of training per try on V3/V4 and never passed. Run 9
planted the best a toy can do by reading words: at every position, the mean over the context so
far of a lexicon (which emotion each token implies). This module computes what the rows would
measure if the harness's activations were exactly that code, with the rows' own scoring
functions, in seconds and before any training (run 11):

- story codes pooled the way the harness pools story activations (`capture.pool_start`: from
  each story's 50th text token, one mean per story, the mean over an emotion's stories), then
  centred over every emotion with a story, as the harness centres its vectors;
- read codes at the Table 2 prompts' read position (V3/V4) and at the Table 3 prompts' U, the
  user's last sentence-final punctuation (M1's precondition), both in the chat template;
- V3/V4 through `implicit.implicit_scores` (the verdict's raw cosine) and M1's precondition
  through `mirroring.user_readability`, with either the story codes or the class axes
  themselves (the ideal vectors: every emotion's stories carry exactly its own class) as the
  vectors.

A real activation holds more than this code, and the denoising, the other directions and the
model's own noise only take away from it, so a bound that fails here fails on any toy built
this way; one that passes is a necessary condition, not a promise. Past tokenisation it is
numpy only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.measures.implicit import ImplicitScores, implicit_scores
from pipeline.measures.mirroring import Readability, probe_values, user_readability


def running_means(codes: np.ndarray) -> np.ndarray:
    """[T, C] per-token codes -> [T, C] the mean over each position's context so far."""
    codes = np.asarray(codes, np.float64)
    return np.cumsum(codes, axis=0) / np.arange(1, len(codes) + 1)[:, None]


def pooled_code(lex: np.ndarray, ids: Sequence[int], start: int) -> np.ndarray | None:
    """The mean, over positions from `start` on, of the running-mean code; None when the text
    has no such position (the harness leaves such a story out too)."""
    if start >= len(ids):
        return None
    return running_means(lex[np.asarray(ids, dtype=np.int64)])[start:].mean(axis=0)


def emotion_codes(lex: np.ndarray,
                  stories: Iterable[tuple[str, Sequence[int], int]]) -> dict[str, np.ndarray]:
    """(emotion, token ids, pool start) per story -> each emotion's mean of its story means,
    centred over the emotions (as the harness's vectors are)."""
    sums: dict[str, list[np.ndarray]] = {}
    for emotion, ids, start in stories:
        code = pooled_code(lex, ids, start)
        if code is not None:
            sums.setdefault(emotion, []).append(code)
    if not sums:
        raise ValueError("no story has a token to pool from; expected stories longer than "
                         "the harness's pooling start (their 50th token)")
    means = {emotion: np.mean(codes, axis=0) for emotion, codes in sums.items()}
    centre = np.mean(list(means.values()), axis=0)
    return {emotion: code - centre for emotion, code in means.items()}


def v3_bound(read_codes: np.ndarray, vectors: np.ndarray,
             emotions: Sequence[str]) -> ImplicitScores:
    """V3/V4's scores if the read positions held `read_codes` [12, C] and the vectors were
    `vectors` [12, C] (one per scenario emotion, scenario order)."""
    return implicit_scores(np.asarray(read_codes, np.float64), np.asarray(vectors, np.float64),
                           tuple(emotions))


def m1_bound(u_codes: np.ndarray, vectors: np.ndarray, emotions: Sequence[str],
             titles: Sequence[str], labels: Mapping[str, str]) -> Readability:
    """M1's precondition if U held `u_codes` [S, C] and the probes were `vectors` [E, C]."""
    return user_readability(probe_values(u_codes, vectors), emotions, titles, labels)


def with_channel(activations: np.ndarray, vectors: np.ndarray, read_codes: np.ndarray,
                 story_codes: np.ndarray, emotions: Sequence[str],
                 scale: float) -> tuple[ImplicitScores, float]:
    """V3/V4's scores if a channel wrote `scale` times the codes into extra dimensions: the
    activations [12, d] gain scale * read codes, the vectors [12, d] scale * story codes.
    Returns the scores and the channel's mean share of the activations' norm (what a toy would
    have to carry there)."""
    x = np.hstack([np.asarray(activations, np.float64), scale * np.asarray(read_codes)])
    v = np.hstack([np.asarray(vectors, np.float64), scale * np.asarray(story_codes)])
    share = float(np.mean(np.linalg.norm(scale * np.asarray(read_codes), axis=1)
                          / np.linalg.norm(activations, axis=1)))
    return implicit_scores(x, v, tuple(emotions)), share


def clusters_spanned(emotions: Sequence[str], cluster_of: Mapping[str, str]) -> int:
    """What V3 expects from vectors that carry only their cluster (cluster-mates' vectors
    the same up to noise unrelated to the emotion): the noise decides which mate each
    scenario finds first, one hit per cluster on average. Table 2's twelve span 7 of Table
    12's clusters, against V3's threshold of 8."""
    return len({cluster_of[e] for e in emotions})


def mates_cosine(vectors: np.ndarray, emotions: Sequence[str],
                 cluster_of: Mapping[str, str]) -> float:
    """Mean cosine between the vectors of cluster-mates (how far the vectors are cluster-level:
    1 means they are); NaN when no two emotions share a cluster."""
    unit = np.asarray(vectors, np.float64)
    unit = unit / np.linalg.norm(unit, axis=1, keepdims=True)
    pairs = [float(unit[i] @ unit[j]) for i in range(len(emotions))
             for j in range(i + 1, len(emotions)) if cluster_of[emotions[i]] == cluster_of[emotions[j]]]
    return float(np.mean(pairs)) if pairs else float("nan")


@dataclass(frozen=True)
class LexiconSources:
    """What the lexicon is counted from (each a harness-authored or paper-listed source)."""

    situations: bool = True  # situations.IMPLICIT_SITUATIONS, rendered in the chat template
    word_weight: float = 50.0  # each class's own word
    cluster_words: bool = False  # every Table 12 cluster-mate of a class counted for it
    corpus_stories: int = 0  # stories per class written by the toy corpus's StoryWriter
    story_weight: float = 0.3
    signature_nouns: bool = False  # each class's noun (phrases.SIGNATURE_NOUNS) x word_weight,
    # and corpus stories written with them, for a toy trained with --signature-nouns
    seed: int = 0

    def corpus(self):
        """The corpus settings its StoryWriter writes with (imported here: corpus.py needs
        torch, and the bounds themselves do not)."""
        from pipeline.testmodels.toy.corpus import CorpusConfig

        return CorpusConfig(signature_nouns=self.signature_nouns)

    def text(self) -> str:
        parts = ["the harness-authored situations" if self.situations else None,
                 f"own words x{self.word_weight:g}",
                 f"Table 12 cluster-mates x{self.word_weight:g}" if self.cluster_words else None,
                 f"signature nouns x{self.word_weight:g}" if self.signature_nouns else None,
                 f"{self.corpus_stories} corpus-written stories per class "
                 f"x{self.story_weight:g}" if self.corpus_stories else None]
        return ", ".join(p for p in parts if p)


def build_lexicon(tokenizer, classes: Sequence[str], sources: LexiconSources) -> np.ndarray:
    """[V, C] lexicon (channel_lexicon.lexicon) for `classes`, counted from `sources`."""
    import random

    from pipeline.inputs.stimuli import load_emotion_clusters, load_emotions, load_topics
    from pipeline.model.prompts import render_prompt
    from pipeline.testmodels.toy.channel_lexicon import class_counts, lexicon
    from pipeline.testmodels.toy.corpus import StoryWriter
    from pipeline.testmodels.toy.phrases import SIGNATURE_NOUNS
    from pipeline.testmodels.toy.situations import IMPLICIT_SITUATIONS

    def ids(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    mates = {e: c.members for c in load_emotion_clusters() for e in c.members}
    writer = StoryWriter(sources.corpus()) if sources.corpus_stories else None
    emotions = load_emotions()
    rng, topics = random.Random(sources.seed), load_topics()

    def labelled():
        for cls, emotion in enumerate(classes):
            if sources.situations:
                for situation in IMPLICIT_SITUATIONS.get(emotion, ()):
                    yield cls, render_prompt(tokenizer, situation, fmt="chat",
                                             chat_template_args={}).input_ids, 1.0
            words = [emotion]
            if sources.cluster_words:  # a class's cluster-mates that are not classes themselves
                words += [m for m in mates.get(emotion, ()) if m not in classes]
            if sources.signature_nouns:  # indexed as corpus.py indexes them
                words.append(SIGNATURE_NOUNS[emotions.index(emotion)])
            for word in words:
                for spelling in (word, f" {word}"):
                    yield cls, ids(spelling), sources.word_weight
            for _ in range(sources.corpus_stories):
                yield cls, ids(writer.story(rng, emotion, rng.choice(topics))), \
                    sources.story_weight

    return lexicon(class_counts(labelled(), len(tokenizer), len(classes)))


def story_inputs(tokenizer, texts: Sequence[tuple[str, str]],
                 max_tokens: int = 1024) -> list[tuple[str, list[int], int]]:
    """(emotion, text) -> (emotion, token ids, pool start), tokenised and pooled by the
    harness's own capture code (`capture.tokenize_texts`, `capture.pool_start`)."""
    from pipeline.model.capture import pool_start, tokenize_texts

    items = tokenize_texts(tokenizer, [text for _, text in texts], [0] * len(texts),
                           [str(i) for i in range(len(texts))], max_tokens)
    return [(emotion, list(item.input_ids), pool_start(item))
            for (emotion, _), item in zip(texts, items, strict=True)]


def _prompt_codes(tokenizer, lex: np.ndarray, prompts: Sequence[str], where: str) -> np.ndarray:
    """The running-mean code at each prompt's read position ('read') or U ('user_punct')."""
    from pipeline.measures.mirroring import SENTENCE_END
    from pipeline.model.prompts import last_char_token, render_prompt

    rows = []
    for text in prompts:
        rendered = render_prompt(tokenizer, text, fmt="chat", chat_template_args={})
        at = (rendered.read_position if where == "read"
              else last_char_token(rendered, SENTENCE_END))
        rows.append(running_means(lex[np.asarray(rendered.input_ids[: at + 1])])[at])
    return np.stack(rows)


def _v3_text(scores: ImplicitScores) -> str:
    return (f"V3 {int(scores.diagonal_hits().sum())}/12 (needs >= 8), "
            f"V4 {scores.ranks().mean():.2f} (needs <= 3.0)")


def _one_built(stage_dir):
    """The one built artifact of a stage folder (a finished build has a COMPLETE marker)."""
    built = sorted(p.parent for p in stage_dir.glob("*/COMPLETE"))
    if len(built) != 1:
        raise SystemExit(f"{stage_dir} holds {len(built)} built artifacts; expected exactly one "
                         "(pass --stories instead, or a fresh --artifacts folder)")
    return built[0]


def _print_channel_sizes(root, layer: int, twelve: Sequence[str], read_codes: np.ndarray,
                         story_codes: np.ndarray) -> None:
    """V3/V4 of the harness's own activations and vectors with a channel of growing size."""
    import json

    from safetensors.numpy import load_file

    vectors_dir, readouts_dir = _one_built(root / "vectors"), _one_built(root / "readouts")
    emotions = json.loads((vectors_dir / "emotions.json").read_text())
    denoised = load_file(str(vectors_dir / "vectors.safetensors"))["denoised"][layer]
    vectors = np.stack([denoised[emotions.index(e)] for e in twelve])
    index = json.loads((readouts_dir / "index.json").read_text())["implicit"]["ids"]
    implicit = load_file(str(readouts_dir / "readouts.safetensors"))["implicit"][:, layer]
    acts = np.stack([implicit[index.index(e)] for e in twelve])
    print(f"  the harness's activations and vectors at layer {layer} of {root}, plus a channel "
          "of the codes above:")
    for scale in (0, 30, 100, 200, 400, 1000):
        scores, share = with_channel(acts, vectors, read_codes, story_codes, twelve, scale)
        print(f"    channel {share:.0%} of the read activation's norm: {_v3_text(scores)}")


def main(argv: list[str] | None = None) -> int:
    """`python -m pipeline.testmodels.toy.lexical_bound`: print the bounds (docs/TOY.md, run 11)."""
    import argparse
    import random
    from pathlib import Path

    from transformers import AutoTokenizer

    from pipeline.inputs.shards import read_records
    from pipeline.inputs.stimuli import (
        load_emotion_clusters,
        load_emotions,
        load_implicit_scenarios,
        load_mirroring_prompts,
        load_topics,
    )
    from pipeline.measures.mirroring import DEFAULT_EMOTIONS, USER_EMOTIONS
    from pipeline.testmodels.toy.corpus import StoryWriter
    from pipeline.testmodels.toy.train import TOY_DIR

    parser = argparse.ArgumentParser(prog="python -m pipeline.testmodels.toy.lexical_bound",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=TOY_DIR, help="its tokenizer is used")
    parser.add_argument("--stories", type=Path, action="append", default=[],
                        help="a stories artifact folder (artifacts/MODEL/stories/KEY) whose "
                             "stories the toy wrote; repeatable")
    parser.add_argument("--corpus-stories", type=int, default=40,
                        help="corpus-written stories per class counted in the lexicon")
    parser.add_argument("--story-weight", type=float, default=0.3)
    parser.add_argument("--artifacts", type=Path, default=None,
                        help="the toy's artifact folder (e.g. artifacts/toy): its stories, and "
                             "what a channel of each size would add to its V3/V4")
    parser.add_argument("--layer", type=int, default=2, help="the analysis layer (the toy's: 2)")
    parser.add_argument("--signature-nouns", action="store_true",
                        help="count each emotion's signature noun (a toy trained with them)")
    args = parser.parse_args(argv)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    identity = np.eye

    twelve = [s.emotion for s in load_implicit_scenarios()]
    cluster_of = {e: c.name for c in load_emotion_clusters() for e in c.members}
    sources = LexiconSources(corpus_stories=args.corpus_stories, story_weight=args.story_weight,
                             signature_nouns=args.signature_nouns)
    lex = build_lexicon(tokenizer, twelve, sources)
    read = _prompt_codes(tokenizer, lex, [s.prompt for s in load_implicit_scenarios()], "read")
    print(f"V3/V4, a lexicon of Table 2's twelve from {sources.text()}:")
    print(f"  ideal vectors (the class axes): {_v3_text(v3_bound(read, identity(12), twelve))}")
    writer, rng = StoryWriter(sources.corpus()), random.Random(999)
    written = [(e, writer.story(rng, e, rng.choice(load_topics())))
               for e in load_emotions() for _ in range(3)]
    story_sets = [("3 corpus-written stories per emotion", written)]
    folders = list(args.stories)
    if args.artifacts is not None:
        folders.append(_one_built(args.artifacts / "stories"))
    for folder in folders:
        texts = [(r["emotion"], r["text"]) for r in read_records(folder, "items")]
        story_sets.append((f"the {len(texts)} stories in {folder}", texts))
    for name, texts in story_sets:
        codes = emotion_codes(lex, story_inputs(tokenizer, texts))
        vectors = np.stack([codes[e] for e in twelve])
        print(f"  vectors from {name}: {_v3_text(v3_bound(read, vectors, twelve))}; "
              f"cluster-mates' cosine {mates_cosine(vectors, twelve, cluster_of):.2f}")
    if args.artifacts is not None:  # the last story set is the artifacts' own
        _print_channel_sizes(args.artifacts, args.layer, twelve, read, vectors)
    print(f"  (the twelve span {clusters_spanned(twelve, cluster_of)} Table 12 clusters: vectors "
          "that carry only their cluster give V3 that many hits on average)")

    six = list(DEFAULT_EMOTIONS)
    table3 = load_mirroring_prompts()
    for cluster_words in (False, True):
        sources = LexiconSources(cluster_words=cluster_words)
        lex = build_lexicon(tokenizer, six, sources)
        u = _prompt_codes(tokenizer, lex, [p.prompt for p in table3], "user_punct")
        bound = m1_bound(u, identity(6), six, [p.title for p in table3], USER_EMOTIONS)
        print(f"M1's precondition with ideal vectors, a lexicon of its six from {sources.text()}:"
              f"\n  {bound.text()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
