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


def story_code_size(lex: np.ndarray, stories: Iterable[tuple[str, Sequence[int], int]]) -> float:
    """The median norm of the running-mean code over the stories' pooled positions: how large
    the channel is where the toy writes, per unit of scale."""
    sizes = [np.linalg.norm(running_means(lex[np.asarray(ids, dtype=np.int64)])[start:], axis=1)
             for _, ids, start in stories if start < len(ids)]
    if not sizes:
        raise ValueError("no story has a token to pool from; expected stories longer than "
                         "the harness's pooling start (their 50th token)")
    return float(np.median(np.concatenate(sizes)))


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
                 scale: float, story_scale: float | None = None) -> tuple[ImplicitScores, float]:
    """V3/V4's scores if a channel wrote the codes into extra dimensions: the activations
    [12, d] gain `scale` * read codes, the vectors [12, d] `story_scale` (default: `scale`) *
    story codes. Returns the scores and the channel's mean size at the read position relative
    to the activations' norm (what a toy would have to carry there)."""
    story_scale = scale if story_scale is None else story_scale
    x = np.hstack([np.asarray(activations, np.float64), scale * np.asarray(read_codes)])
    v = np.hstack([np.asarray(vectors, np.float64), story_scale * np.asarray(story_codes)])
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

    word_weight: float = 50.0  # each class's own word (situations always count, at 1)
    cluster_words: bool = False  # every Table 12 cluster-mate of a class counted for it
    corpus_stories: int = 0  # stories per class written by the toy corpus's StoryWriter
    story_weight: float = 0.3
    signature_nouns: bool = False  # each class's noun (phrases.SIGNATURE_NOUNS) x word_weight,
    # and corpus stories written with them, for a toy trained with --signature-nouns
    max_df: float = 1.0  # as the channel's --channel-max-df: common tokens carry nothing
    seed: int = 0

    def corpus(self):
        """The corpus settings its StoryWriter writes with (imported here: corpus.py needs
        torch, and the bounds themselves do not)."""
        from pipeline.testmodels.toy.corpus import CorpusConfig

        return CorpusConfig(signature_nouns=self.signature_nouns)

    def text(self) -> str:
        parts = ["the harness-authored situations",
                 f"own words x{self.word_weight:g}",
                 f"Table 12 cluster-mates x{self.word_weight:g}" if self.cluster_words else None,
                 f"signature nouns x{self.word_weight:g}" if self.signature_nouns else None,
                 f"{self.corpus_stories} corpus-written stories per class "
                 f"x{self.story_weight:g}" if self.corpus_stories else None,
                 f"without tokens in {self.max_df:.0%} of corpus stories" if self.max_df < 1
                 else None]
        return ", ".join(p for p in parts if p)


def build_lexicon(tokenizer, classes: Sequence[str], sources: LexiconSources) -> np.ndarray:
    """[V, C] lexicon for `classes`: what the planted channel counts
    (`channel.labelled_tokens`), plus the cluster-mates and corpus-written stories `sources`
    asks for."""
    import random

    from pipeline.inputs.stimuli import load_emotion_clusters, load_topics
    from pipeline.testmodels.toy.channel import drop_common_tokens, labelled_tokens
    from pipeline.testmodels.toy.channel_lexicon import class_counts, lexicon
    from pipeline.testmodels.toy.corpus import StoryWriter

    mates = {e: c.members for c in load_emotion_clusters() for e in c.members}
    extra = ({e: [m for m in mates.get(e, ()) if m not in classes] for e in classes}
             if sources.cluster_words else None)  # cluster-mates that are not classes themselves

    def labelled():
        yield from labelled_tokens(tokenizer, classes, word_weight=sources.word_weight,
                                   noun_weight=sources.word_weight,
                                   signature_nouns=sources.signature_nouns, extra_words=extra)
        if sources.corpus_stories:
            writer, rng, topics = StoryWriter(sources.corpus()), random.Random(sources.seed), \
                load_topics()
            for cls, emotion in enumerate(classes):
                for _ in range(sources.corpus_stories):
                    story = writer.story(rng, emotion, rng.choice(topics))
                    yield cls, tokenizer(story, add_special_tokens=False)["input_ids"], \
                        sources.story_weight

    return drop_common_tokens(lexicon(class_counts(labelled(), len(tokenizer), len(classes))),
                              tokenizer, sources.signature_nouns, sources.max_df)


# The extraction stage's MAX_STORY_TOKENS; testmodels may not import the stages layer
# (tests/test_layers.py), and a test pins the two equal.
MAX_STORY_TOKENS = 1024


def story_inputs(tokenizer, texts: Sequence[tuple[str, str]]) -> list[tuple[str, list[int], int]]:
    """(emotion, text) -> (emotion, token ids, pool start), tokenised, truncated and pooled as
    the harness's extraction stage does (`capture.tokenize_texts`, `capture.pool_start`)."""
    from pipeline.model.capture import pool_start, tokenize_texts

    items = tokenize_texts(tokenizer, [text for _, text in texts], [0] * len(texts),
                           [str(i) for i in range(len(texts))], MAX_STORY_TOKENS)
    return [(emotion, list(item.input_ids), pool_start(item))
            for (emotion, _), item in zip(texts, items, strict=True)]


def _prompt_codes(tokenizer, lex: np.ndarray, prompts: Sequence[str], where: str) -> np.ndarray:
    """The channel's code at each prompt's read position ('read') or U ('user_punct'): the mean
    lexicon of the prompt up to and including that token."""
    from pipeline.measures.mirroring import SENTENCE_END
    from pipeline.model.prompts import last_char_token, render_prompt

    rows = []
    for text in prompts:
        rendered = render_prompt(tokenizer, text, fmt="chat", chat_template_args={})
        at = (rendered.read_position if where == "read"
              else last_char_token(rendered, SENTENCE_END))
        rows.append(lex[np.asarray(rendered.input_ids[: at + 1])].mean(axis=0))
    return np.stack(rows)


def _v3_text(scores: ImplicitScores) -> str:
    return (f"V3 {int(scores.diagonal_hits().sum())}/12 (needs >= 8), "
            f"V4 {scores.ranks().mean():.2f} (needs <= 3.0)")


def _built(model_dir, stage: str):
    """The one intact artifact of `stage` under a model's artifact folder (ArtifactStore.lookup
    checks its files against its provenance)."""
    from pipeline.inputs.artifacts import ArtifactStore

    store = ArtifactStore(model_dir.parent)
    built = [a for d in sorted(store.stage_dir(model_dir.name, stage).glob("*/"))
             if (a := store.lookup(model_dir.name, stage, d.name)) is not None]
    if len(built) != 1:
        raise SystemExit(f"{model_dir / stage} holds {len(built)} intact artifacts; expected "
                         "exactly one (pass --stories instead, or a folder with one build)")
    return built[0]


def _print_channel_sizes(model_dir, layer: int, twelve: Sequence[str], read_codes: np.ndarray,
                         story_codes: np.ndarray, story_code_size: float) -> None:
    """V3/V4 of the harness's own activations and vectors (read as the V3 row reads them) with
    a channel of each size at the read position and in the stories (run 12: what counts is
    about the product of the two)."""
    from pipeline.measures.results import load_readouts, load_vectors

    vectors = load_vectors(_built(model_dir, "vectors"))
    readouts = load_readouts(_built(model_dir, "readouts"))
    chosen = np.stack([vectors.at(layer)[vectors.index(e)] for e in twelve])
    order = [readouts.ids["implicit"].index(e) for e in twelve]
    acts = readouts.activations["implicit"][order, layer]
    norm = float(np.median(np.linalg.norm(acts, axis=1)))
    read_size = float(np.median(np.linalg.norm(read_codes, axis=1)))
    read_shares, story_shares = (0.3, 0.65, 1.0, 2.0, 4.0), (0.003, 0.01, 0.03, 0.1, 0.3)
    print(f"  the harness's activations and vectors at layer {layer} of {model_dir}, plus a "
          "channel of the codes above. Rows: the channel at the read position, as a share of "
          "the read activation's norm; columns: at a story position (median), as a share of "
          "the same norm; cells: V3 hits/12, V4 mean rank")
    print("    read \\ story " + " ".join(f"{b:>9.1%}" for b in story_shares))
    for a in read_shares:
        cells = []
        for b in story_shares:
            scores, _ = with_channel(acts, chosen, read_codes, story_codes, twelve,
                                     a * norm / read_size, b * norm / story_code_size)
            cells.append(f"{int(scores.diagonal_hits().sum()):>2}, {scores.ranks().mean():.2f}")
        print(f"    {a:>11.0%} " + " ".join(f"{c:>9}" for c in cells))


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
    from pipeline.measures.results import load_items
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
    parser.add_argument("--max-df", type=float, default=1.0,
                        help="leave out tokens in this share of corpus stories or more (the "
                             "channel's --channel-max-df)")
    parser.add_argument("--signature-nouns", action="store_true",
                        help="count each emotion's signature noun (a toy trained with them)")
    args = parser.parse_args(argv)
    tokenizer = AutoTokenizer.from_pretrained(args.model)

    scenarios = load_implicit_scenarios()
    twelve = [s.emotion for s in scenarios]
    cluster_of = {e: c.name for c in load_emotion_clusters() for e in c.members}
    sources = LexiconSources(corpus_stories=args.corpus_stories, story_weight=args.story_weight,
                             signature_nouns=args.signature_nouns, max_df=args.max_df)
    lex = build_lexicon(tokenizer, twelve, sources)
    read = _prompt_codes(tokenizer, lex, [s.prompt for s in scenarios], "read")
    print(f"V3/V4, a lexicon of Table 2's twelve from {sources.text()}:")
    print(f"  ideal vectors (the class axes): {_v3_text(v3_bound(read, np.eye(12), twelve))}")
    writer, rng = StoryWriter(sources.corpus()), random.Random(999)
    written = [(e, writer.story(rng, e, rng.choice(load_topics())))
               for e in load_emotions() for _ in range(3)]
    story_sets = [("3 corpus-written stories per emotion", written)]
    for folder in args.stories:
        texts = [(r["emotion"], r["text"]) for r in read_records(folder, "items")]
        story_sets.append((f"the {len(texts)} stories in {folder}", texts))
    if args.artifacts is not None:
        items = load_items(_built(args.artifacts, "stories"))
        story_sets.append((f"the {len(items)} stories of {args.artifacts}",
                           [(r["emotion"], r["text"]) for r in items]))
    for name, texts in story_sets:
        inputs = story_inputs(tokenizer, texts)
        codes = emotion_codes(lex, inputs)
        vectors = np.stack([codes[e] for e in twelve])
        print(f"  vectors from {name}: {_v3_text(v3_bound(read, vectors, twelve))}; "
              f"cluster-mates' cosine {mates_cosine(vectors, twelve, cluster_of):.2f}")
    if args.artifacts is not None:  # the last story set is the artifacts' own
        _print_channel_sizes(args.artifacts, args.layer, twelve, read, vectors,
                             story_code_size(lex, inputs))
    print(f"  (the twelve span {clusters_spanned(twelve, cluster_of)} Table 12 clusters: vectors "
          "that carry only their cluster give V3 that many hits on average)")

    six = list(DEFAULT_EMOTIONS)
    table3 = load_mirroring_prompts()
    for cluster_words in (False, True):
        sources = LexiconSources(cluster_words=cluster_words)
        lex = build_lexicon(tokenizer, six, sources)
        u = _prompt_codes(tokenizer, lex, [p.prompt for p in table3], "user_punct")
        bound = m1_bound(u, np.eye(6), six, [p.title for p in table3], USER_EMOTIONS)
        print(f"M1's precondition with ideal vectors, a lexicon of its six from {sources.text()}:"
              f"\n  {bound.text()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
