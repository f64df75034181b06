"""Stop a story call after its n-th item: no token is sampled for a thirteenth story.

The paper's prompt asks for n stories in one call, each after a `[story k]` line (the first one
is prefilled, so it is not in the generated text). A model that keeps going writes a thirteenth
marker and story that the harness would keep. `ItemStop` counts the marker lines a row
generates and ends that row when the n-th one is complete, i.e. when item n + 1 begins;
`cut_at` then says where the kept text ends (before that marker line). The count follows the
call's format: stories have their first marker in the prefill, neutral dialogues have none
before the first one, so in both cases item n + 1 begins at the n-th generated marker.

Cost: a row is decoded only over the line that a newline token just closed, so the check is
linear in the generated text, not quadratic.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch
from transformers import StoppingCriteria

# Same line patterns as pipeline.model.corpus's splitters (kept in step by tests/test_stopping.py).
MARKERS = {
    "story": re.compile(r"^\W*\[\s*story\s+(\d+)\s*\]\W*$", re.IGNORECASE),
    "dialogue": re.compile(r"^\W*\[\s*dialogue\s+(\d+)\s*\]\W*$", re.IGNORECASE),
}


def newline_token_ids(tokenizer) -> torch.Tensor:
    """[V] bool: tokens whose text holds a newline (the only ones that can close a line)."""
    size = max(len(tokenizer), getattr(tokenizer, "vocab_size", 0))
    ids = sorted(tokenizer.get_vocab().values())
    # One batched decode (Rust for fast tokenizers): byte-level "Ċ" and byte-fallback
    # "<0x0A>" both come out as "\n".
    texts = tokenizer.batch_decode([[i] for i in ids])
    flags = torch.zeros(size, dtype=torch.bool)
    flags[[i for i, text in zip(ids, texts, strict=True) if "\n" in text]] = True
    return flags


class ItemStop(StoppingCriteria):
    """Per row: done once `n_items` marker lines of `marker` ("story"/"dialogue") are generated."""

    def __init__(self, tokenizer, prompt_width: int, n_items: int, marker: str,
                 newline_ids: torch.Tensor | None = None):
        if marker not in MARKERS:
            raise ValueError(f"item marker {marker!r}; expected one of {sorted(MARKERS)}")
        if n_items < 1:
            raise ValueError(f"n_items={n_items}; expected at least 1")
        self.tokenizer = tokenizer
        self.prompt_width = prompt_width
        self.n_items = n_items
        self.pattern = MARKERS[marker]
        self.newline = newline_token_ids(tokenizer) if newline_ids is None else newline_ids
        self.line_start: list[int] = []  # per row: generated-token index where its line began
        self.found: list[int] = []  # per row: marker lines generated so far
        self.cut: list[int | None] = []  # per row: where the kept text ends, once stopped

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        batch, width = input_ids.shape
        if not self.found:
            self.line_start, self.found, self.cut = [0] * batch, [0] * batch, [None] * batch
        done = torch.zeros(batch, dtype=torch.bool, device=input_ids.device)
        position = width - self.prompt_width - 1  # index of the newest generated token
        if position < 0:
            return done
        last = input_ids[:, -1].cpu()
        closes = self.newline[last.clamp(max=len(self.newline) - 1)]
        for row in range(batch):
            if self.cut[row] is not None:
                done[row] = True
                continue
            if not closes[row]:
                continue
            start = self.line_start[row]
            # Decode from the token that closed the previous line: a token such as "\n[" starts
            # this line with its tail. Its text up to its newline belongs to the line before.
            first = max(start - 1, 0)
            ids = input_ids[row, self.prompt_width + first : width].tolist()
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            carried = False
            if start > 0:
                text = text.partition("\n")[2]
                previous = self.tokenizer.decode(ids[:1], skip_special_tokens=True)
                carried = bool(previous.rsplit("\n", 1)[-1])  # e.g. the "[" of "\n["
            lines = text.split("\n")
            # Every line but the last is complete; a token may close several at once.
            offset = first if carried else start
            for line in lines[:-1]:
                if self.pattern.match(line.strip()):
                    self.found[row] += 1
                    if self.found[row] >= self.n_items:
                        self.cut[row] = offset
                        done[row] = True
                        break
                offset = position + 1  # later lines begin inside this newline token
            self.line_start[row] = position + 1
        return done

    def cut_positions(self, batch: int) -> Sequence[int | None]:
        """Per row: generated tokens to keep (before the stopping marker line), or None."""
        return self.cut if self.cut else [None] * batch


def item_cut(tokenizer, token_ids: Sequence[int], n_items: int, marker: str,
             newline_ids: torch.Tensor) -> int | None:
    """Generated tokens to keep from a finished row (None: it never completed n items).

    The same rule as `ItemStop`, applied after decoding: pipeline.model.steered_generation's per-job
    seeded loop ends the row with an `ItemStop`, and this finds where its kept text ends.
    """
    stop = ItemStop(tokenizer, 0, n_items, marker, newline_ids)
    ids = list(token_ids)
    for k, token in enumerate(ids):
        if token < len(newline_ids) and newline_ids[token]:
            if stop(torch.tensor([ids[: k + 1]]), None)[0]:
                break
    return stop.cut_positions(1)[0]
