"""Every bad input ends in one sentence: the bad value, what was expected, how to fix it.

No traceback, and nothing left in the artifact cache. One table per entry point: the CLI (run
in-process through `main`, exactly what `python -m pipeline` runs), the pytest options (the
checks `pytest_configure` turns into usage errors, plus one end-to-end run), the registry and
the cached artifacts. Each row holds the case and the message it must produce.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import REPO_ROOT
from pipeline.__main__ import main
from pipeline.inputs.errors import BadInput
from pipeline.inputs.stimuli import load_emotions

EMOTIONS = load_emotions()


def _story(emotion: str, text: str = "Once there was a story long enough to be one.") -> str:
    return json.dumps({"emotion": emotion, "text": text})


def _every_emotion() -> list[str]:
    return [_story(e) for e in EMOTIONS]


# (case id, stories-file content (str, bytes, None: missing, "<dir>": a directory), message)
STORIES_FILES = [
    ("malformed-line", "\n".join([_story("afraid"), '{"emotion": "afraid", "text": '] ),
     r"bad\.jsonl:2 is not valid JSON \(.*\); expected one JSON object per line with 'emotion'"
     r".*; fix or delete that line"),
    ("json-array-line", "[1, 2]\n", r"bad\.jsonl:1 is a JSON list, not an object; expected"),
    ("empty-file", "", r"'.*bad\.jsonl' holds no story; expected .*; add stories"),
    ("blank-lines-only", "\n \n", r"holds no story"),
    ("missing-file", None, r"'.*bad\.jsonl' does not exist; expected a JSONL file .*; check the path"),
    ("a-directory", "<dir>", r"'.*bad\.jsonl' is a directory; expected a JSONL file"),
    ("one-emotion", "\n".join(_story("afraid") for _ in range(5)),
     r"has stories for 1 of the 171 emotions \(none for .* and 165 more\); expected at least "
     r"one story per emotion.*; add stories for the missing emotions"),
    ("unknown-emotion", "\n".join([*_every_emotion(), _story("hangry")]),
     r"bad\.jsonl:172 has emotion='hangry', which is not one of the paper's 171 emotions"),
    ("no-text", "\n".join([*_every_emotion(), json.dumps({"emotion": "afraid"})]),
     r"bad\.jsonl:172 has text=None; expected the story as a non-empty string under 'text'"),
    ("text-not-a-string", json.dumps({"emotion": "afraid", "text": 3}),
     r"bad\.jsonl:1 has text=3; expected the story as a non-empty string"),
    ("duplicate-id", "\n".join([json.dumps({"id": "s1", "emotion": "afraid", "text": "a"}),
                                json.dumps({"id": "s1", "emotion": "calm", "text": "b"})]),
     r"bad\.jsonl:2 repeats id 's1'; expected every story's 'id' to be unique"),
    ("not-utf8", b'{"emotion": "afraid", "text": "caf\xe9"}\n',
     r"is not UTF-8 text \(byte \d+\); expected a UTF-8 JSONL file; re-save it as UTF-8"),
]


def _stories_file(tmp_path: Path, content) -> Path:
    path = tmp_path / "bad.jsonl"
    if content == "<dir>":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content, encoding="utf-8")
    return path


def _cli(tmp_path, capsys, *args) -> str:
    """Run the CLI in-process; return its one-sentence error after checking the exit and cache."""
    root = tmp_path / "artifacts"
    status = main(["build", "--model", "tiny", "--scale", "smoke", "--artifact-root", str(root),
                   *args])
    err = capsys.readouterr().err.strip()
    assert status == 2, err
    assert "Traceback" not in err and "\n" not in err, err
    assert err.startswith("error: ")
    built = [p for p in root.rglob("*") if p.is_dir() and p.parent.parent.parent == root]
    assert built == [], f"left in the cache: {built}"
    return err


@pytest.mark.parametrize("case, content, message", STORIES_FILES,
                         ids=[c[0] for c in STORIES_FILES])
def test_a_bad_stories_file_is_one_sentence_and_caches_nothing(tmp_path, capsys, case, content,
                                                               message):
    path = _stories_file(tmp_path, content)
    err = _cli(tmp_path, capsys, "--stage", "vectors", "--stories-file", str(path))
    assert re.search(message, err), err
    # The advice for generated stories (raise max_new_tokens, a larger --scale) never applies.
    assert "max_new_tokens" not in err and "--scale" not in err, err


CLI = [
    ("model-path-unknown-name", ["--stage", "stories", "--model-path", "nosuchmodel=/tmp"],
     r"--model-path 'nosuchmodel=/tmp' names 'nosuchmodel', which is not a registered model; "
     r"expected one of .*tiny.*; fix the name or add a \[nosuchmodel\] table"),
    ("model-path-without-dir", ["--stage", "stories", "--model-path", "tiny"],
     r"--model-path 'tiny': expected NAME=DIR or NAME=FILE\.gguf, e\.g\."),
    ("batch-size-zero", ["--stage", "stories", "--batch-size", "0"],
     r"--batch-size 0; expected a positive whole number; pass e\.g\. --batch-size 64"),
    ("token-budget-negative", ["--stage", "activations", "--token-budget", "-5"],
     r"--token-budget -5; expected a positive whole number"),
    ("device-unknown", ["--stage", "stories", "--device", "banana"],
     r"--device 'banana' is not a torch device; expected e\.g\. cpu, cuda"),
    ("generator-unknown", ["--stage", "stories", "--generator", "gpt5"],
     r"--generator names 'gpt5', which is not a registered model"),
    ("device-map-junk", ["--stage", "stories", "--device-map", "everywhere"],
     r"--device-map 'everywhere' is neither a strategy .*; pass e\.g\. --device-map auto"),
    ("artifact-root-is-a-file", ["--stage", "stories", "--artifact-root",
                                 str(REPO_ROOT / "README.md")],
     r"--artifact-root '.*README\.md' is a file; expected a directory"),
    ("stories-file-for-neutral", ["--stage", "neutral", "--stories-file", "x.jsonl"],
     r"--stories-file 'x\.jsonl' with --stage neutral: that stage reads no stories; expected "
     r"--stage stories, activations, vectors, logit_lens, embedding_null, activity_probes, "
     r"steered_preferences, preference_coherence, blackmail_rollouts, blackmail_judgments, "
     r"blackmail_coherence;"),
]


@pytest.mark.parametrize("args, message", [c[1:] for c in CLI], ids=[c[0] for c in CLI])
def test_a_bad_cli_value_is_one_sentence(tmp_path, capsys, args, message):
    err = _cli(tmp_path, capsys, *args)
    assert re.search(message, err), err


REGISTRY = """
[m]
hf_id = "org/m"
revision = "main"
n_layers = 4
analysis_layer = 2
probe_layers = [2]
steering_layers = [2]
dtype = "float32"
prompt_format = "chat"
read_position = "last_prompt_token"
chat_template_args = {}
trust_remote_code = false
"""

REGISTRIES = [
    ("layer-out-of-range", ("steering_layers = [2]", "steering_layers = [9]"),
     r"models\.toml: model \[m\], field 'steering_layers': layer 9 is beyond the model's depth; "
     r"expected 0 <= layer < n_layers = 4"),
    ("not-toml", ("[m]", "[m"), r"models\.toml: not valid TOML"),
    ("unknown-generator", ("trust_remote_code = false", "trust_remote_code = false\n"
                           'generator = "ghost"'),
     r"field 'generator': 'ghost' is not a registered model; expected one of \['m'\]"),
]


@pytest.mark.parametrize("edit, message", [c[1:] for c in REGISTRIES],
                         ids=[c[0] for c in REGISTRIES])
def test_a_bad_registry_is_one_sentence_in_the_cli(tmp_path, capsys, monkeypatch, edit,
                                                   message):
    import pipeline.__main__ as cli
    from pipeline.inputs.registry import parse_registry

    path = tmp_path / "models.toml"
    path.write_text(REGISTRY.replace(*edit), encoding="utf-8")
    monkeypatch.setattr(cli, "load_registry", lambda: parse_registry(path))
    err = _cli(tmp_path, capsys, "--stage", "stories")
    assert re.search(message, err), err


PYTEST_OPTIONS = [
    ("model-path-unknown-name", "--model-path", ["nosuchmodel=/tmp"],
     r"names 'nosuchmodel', which is not a registered model"),
    ("batch-size-zero", "--batch-size", 0, r"--batch-size 0; expected a positive whole number"),
    ("rebuild-unknown-stage", "--rebuild", ["stoires"],
     r"--rebuild 'stoires' is not a stage; expected one of stories, .*; fix the stage name"),
    ("device-unknown", "--device", "banana", r"--device 'banana' is not a torch device"),
    ("artifact-root-is-a-file", "--artifact-root", str(REPO_ROOT / "README.md"),
     r"--artifact-root '.*README\.md' is a file; expected a directory"),
    ("stories-file-missing", "--stories-file", "/nonexistent/s.jsonl",
     r"--stories-file '/nonexistent/s\.jsonl' does not exist"),
]


@pytest.mark.parametrize("option, value, message", [c[1:] for c in PYTEST_OPTIONS],
                         ids=[c[0] for c in PYTEST_OPTIONS])
def test_a_bad_pytest_option_is_a_usage_error_with_its_sentence(option, value, message):
    from fixtures import options

    checks = {
        "--model-path": (options.parse_model_paths,),
        "--batch-size": (options.check_positive, "--batch-size"),
        "--rebuild": (options._check_rebuild,),
        "--device": (options.check_device,),
        "--stories-file": (options._check_stories_file,),
        "--artifact-root": (options.check_artifact_root,),
    }
    check, *leading = checks[option]
    with pytest.raises(pytest.UsageError, match=message):
        options._usage(check, *leading, value)


def test_a_bad_pytest_option_ends_the_run_with_its_sentence_and_no_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "criteria/test_numerical.py", "-m", "tiny",
         "--collect-only", "-q", "-p", "no:cacheprovider", "--artifact-root", str(tmp_path),
         "--model-path", "nosuchmodel=/models/x"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    out = result.stdout + result.stderr
    assert result.returncode == 4, out  # pytest's usage error
    assert "ERROR: --model-path 'nosuchmodel=/models/x' names 'nosuchmodel'" in out, out
    assert "Traceback" not in out, out
    assert list(tmp_path.iterdir()) == []


def test_a_finished_shard_read_without_its_hashes_names_the_file_and_line(tmp_path):
    from pipeline.inputs.shards import ShardStore, read_records

    ShardStore(tmp_path, "items").append([{"id": "a"}, {"id": "b"}], ["j"])
    shard = tmp_path / "items-000000.jsonl"
    shard.write_text(shard.read_text()[:-4])
    with pytest.raises(BadInput, match=r"items-000000\.jsonl:2 is not a JSON record .*; the "
                       r"shard is damaged\. Delete the artifact folder"):
        list(read_records(tmp_path, "items"))


def test_the_html_row_hook_escapes_markup_in_a_test_id():
    from types import SimpleNamespace

    from fixtures.scorecard import escape_test_id

    report = SimpleNamespace(nodeid="criteria/t.py::test[<b>x</b>&]", when="call")
    cells = ['<td class="col-result">Passed</td>',
             f'<td class="col-testId">{report.nodeid}</td>']
    escape_test_id(report, cells)
    assert cells[1] == ('<td class="col-testId">criteria/t.py::test[&lt;b&gt;x&lt;/b&gt;&amp;]'
                        "</td>")


def test_a_stories_file_whose_stories_are_all_too_short_for_one_emotion_says_so(tmp_path,
                                                                                capsys):
    # Stories are read from their 50th token on; the advice is about the file, not about
    # max_new_tokens or --scale, which only apply to generated stories.
    long = " ".join(["the long road home"] * 60)
    path = tmp_path / "short.jsonl"
    path.write_text("\n".join(_story(e, "Too short." if e == "afraid" else long)
                              for e in EMOTIONS), encoding="utf-8")
    root = tmp_path / "artifacts"
    status = main(["build", "--model", "tiny", "--scale", "smoke", "--artifact-root", str(root),
                   "--stage", "vectors", "--stories-file", str(path)])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert status == 2, err
    assert re.fullmatch(r"error: --stories-file 'short\.jsonl' has no story of 50 tokens or more "
                        r"for 1 emotion\(s\) \(afraid\); expected at least one per emotion, .*; "
                        r"add longer stories for them", err), err
    assert not [p for p in (root / "tiny" / "vectors").iterdir() if not p.name.startswith(".")]
