"""pipeline.scorecard.html: the report's HTML block, every model-written string escaped."""

from pathlib import Path

from pipeline.scorecard.html import corpus_html, scorecard_html
from pipeline.scorecard.results import judge


def test_model_text_and_row_text_are_escaped(tmp_path: Path):
    corpora = {"m<1>": {"summary": {"n": "<b>3</b>"},
                        "samples": [{"emotion": "calm", "text": "<script>x</script>"}]}}
    block = corpus_html(corpora)
    assert "<script>" not in block and "&lt;script&gt;x&lt;/script&gt;" in block
    assert "m&lt;1&gt;" in block and "&lt;b&gt;3&lt;/b&gt;" in block
    row = judge("V7", "tiny", 250.0, (200.0, 300.0), value_text="<i>250</i>",
                explanation="gap <of> means")
    page = scorecard_html([(row, "passed")], ["a <note>"], corpora, {}, tmp_path)
    assert '<table id="scorecard"' in page and "<i>250</i>" not in page
    assert "a &lt;note&gt;" in page and "gap &lt;of&gt; means" in page
    assert '<tr class="pass">' in page  # V7: a 250 Elo gap clears the 200 threshold
