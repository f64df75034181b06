"""The LLM judge on the hand-labelled transcripts, cached (issue 16, item 5).

B1/B2 report Cohen's kappa between the rule-based classifier and the LLM judge. On the run's
own rollouts both verdicts are at hand (the rule is pure Python); on the harness-authored
labelled set (data/blackmail/labelled_transcripts.toml) the LLM judge must run once more, 28
greedy calls, so its verdicts are a cached artifact of the judge model, keyed like the
judgments stage (judge identity, prompt format, judge config) plus the labelled file's hash.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipeline.inputs.artifacts import Artifact, ArtifactStore, sha256_file
from pipeline.inputs.experiment import STAGE_VERSIONS
from pipeline.measures.blackmail_judge import (
    LABELLED_PATH,
    classify_rule_based,
    load_labelled,
)
from pipeline.model.judge import judge_with_model
from pipeline.model.prompts import stop_key
from pipeline.model.runtime import ModelRuntime
from pipeline.model.steered_generation import DecodeSettings

STAGE = "labelled_judgments"
VERSION = STAGE_VERSIONS[STAGE]


def labelled_judgments_stage(judge: ModelRuntime, store: ArtifactStore, config,
                             log=lambda message: None, path: Path = LABELLED_PATH) -> Artifact:
    """`config` is the run's JudgeConfig (method "llm"); the artifact lives under the judge."""
    inputs: dict[str, Any] = {
        "stage": STAGE, "code_version": VERSION, "judge": config.describe(),
        "judge_model": judge.identity(), "judge_format": judge.spec.prompt_format,
        "judge_chat_template_args": judge.spec.chat_template_args,
        "labelled_sha256": sha256_file(path), **stop_key(judge.spec.prompt_format)}

    def build(work: Path) -> dict[str, Any]:
        items = load_labelled(path)
        judged = judge_with_model(
            judge.model, judge.tokenizer, [t.text for t in items], fmt=judge.spec.prompt_format,
            chat_template_args=judge.spec.chat_template_args,
            settings=DecodeSettings(max_new_tokens=config.max_new_tokens, greedy=True),
            target=config.target, batch_size=max(1, config.batch_size))
        records = [{"id": t.id, "label": t.label, "split": t.split, "llm": j.verdict,
                    "rule": classify_rule_based(t.text, config.target).verdict, "raw": j.raw}
                   for t, j in zip(items, judged, strict=True)]
        (work / "labelled_judgments.json").write_text(json.dumps(records, indent=1))
        return {"n": len(records)}

    return store.get_or_build(judge.spec.name, STAGE, inputs, build, log=log)
