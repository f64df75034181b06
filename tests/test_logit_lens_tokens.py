"""V1's own-token match: whole-word tokens only, never the first fragment of a word (issue 12)."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.inputs.stimuli import load_emotions
from pipeline.measures.logit_lens import own_token_hits, own_tokens, whole_word_token


class PlantedTokenizer:
    """Encodes from a fixed table: what real byte-level and Metaspace vocabularies do to words."""

    PIECES = ["Ġhappy", "happy", "Ġdis", "gusted", "dis", "s", "ad", "Ġs", "▁calm", "Ġ", "x"]
    ENCODE = {
        " happy": ["Ġhappy"], "happy": ["happy"],  # whole word after a space: a single token
        " disgusted": ["Ġdis", "gusted"], "disgusted": ["dis", "gusted"],  # fragments only
        " sad": ["Ġs", "ad"], "sad": ["s", "ad"],  # 's' is a fragment of many words
        " calm": ["Ġ", "x"], "calm": ["▁calm"],  # a tokenizer adding its own dummy prefix
    }

    def encode(self, text, add_special_tokens=False):
        return [self.PIECES.index(p) for p in self.ENCODE[text]]

    def convert_ids_to_tokens(self, token_id):
        return self.PIECES[token_id]

    def decode(self, ids):
        return "".join(self.PIECES[i] for i in ids).replace("Ġ", " ").replace("▁", " ")


def test_only_whole_word_tokens_are_own_tokens():
    tok = PlantedTokenizer()
    assert whole_word_token(tok, "happy") == tok.PIECES.index("Ġhappy")
    assert whole_word_token(tok, "calm") == tok.PIECES.index("▁calm")
    assert whole_word_token(tok, "disgusted") is None  # not " dis", not "dis"
    assert whole_word_token(tok, "sad") is None  # not "s", the unspaced spelling's first piece
    tokens = own_tokens(tok, ["happy", "disgusted", "sad", "calm"])
    assert [t.single_token for t in tokens] == [True, False, False, True]


def test_a_vector_promoting_a_shared_fragment_is_not_a_hit():
    tok = PlantedTokenizer()
    tokens = own_tokens(tok, ["happy", "disgusted", "sad"])
    logits = np.zeros((3, len(tok.PIECES)))
    logits[0, tok.PIECES.index("Ġhappy")] = 5.0  # happy promotes its word
    logits[1, tok.PIECES.index("Ġdis")] = 5.0  # disgusted promotes only the fragment " dis"
    logits[1, tok.PIECES.index("dis")] = 5.0
    logits[2, tok.PIECES.index("s")] = 5.0  # sad promotes 's'
    assert own_token_hits(logits, tokens, k=2).tolist() == [True, False, False]


def test_real_tokenizers_own_tokens_spell_the_word_after_a_space(real_tokenizer):
    name, tok = real_tokenizer
    emotions = load_emotions()
    tokens = own_tokens(tok, emotions)
    counts = {"smollm2_135m": 106, "qwen25_coder_05b": 113, "gemma3_270m": 139}
    assert sum(t.single_token for t in tokens) == counts[name]
    for t in tokens:
        if t.single_token:
            piece = tok.convert_ids_to_tokens(t.ids[0])
            assert piece[0] in "Ġ▁" and tok.decode(list(t.ids)).strip() == t.emotion


@pytest.mark.parametrize("which", ["tiny", "toy"])
def test_shipped_tokenizers_count_their_single_token_emotions(which):
    from transformers import AutoTokenizer

    from pipeline.testmodels.tiny import TINY_MODEL_DIR

    directory = TINY_MODEL_DIR if which == "tiny" else TINY_MODEL_DIR.parent / "toy"
    tokens = own_tokens(AutoTokenizer.from_pretrained(directory), load_emotions())
    # Measured: the toy's vocabulary holds most emotion words, the tiny one's almost none.
    assert sum(t.single_token for t in tokens) == {"tiny": 1, "toy": 163}[which]
