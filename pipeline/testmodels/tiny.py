"""The tiny Llama-style model that CI and the unit tests run on.

The model is shipped in the repository at `data/models/tiny/` (safetensors weights, tokenizer,
`provenance.json`) and is rebuilt deterministically, byte for byte, by

    python -m pipeline.testmodels.tiny --out data/models/tiny

It is a `LlamaForCausalLM` with random weights (seeded) and a byte-level BPE tokenizer trained on
the paper's own stimuli, so the harness exercises the real code paths of a Llama 3 checkpoint:
byte-level offsets, a BOS that the tokenizer adds, header special tokens, and a chat template
that inserts its own BOS (DESIGN.md pitfall 5). Its outputs are meaningless; only the plumbing is
under test.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import tokenizers
import torch
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from pipeline import DATA_DIR

PAPER_DIR = DATA_DIR / "paper"
TINY_MODEL_DIR = DATA_DIR / "models" / "tiny"
VOCAB_SIZE = 1024

BOS = "<|begin_of_text|>"
END_OF_TEXT = "<|end_of_text|>"
START_HEADER = "<|start_header_id|>"
END_HEADER = "<|end_header_id|>"
EOT = "<|eot_id|>"
PAD = "<|pad|>"
SPECIAL_TOKENS = (BOS, END_OF_TEXT, START_HEADER, END_HEADER, EOT, PAD)

# Llama 3's template without the tool-calling and date branches; the system message is optional.
CHAT_TEMPLATE = (
    "{{- bos_token }}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'"
    " + message['content'] + '<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
    "{%- endif %}"
)

MODEL_SHAPE: dict[str, Any] = {
    "hidden_size": 64,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 128,
    "max_position_embeddings": 2048,
    "tie_word_embeddings": False,
}


def _strings_under(obj: Any, keys: frozenset[str]) -> Iterator[str]:
    """Yield every string value stored under one of `keys`, anywhere in a JSON tree, in order."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            if key in keys and isinstance(value, str):
                yield value
            else:
                yield from _strings_under(value, keys)
    elif isinstance(obj, list):
        for item in obj:
            yield from _strings_under(item, keys)


def _load_json(paper_dir: Path, name: str) -> Any:
    path = paper_dir / name
    if not path.is_file():
        raise FileNotFoundError(
            f"paper stimulus file {path} is missing; the tiny tokenizer is trained on the paper's "
            f"stimuli, so point paper_dir at the folder holding {name}"
        )
    return json.loads(path.read_text(encoding="utf-8"))


def stimulus_corpus(paper_dir: Path = PAPER_DIR) -> list[str]:
    """The paper's stimuli as a list of texts, in a fixed order (the tokenizer's training corpus).

    Read with `json` directly so the tiny model does not depend on the typed stimulus loader.
    """
    emotions = _load_json(paper_dir, "emotions.json")["emotions"]
    topics = _load_json(paper_dir, "topics.json")["topics"]
    story_templates = _strings_under(
        _load_json(paper_dir, "story_prompt.json"),
        frozenset(
            {
                "template",
                "template_compact_bullets",
                "naturally_expressed",
                "emotion_deflection",
                "unexpressed_story_writing",
                "unexpressed_discussing_others",
            }
        ),
    )
    activities = _strings_under(
        _load_json(paper_dir, "activities.json"),
        frozenset({"activity", "pairwise_preference", "probe"}),
    )
    scenarios = _strings_under(
        _load_json(paper_dir, "implicit_scenarios.json"), frozenset({"prompt", "prompt_format"})
    )
    return [*emotions, *topics, *story_templates, *activities, *scenarios]


def corpus_sha256(corpus: list[str]) -> str:
    return hashlib.sha256("\n\x00\n".join(corpus).encode("utf-8")).hexdigest()


def train_tokenizer(corpus: list[str], vocab_size: int = VOCAB_SIZE) -> Tokenizer:
    """A Llama-3-shaped byte-level BPE tokenizer: any text encodes, BOS is added on encode."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus, trainer=trainer)
    bos_id = tokenizer.token_to_id(BOS)
    # Like Llama 3: offsets keep the leading space of a word's token (trim_offsets=False), and
    # exactly one BOS is prepended when special tokens are requested.
    tokenizer.post_processor = processors.Sequence(
        [
            processors.ByteLevel(add_prefix_space=False, trim_offsets=False),
            processors.TemplateProcessing(
                single=f"{BOS}:0 $A:0",
                pair=f"{BOS}:0 $A:0 {BOS}:1 $B:1",
                special_tokens=[(BOS, bos_id)],
            ),
        ]
    )
    return tokenizer


def wrap_tokenizer(tokenizer: Tokenizer) -> PreTrainedTokenizerFast:
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=BOS,
        eos_token=EOT,
        pad_token=PAD,
        chat_template=CHAT_TEMPLATE,
        model_max_length=MODEL_SHAPE["max_position_embeddings"],
    )


def build_model(
    tokenizer: PreTrainedTokenizerFast, seed: int = 0, shape: dict[str, Any] | None = None
) -> LlamaForCausalLM:
    """A seeded random Llama of `shape` (default: the tiny model's MODEL_SHAPE)."""
    eos_ids = [tokenizer.convert_tokens_to_ids(EOT), tokenizer.convert_tokens_to_ids(END_OF_TEXT)]
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=eos_ids,
        pad_token_id=tokenizer.pad_token_id,
        **(MODEL_SHAPE if shape is None else shape),
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=eos_ids,
        pad_token_id=tokenizer.pad_token_id,
    )
    return model.eval()


def check_model_dir(out_dir: Path, what: str) -> None:
    """Refuse to replace a non-empty folder that is not an earlier build (no provenance.json)."""
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / "provenance.json").exists():
        raise ValueError(
            f"refusing to replace {out_dir}: it is not empty and holds no provenance.json, so it "
            f"is not a {what} folder; pass --out a new folder or an earlier {what} build"
        )


def write_model_dir(out_dir: Path, model, tokenizer, provenance: dict[str, Any],
                    what: str = "model") -> Path:
    """Write weights (safetensors), tokenizer and provenance to `out_dir`.

    Everything is written to a temporary sibling folder first and moved into place at the end,
    so an interrupted build never leaves a half-written model behind.
    """
    out_dir = Path(out_dir)
    check_model_dir(out_dir, what)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        (staging / "provenance.json").write_text(
            json.dumps(provenance, indent=2, sort_keys=True) + "\n", encoding="utf-8"
        )
        # mkdtemp makes a private folder; the shipped model is meant to be readable by everyone.
        staging.chmod(0o755)
        for path in staging.iterdir():
            path.chmod(0o644)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(staging, out_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return out_dir


def library_versions() -> dict[str, str]:
    return {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
    }


def build_tiny_model(out_dir: Path, seed: int = 0, paper_dir: Path = PAPER_DIR) -> Path:
    """Train the tokenizer, initialise the model and write both (plus provenance) to `out_dir`."""
    out_dir = Path(out_dir)
    check_model_dir(out_dir, "tiny model")
    corpus = stimulus_corpus(paper_dir)
    tokenizer = wrap_tokenizer(train_tokenizer(corpus))
    model = build_model(tokenizer, seed=seed)
    provenance = {
        # The command as it was when the shipped weights were built: provenance.json is part of
        # the weights' fingerprint, so of every artifact key, and a rebuild must match it byte
        # for byte. The module is now pipeline.testmodels.tiny (pipeline/ split into layers).
        "built_by": "python -m pipeline.tiny_model --out <dir>",
        "seed": seed,
        "config": MODEL_SHAPE,
        "vocab_size": len(tokenizer),
        "tokenizer_vocab_size": tokenizer.backend_tokenizer.get_vocab_size(),
        "special_tokens": list(SPECIAL_TOKENS),
        "corpus_files": [
            "emotions.json",
            "topics.json",
            "story_prompt.json",
            "activities.json",
            "implicit_scenarios.json",
        ],
        "corpus_texts": len(corpus),
        "corpus_sha256": corpus_sha256(corpus),
        "versions": library_versions(),
    }
    return write_model_dir(out_dir, model, tokenizer, provenance, what="tiny model")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=TINY_MODEL_DIR, help="output folder")
    parser.add_argument("--seed", type=int, default=0, help="weight initialisation seed")
    parser.add_argument(
        "--paper-dir", type=Path, default=PAPER_DIR, help="folder holding the paper's JSON stimuli"
    )
    args = parser.parse_args(argv)
    transformers.utils.logging.disable_progress_bar()
    out = build_tiny_model(args.out, seed=args.seed, paper_dir=args.paper_dir)
    size = sum(p.stat().st_size for p in out.iterdir())
    print(f"wrote {out} ({size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
