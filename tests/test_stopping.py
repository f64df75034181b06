"""A story call stops after its n-th story: the next marker line is never kept (issue 12)."""

import pytest
import torch

from pipeline.model import corpus
from pipeline.model.stopping import MARKERS, ItemStop


def _stories(n: int) -> str:
    return "".join(f"[story {k}]\nThe ferry left late and Mara counted the gulls.\n\n"
                   for k in range(2, n + 1))


def _feed(stop: ItemStop, prompt: list[int], generated: list[int]) -> int | None:
    """Generated tokens seen before the criterion ended the row (None: it never did)."""
    for k in range(1, len(generated) + 1):
        ids = torch.tensor([prompt + generated[:k]])
        if stop(ids, None)[0]:
            return k
    return None


@pytest.mark.parametrize("n_items", [1, 3, 12])
def test_a_call_stops_when_its_last_story_is_complete(tiny_tokenizer, n_items):
    prompt = tiny_tokenizer("Write stories.\n[story 1]\n")["input_ids"]
    first = "Rain again, and the bus was gone.\n\n"
    text = first + _stories(n_items + 3)  # the model writes 3 stories too many
    generated = tiny_tokenizer(text, add_special_tokens=False)["input_ids"]
    stop = ItemStop(tiny_tokenizer, len(prompt), n_items, "story")
    seen = _feed(stop, prompt, generated)
    assert seen is not None
    kept = tiny_tokenizer.decode(generated[: stop.cut_positions(1)[0]])
    stories = corpus.split_stories(corpus.STORY_PREFILL + kept)
    assert len(stories) == n_items and all(stories)
    # stopped within the marker line of story n + 1: not one token of its text was sampled
    assert f"[story {n_items + 1}]" in tiny_tokenizer.decode(generated[:seen])
    assert "Mara" not in tiny_tokenizer.decode(generated[stop.cut_positions(1)[0]:seen])


def test_dialogues_count_their_unmarked_first_one(tiny_tokenizer):
    prompt = tiny_tokenizer("Write dialogues.")["input_ids"]
    text = "Person: hi\nAI: hello\n[dialogue 2]\nPerson: x\nAI: y\n[dialogue 3]\nPerson: z\n"
    generated = tiny_tokenizer(text, add_special_tokens=False)["input_ids"]
    stop = ItemStop(tiny_tokenizer, len(prompt), 2, "dialogue")
    assert _feed(stop, prompt, generated) is not None
    kept = tiny_tokenizer.decode(generated[: stop.cut_positions(1)[0]])
    assert len(corpus.split_dialogues(kept)) == 2


def test_a_call_that_ends_early_is_never_stopped(tiny_tokenizer):
    prompt = tiny_tokenizer("Write stories.\n[story 1]\n")["input_ids"]
    generated = tiny_tokenizer("One story only.\n", add_special_tokens=False)["input_ids"]
    stop = ItemStop(tiny_tokenizer, len(prompt), 12, "story")
    assert _feed(stop, prompt, generated) is None and stop.cut_positions(1) == [None]


def test_the_markers_are_the_splitters_own_patterns():
    assert MARKERS["story"].pattern == corpus._STORY_MARKER.pattern
    assert MARKERS["dialogue"].pattern == corpus._DIALOGUE_MARKER.pattern


def test_generate_batch_runs_with_the_criterion(tiny_spec, tiny_location):
    from pipeline.model.generation import SamplingSettings, generate_batch
    from pipeline.model.prompts import render_prompt
    from pipeline.model.runtime import ModelRuntime

    runtime = ModelRuntime(tiny_spec, tiny_location, device="cpu")
    prompts = [render_prompt(runtime.tokenizer, "Write 1 story.", fmt=tiny_spec.prompt_format,
                             chat_template_args={}, assistant_prefill=corpus.STORY_PREFILL)] * 2
    settings = SamplingSettings(max_new_tokens=24, stop_after_items=1, item_marker="story")
    out = generate_batch(runtime.model, runtime.tokenizer, prompts, settings, seed=0)
    assert len(out) == 2 and all(o.n_tokens <= 24 for o in out)
    # without the rule, the sampling key is what it was before the rule existed
    assert not {"stop_after_items", "item_marker"} & set(SamplingSettings(8).describe())
    assert SamplingSettings(8, stop_after_items=12, item_marker="story").describe()[
        "stop_after_items"] == 12


def test_the_seeded_decoder_keeps_nothing_after_the_last_story(tiny_tokenizer):
    from pipeline.model.stopping import item_cut, newline_token_ids

    text = "Rain again.\n\n" + _stories(6)  # 5 more marked stories: 6 in all
    ids = tiny_tokenizer(text, add_special_tokens=False)["input_ids"]
    cut = item_cut(tiny_tokenizer, ids, 3, "story", newline_token_ids(tiny_tokenizer))
    stories = corpus.split_stories(corpus.STORY_PREFILL + tiny_tokenizer.decode(ids[:cut]))
    assert len(stories) == 3 and all(stories)
    assert item_cut(tiny_tokenizer, ids, 12, "story", newline_token_ids(tiny_tokenizer)) is None


class _NewlineHeavy(torch.nn.Module):
    """The tiny model with its newline logit raised: its random text then has lines to count."""

    def __init__(self, model, newline_id: int, bias: float):
        super().__init__()
        self.inner, self.newline_id, self.bias = model, newline_id, bias
        self.config, self.generation_config = model.config, model.generation_config

    def forward(self, **kwargs):
        out = self.inner(**kwargs)
        out.logits[..., self.newline_id] += self.bias
        return out


def _rule_point(tokenizer, token_ids, n_items) -> int | None:
    """Generated tokens up to and including the one on which the rule ends the row."""
    from pipeline.model.stopping import newline_token_ids

    stop = ItemStop(tokenizer, 0, n_items, "story", newline_token_ids(tokenizer))
    return _feed(stop, [], list(token_ids))


def test_the_seeded_decoder_stops_sampling_at_the_rule_and_keeps_the_same_text(
        tiny_tokenizer, tiny_model, monkeypatch):
    """No token after the rule's point is sampled, and what is kept is byte-identical to the
    old path (run to the length limit, then cut), whatever the batch size."""
    import re

    from pipeline.model import stopping
    from pipeline.model.generation import SamplingSettings, cut_after_items, generate_seeded
    from pipeline.model.prompts import render_prompt
    from pipeline.model.steered_generation import DecodeSettings, generate

    # The tiny model's random text never writes "[story k]"; count any non-empty line instead
    # (the rule's machinery is the same, only the line pattern differs).
    monkeypatch.setitem(stopping.MARKERS, "story", re.compile(r".+"))
    newline = tiny_tokenizer("\n", add_special_tokens=False)["input_ids"][-1]
    model = _NewlineHeavy(tiny_model, newline, bias=5.0)
    prompts = [render_prompt(tiny_tokenizer, f"Write {k} stories.", fmt="raw",
                             chat_template_args={}, assistant_prefill=corpus.STORY_PREFILL)
               for k in range(5)]
    seeds = [11, 12, 13, 14, 15]
    settings = SamplingSettings(max_new_tokens=64, temperature=1.0, top_p=0.95, top_k=50,
                                stop_after_items=3, item_marker="story")
    decode = DecodeSettings(max_new_tokens=64, temperature=1.0, top_p=0.95, top_k=50)
    old_raw = generate(model, tiny_tokenizer, prompts, decode, seeds=seeds, batch_size=5)
    old = cut_after_items(tiny_tokenizer, old_raw, settings)  # the path before the hook
    points = [_rule_point(tiny_tokenizer, r.token_ids, 3) for r in old_raw]
    assert sum(p is not None for p in points) >= 3, "too few rows reach the rule to test it"

    def make_stop():
        return ItemStop(tiny_tokenizer, 0, 3, "story", stopping.newline_token_ids(tiny_tokenizer))

    for batch_size in (5, 2, 1):
        new_raw = generate(model, tiny_tokenizer, prompts, decode, seeds=seeds,
                           batch_size=batch_size, row_stop=make_stop)
        for o, n, point in zip(old_raw, new_raw, points, strict=True):
            # sampled up to the rule's token and not one more (or, without it, as before)
            assert n.n_tokens == (point if point is not None else o.n_tokens)
            assert n.token_ids == o.token_ids[: n.n_tokens]
        new = cut_after_items(tiny_tokenizer, new_raw, settings)
        assert [g.text.encode() for g in new] == [g.text.encode() for g in old]
        assert [(g.n_tokens, g.finished) for g in new] == [(g.n_tokens, g.finished) for g in old]
    # the corpus entry point uses the hook: same kept generations
    assert generate_seeded(model, tiny_tokenizer, prompts, settings, seeds) == old
