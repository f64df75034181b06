"""The scorecard outputs: one row per criterion and model, the same in HTML, JSON and Markdown,
and model-written text that cannot run in the browser."""

import json
import subprocess
import sys
import textwrap
from html.parser import HTMLParser

import pytest

from pipeline import REPO_ROOT
from pipeline.scorecard.results import CriterionResult, judge, table_rows

PAYLOAD = "<script>alert('pwned')</script>"


class _Tables(HTMLParser):
    """Collects the cells of <table id="scorecard"> and the text of every <script> element."""

    def __init__(self):
        super().__init__()
        self.rows, self.scripts = [], []
        self._in_table = self._in_script = False
        self._cell = None

    def handle_starttag(self, tag, attrs):
        if tag == "table" and ("id", "scorecard") in attrs:
            self._in_table = True
        elif self._in_table and tag == "tr":
            self.rows.append([])
        elif self._in_table and tag == "td":
            self._cell = ""
        elif tag == "script":
            self._in_script = True
            self.scripts.append("")

    def handle_endtag(self, tag):
        if tag == "table":
            self._in_table = False
        elif tag == "td" and self._cell is not None:
            self.rows[-1].append(self._cell)
            self._cell = None
        elif tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data
        if self._in_script:
            self.scripts[-1] += data


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    (tmp / "test_rows.py").write_text(textwrap.dedent(f"""
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import pytest
        from pipeline.scorecard.results import judge

        @pytest.mark.parametrize("model", ["alpha", "beta"])
        @pytest.mark.parametrize("cid,value", [("V3", 9), ("V4", 4.5)])
        def test_row(model, cid, value, scorecard):
            fig = plt.figure(); plt.plot([0, 1])
            result = scorecard.record(judge(cid, model, value, (value - 1, value + 1),
                                            explanation={PAYLOAD!r}), figures={{"line": fig}})
            scorecard.note_corpus(model, {{"n_items": 1}}, [{{"emotion": "afraid",
                                                            "text": {PAYLOAD!r}}}])
            assert result.passed, result.sentence()
    """))
    out = tmp / "out"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", str(tmp / "test_rows.py"), "-p", "fixtures.scorecard",
         "-p", "no:cacheprovider", "--rootdir", str(tmp), "-c", "/dev/null",
         f"--scorecard-dir={out}", f"--html={out / 'scorecard.html'}", "--self-contained-html"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
    )
    return result, out


def test_the_terminal_table_is_printed_once_with_every_row(report):
    result, _ = report
    assert result.stdout.count("replication scorecard") == 1
    assert "V3" in result.stdout and "V4" in result.stdout
    assert "V4 implicit scenarios hit their emotion (softer): 4.5 > 3 on alpha (FAIL" in result.stdout


def test_html_json_and_markdown_hold_the_same_row_per_criterion_and_model(report):
    _, out = report
    parser = _Tables()
    parser.feed((out / "scorecard.html").read_text())
    html_rows = {(row[0], row[1], row[-1].split()[0]) for row in parser.rows if row}
    data = json.loads((out / "scorecard.json").read_text())
    json_rows = {(r["id"], r["model"], r["verdict"]) for r in data["results"]}
    markdown = (out / "scorecard.md").read_text().splitlines()
    md_rows = {tuple(c.strip() for c in line.strip("|").split("|"))[:2] + (
        line.split("|")[-2].split()[0],) for line in markdown if line.startswith("| V")}
    expected = {("V3", m, "PASS") for m in ("alpha", "beta")} | {
        ("V4", m, "FAIL") for m in ("alpha", "beta")}
    assert html_rows == json_rows == md_rows == expected
    assert len([row for row in parser.rows if row]) == 4  # the header row has no <td>


def test_model_written_script_tags_are_inert_in_the_report(report):
    _, out = report
    page = (out / "scorecard.html").read_text()
    parser = _Tables()
    parser.feed(page)
    assert not any("pwned" in script for script in parser.scripts)
    assert PAYLOAD not in page
    assert "&lt;script&gt;alert(&#x27;pwned&#x27;)&lt;/script&gt;" in page
    assert PAYLOAD not in (out / "scorecard.md").read_text()


def test_figures_are_embedded_so_the_html_stands_alone(report):
    _, out = report
    page = (out / "scorecard.html").read_text()
    assert "data:image/png;base64" in page or "image/png" in page
    assert (out / "figures" / "alpha-V3-line.png").is_file()


def test_a_failing_row_reads_like_a_sentence():
    result = judge("V3", "llama31_8b", 6, (4, 8), value_text="6/12",
                   explanation="happy landed on proud.")
    assert result.sentence().startswith(
        "V3 implicit scenarios hit their emotion: 6/12 < 8 on llama31_8b (FAIL; 95% CI [4, 8]")
    assert "straddles" in result.sentence() and "happy landed on proud" in result.sentence()


def test_an_unmet_precondition_fails_a_row_whose_value_passes_and_says_why():
    result = judge("V9", "twin", 68, (50, 80), value_text="68/171", explanation="r vs flat.",
                   unmet_precondition="no detectable preference")
    assert not result.passed and result.threshold_met
    assert "68/171 >= 5 on twin (FAIL, precondition unmet: no detectable preference" in (
        result.sentence())
    assert table_rows([(result, "failed")])[0][-1] == "FAIL (precondition)"
    assert CriterionResult.from_json(result.to_json()) == result
    assert judge("V9", "twin", 68, (50, 80), explanation="").passed


def test_b_rows_pass_only_when_the_whole_interval_clears_zero():
    assert not judge("B1", "m", 0.2, (-0.05, 0.4), explanation="").passed
    assert judge("B1", "m", 0.2, (0.05, 0.4), explanation="").passed
