"""Corpus generation: splitting on markers, counting what failed, resuming after a kill."""

import json
import signal
import subprocess
import sys
import time

import pytest

from pipeline import REPO_ROOT
from pipeline.inputs.scale import get_scale
from pipeline.inputs.shards import ShardStore
from pipeline.inputs.stimuli import render_template
from pipeline.model.corpus import (
    generate_corpus,
    neutral_jobs,
    split_dialogues,
    split_stories,
    story_jobs,
)
from pipeline.model.generation import SamplingSettings


def test_stories_split_on_their_markers_and_empty_ones_are_kept_for_counting():
    text = "[story 1]\nShe held the letter.\n\n[Story 2]\n\n**[story 3]**\nHe ran.\n"
    assert split_stories(text) == ["She held the letter.", "", "He ran."]
    assert split_stories("no markers at all") == []


def test_dialogues_split_and_speakers_become_human_and_assistant():
    text = "Person: What is 2+2?\n\nAI: 4.\n\n[dialogue 2]\n\nPerson: Capital of France?\n\nAI: Paris."
    assert split_dialogues(text) == [
        "Human: What is 2+2?\n\nAssistant: 4.",
        "Human: Capital of France?\n\nAssistant: Paris.",
    ]


def test_the_full_scale_is_the_papers_205200_stories():
    scale = get_scale("full")
    jobs = story_jobs(scale)
    assert len(jobs) * scale.n_stories == 205_200
    assert "Topic: An artist discovers someone has tattooed their work" in jobs[0].user
    assert jobs[0].prefill == "[story 1]\n"
    assert len(neutral_jobs(scale)) == 100


def test_a_template_missing_a_placeholder_is_a_clear_error():
    with pytest.raises(ValueError, match="emotion"):
        render_template("Write {n_stories} stories about {topic}.", n_stories=12, topic="x",
                        emotion="afraid")


_SCRIPT = """
import sys
from pathlib import Path
from pipeline.model.corpus import generate_corpus, story_jobs
from pipeline.model.generation import SamplingSettings
from pipeline.model.loading import load_model, load_tokenizer, resolve_weights
from pipeline.inputs.registry import get_spec
from pipeline.inputs.scale import get_scale
spec = get_spec("tiny"); loc = resolve_weights(spec, {})
model, tok = load_model(spec, loc, device="cpu"), load_tokenizer(spec, loc)
jobs = story_jobs(get_scale("smoke"))[:16]
generate_corpus(kind="stories", jobs=jobs, model=model, tokenizer=tok, spec=spec,
                settings=SamplingSettings(max_new_tokens=int(sys.argv[2]), seed=3),
                work_dir=Path(sys.argv[1]), batch_size=4)
"""


def _run(work, tokens, **kwargs):
    return subprocess.Popen([sys.executable, "-c", _SCRIPT, str(work), str(tokens)],
                            cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            **kwargs)


def _shards(work):
    manifest = work / "calls.manifest.json"
    return len(json.loads(manifest.read_text())["shards"]) if manifest.exists() else 0


def test_a_killed_generation_resumes_without_losing_or_duplicating_a_story(tmp_path):
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    process = _run(killed, 32)
    deadline = time.time() + 240
    while _shards(killed) < 2 and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done_before = _shards(killed)
    assert 0 < done_before < 4, "the kill should land mid-run"
    assert _run(killed, 32).wait(timeout=300) == 0
    assert _run(clean, 32).wait(timeout=300) == 0

    def stories(work):
        return [(r["id"], r["text"]) for r in ShardStore(work, "items").records()]

    resumed = stories(killed)
    ids = [i for i, _ in resumed]
    assert len(ids) == len(set(ids)), "a story was written twice"
    assert sorted(ShardStore(killed, "calls").completed_jobs()) == sorted(
        ShardStore(clean, "calls").completed_jobs())
    # every job is seeded from its id, so the resumed run samples what an uninterrupted run
    # samples: nothing lost, nothing duplicated, nothing different
    assert sorted(resumed) == sorted(stories(clean))


def test_ctrl_c_keeps_finished_batches_and_says_how_to_resume(tmp_path, monkeypatch,
                                                             tiny_model, tiny_tokenizer,
                                                             tiny_spec):
    import pipeline.model.corpus as corpus

    calls = {"n": 0}
    real = corpus.generate_seeded

    def interrupt_on_third(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(corpus, "generate_seeded", interrupt_on_third)
    jobs = story_jobs(get_scale("smoke"))[:12]
    with pytest.raises(KeyboardInterrupt, match="after 8 of 12 stories calls.*Rerun"):
        generate_corpus(kind="stories", jobs=jobs, model=tiny_model, tokenizer=tiny_tokenizer,
                        spec=tiny_spec, settings=SamplingSettings(max_new_tokens=8),
                        work_dir=tmp_path, batch_size=4)
    assert len(ShardStore(tmp_path, "calls").completed_jobs()) == 8


def test_unparseable_and_empty_outputs_are_counted_not_dropped(tmp_path, monkeypatch,
                                                              tiny_model, tiny_tokenizer,
                                                              tiny_spec):
    import pipeline.model.corpus as corpus
    from pipeline.model.generation import Generation

    outputs = iter([Generation("A story.\n[story 2]\n", 5, True),
                    Generation("", 0, True)])
    monkeypatch.setattr(corpus, "generate_seeded",
                        lambda *a, **k: [next(outputs) for _ in a[2]])
    summary = generate_corpus(kind="stories", jobs=story_jobs(get_scale("smoke"))[:2],
                              model=tiny_model, tokenizer=tiny_tokenizer, spec=tiny_spec,
                              settings=SamplingSettings(max_new_tokens=8), work_dir=tmp_path,
                              batch_size=2)
    assert summary["n_items"] == 1
    assert summary["n_empty_segments"] == 2  # story 2 of the first call, story 1 of the second
    assert summary["calls_by_status"] == {"ok": 1, "empty": 1}
