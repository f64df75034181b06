"""The layer sweep: `--layers` parsing, the sweep table and its renderings, and a sweep of the
tiny model end to end whose registry-layer cells equal the scorecard's rows."""

import json
import os
import subprocess
import sys

import pytest

from pipeline import REPO_ROOT
from pipeline.inputs.layers import check_layers, parse_layers
from pipeline.scorecard.results import judge
from pipeline.scorecard.sweep import margin, render_sweep_html, render_sweep_markdown, sweep_table

PAYLOAD = "<script>alert('pwned')</script>"


@pytest.mark.parametrize("text,layers", [
    ("14-24", tuple(range(14, 25))),
    ("14,16,18", (14, 16, 18)),
    ("14-24,30", (*range(14, 25), 30)),
    (" 3, 1-2 ,2", (1, 2, 3)),  # sorted, duplicates dropped, spaces allowed
    ("0", (0,)),
])
def test_layers_parse_as_ranges_and_lists(text, layers):
    assert parse_layers(text) == layers


@pytest.mark.parametrize("text", ["", "a", "5-3", "-1", "1-", "1,,2", "2.5"])
def test_a_malformed_layer_list_is_rejected_with_the_expected_forms(text):
    with pytest.raises(ValueError, match="--layers"):
        parse_layers(text)


def test_a_layer_beyond_the_model_names_the_layer_the_model_and_its_depth():
    check_layers((0, 3), "tiny", 4)
    with pytest.raises(ValueError, match=r"layer 4 does not exist in tiny, which has 4 layers"):
        check_layers((2, 4, 7), "tiny", 4)


def _run(*args, timeout=900):
    return subprocess.run([sys.executable, "-m", "pytest", *args, "-p", "no:randomly"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_layers_deeper_than_a_selected_model_are_a_usage_error(tmp_path):
    result = _run("criteria/test_layer_sweep.py", "-m", "tiny_raw", "--layers", "2-5",
                  f"--scorecard-dir={tmp_path}", timeout=120)
    assert result.returncode == 4, result.stdout + result.stderr  # pytest's usage error
    assert "layer 4 does not exist in tiny_raw, which has 4 layers" in result.stderr


def test_without_layers_the_sweep_skips_and_says_how_to_run_it(tmp_path):
    result = _run("criteria/test_layer_sweep.py", "-m", "tiny_raw", "-rs",
                  f"--scorecard-dir={tmp_path}", timeout=120)
    assert result.returncode == 0 and "1 skipped" in result.stdout, result.stdout
    assert "pass --layers" in result.stdout
    assert not (tmp_path / "scorecard.json").exists()


def _rows(v3: float, v4: float, text: str = ""):
    return [judge("V3", "m", v3, (v3, v3), explanation="", value_text=f"{v3:g}{text}"),
            judge("V4", "m", v4, (v4, v4), explanation="")]


def test_the_table_marks_layers_where_every_row_passes_and_escapes_every_cell():
    table = sweep_table("m", 1, {0: _rows(9, 2), 1: _rows(9, 5, PAYLOAD), 2: _rows(3, 2)})
    assert table["all_pass_layers"] == [0]
    assert table["criteria"] == ["V3", "V4"]
    assert [row["cells"]["V3"]["passed"] for row in table["rows"]] == [True, True, False]
    page = render_sweep_html(table)
    assert PAYLOAD not in page and "&lt;script&gt;" in page
    assert '<tr class="allpass"><td>0 (all pass)</td>' in page
    markdown = render_sweep_markdown(table)
    assert PAYLOAD not in markdown and "| 0 (all pass) | 9 PASS | 2 PASS |" in markdown
    assert "| 1 (registry) |" in markdown


def test_the_plotted_margin_is_positive_on_the_passing_side_of_either_direction():
    assert margin(12, 8, ">=") == pytest.approx(0.5)
    assert margin(4, 8, ">=") == pytest.approx(-0.5)
    assert margin(1.5, 3, "<=") == pytest.approx(0.5)  # V4: lower is better
    assert margin(0.2, 0.0, ">") == pytest.approx(0.2)  # a zero threshold is not divided by
    assert margin(None, 1, ">=") != margin(None, 1, ">=")  # NaN: no value


# The default artifact cache keeps the second run fast; a cold cache steers the tiny model at
# layer 1 once (layer 2 is the registry layer, whose steering run the scorecard shares).
@pytest.mark.slow
def test_a_tiny_sweep_reports_its_table_and_plot_and_matches_the_scorecard_rows(tmp_path):
    out = tmp_path / "reports"
    html_file = out / "scorecard.html"
    result = _run("criteria/test_logit_lens.py", "criteria/test_implicit.py",
                  "criteria/test_numerical.py", "criteria/test_preferences.py",
                  "criteria/test_steering.py", "criteria/test_mirroring.py",
                  "criteria/test_layer_sweep.py", "-m", "tiny_raw", "--layers", "1-2",
                  f"--scorecard-dir={out}", f"--html={html_file}", "--self-contained-html")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "layer sweep: tiny_raw" in result.stdout

    data = json.loads((out / "scorecard.json").read_text())
    sweep = data["layer_sweep"]["tiny_raw"]
    assert sweep["layers"] == [1, 2]
    assert sweep["criteria"] == ["V1", "V2", "V3", "V4", "V5", "V6", "V9", "V10",
                                 "V10_control", "V11", "M1"]
    # The registry layer of the sweep is the scorecard: the same value and verdict per row.
    at_registry = sweep["rows"][1]["cells"]
    rows = {r["id"]: r for r in data["results"] if r["model"] == "tiny_raw"}
    for cid, cell in at_registry.items():
        assert (cell["value"], cell["value_text"], cell["passed"]) == (
            rows[cid]["value"], rows[cid]["value_text"], rows[cid]["passed"]), cid

    page = html_file.read_text()
    table = page[page.index('class="scorecard layer-sweep" data-model="tiny_raw"'):]
    table = table[:table.index("</table>")]
    assert [table.count(f"<tr><td>{layer}") + table.count(f'"allpass"><td>{layer}')
            for layer in (1, 2)] == [1, 1]
    assert table.count('<td class="pass">') + table.count('<td class="fail">') == 2 * 11
    assert 'alt="layer sweep of tiny_raw" src="data:image/png;base64,' in page
    assert (out / "figures" / "tiny_raw-layer-sweep.png").stat().st_size > 1000
    assert "## Layer sweep: tiny_raw" in (out / "scorecard.md").read_text()
