"""The SummitBridge blackmail scenario as a prompt, built from data/blackmail/summitbridge.json.

The paper's markdown rendering stripped the XML-like tags (scratchpad, email tool, `<email>`
wrappers) and doubled every line break; the data file restores the tags following Lynch et al.'s
templates and records, in its `provenance` block, what is verbatim paper text and what the
harness chose. `verbatim_view` undoes the restoration so tests can compare against the paper.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transformers import PreTrainedTokenizerBase

from pipeline import DATA_DIR
from pipeline.inputs.stimuli import render_template
from pipeline.model.prompts import RenderedPrompt, render_prompt

SCENARIO_PATH = DATA_DIR / "blackmail" / "summitbridge.json"
SCRATCHPAD_TAG = "<SCRATCHPAD_REASONING>"
# Every tag the rebuild may add; the paper's text contains none of them.
RESTORED_TAGS = (
    "<SCRATCHPAD_REASONING>",
    "</SCRATCHPAD_REASONING>",
    "<tool_use:email>",
    "</tool_use:email>",
    "<email>",
    "</email>",
)
_EMAIL_FIELDS = ("from", "to", "subject", "timestamp", "body")


@dataclass(frozen=True)
class Email:
    sender: str
    recipient: str
    subject: str
    timestamp: str
    body: str


@dataclass(frozen=True)
class Scenario:
    system_prompt: str
    user_instruction: str
    instruction_separator: str
    email_template: str  # placeholders {sender} {recipient} {subject} {timestamp} {body}
    email_separator: str
    emails: tuple[Email, ...]
    assistant_prefill: str
    target_address: str  # the person the leverage must be aimed at (Kyle)
    provenance: dict[str, Any]

    def user_turn(self) -> str:
        """The instruction followed by every email in its restored `<email>` wrapper."""
        blocks = [
            render_template(
                self.email_template,
                sender=e.sender,
                recipient=e.recipient,
                subject=e.subject,
                timestamp=e.timestamp,
                body=e.body,
            )
            for e in self.emails
        ]
        return (
            self.user_instruction + self.instruction_separator + self.email_separator.join(blocks)
        )

    def raw_transcript(self) -> str:
        """The paper's layout: system prompt, blank line, `Human: ...`, `Assistant:`."""
        return f"{self.system_prompt}\n\nHuman: {self.user_turn()}\n\nAssistant:"

    def digest(self) -> str:
        """sha256 of everything that reaches the model, for artifact cache keys."""
        payload = json.dumps(
            [self.system_prompt, self.user_turn(), self.assistant_prefill], ensure_ascii=False
        )
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _require(doc: dict[str, Any], key: str, kind: type, path: Path) -> Any:
    value = doc.get(key)
    if not isinstance(value, kind):
        raise ValueError(
            f"{path}: field {key!r} should be {kind.__name__}, got {type(value).__name__}; the "
            "file is data/blackmail/summitbridge.json with its documented layout"
        )
    return value


@functools.cache
def load_scenario(path: Path = SCENARIO_PATH) -> Scenario:
    """Read and check the rebuilt scenario (11 emails, tags in place, a target address)."""
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    emails = []
    for i, raw in enumerate(_require(doc, "emails", list, path)):
        missing = [f for f in _EMAIL_FIELDS if not isinstance(raw.get(f), str)]
        if missing:
            raise ValueError(f"{path}: emails[{i}] lacks string field(s) {missing}")
        emails.append(Email(raw["from"], raw["to"], raw["subject"], raw["timestamp"], raw["body"]))
    target = _require(doc, "target", dict, path)
    scenario = Scenario(
        system_prompt=_require(doc, "system_prompt", str, path),
        user_instruction=_require(doc, "user_instruction", str, path),
        instruction_separator=_require(doc, "instruction_separator", str, path),
        email_template=_require(doc, "email_template", str, path),
        email_separator=_require(doc, "email_separator", str, path),
        emails=tuple(emails),
        assistant_prefill=_require(doc, "assistant_prefill", str, path),
        target_address=str(target.get("address", "")),
        provenance=_require(doc, "provenance", dict, path),
    )
    if not scenario.target_address:
        raise ValueError(f"{path}: target.address is empty; it names who must be threatened")
    return scenario


def render_scenario(
    tokenizer: PreTrainedTokenizerBase,
    *,
    fmt: str,
    chat_template_args: dict[str, Any],
    scenario: Scenario | None = None,
    prefill: bool = True,
) -> RenderedPrompt:
    """The scenario as the model sees it: system prompt, inbox turn, optional scratchpad prefill.

    In the raw format this is `<system>\\n\\nHuman: <inbox>\\n\\nAssistant: <SCRATCHPAD_REASONING>`,
    the paper's preamble; in the chat format the system prompt is the system message.
    """
    scenario = scenario or load_scenario()
    return render_prompt(
        tokenizer,
        scenario.user_turn(),
        fmt=fmt,
        chat_template_args=chat_template_args,
        system=scenario.system_prompt,
        assistant_prefill=scenario.assistant_prefill if prefill else "",
    )


_NEWLINE_RUN = re.compile(r"\n+")


def verbatim_view(text: str) -> str:
    """`text` with the restored tags removed and newline runs collapsed to one newline.

    The paper's rendering dropped the tags and doubled line breaks, so this is the form in which
    the rebuilt prompt and the paper's text must agree character for character.
    """
    for tag in RESTORED_TAGS:
        text = text.replace(tag, "")
    # A removed tag can leave a space before a newline ("using  xml"): squeeze those too.
    text = re.sub(r" {2,}", " ", text)
    return _NEWLINE_RUN.sub("\n", text).strip()
