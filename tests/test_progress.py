"""Long stages report progress inside pytest: throttled lines written past output capture."""

from contextlib import contextmanager
from types import SimpleNamespace

from fixtures.progress import progress_writer
from pipeline.inputs.progress import Ticker


def test_a_ticker_logs_at_most_every_interval_and_always_the_last_unit(monkeypatch):
    clock = iter([0.0, 1.0, 2.0, 20.0, 21.0, 22.0])
    monkeypatch.setattr("pipeline.inputs.progress.time.monotonic", lambda: next(clock))
    lines = []
    ticker = Ticker(lines.append, "m/stories", total=4, unit="calls", every_s=15.0)
    for _ in range(4):
        ticker.update(1)
    assert len(lines) == 2  # one at 20 s (past the interval), one for the last call
    assert lines[0].startswith("m/stories: 3/4 calls (75%), 20s elapsed, about 7s left")
    assert lines[1].startswith("m/stories: 4/4 calls (100%)") and lines[1].endswith("done")


def _config(no_progress: bool, suspended: list):
    @contextmanager
    def disabled():
        suspended.append(True)
        yield

    capman = SimpleNamespace(global_and_fixture_disabled=disabled)
    return SimpleNamespace(getoption=lambda name: no_progress,
                           pluginmanager=SimpleNamespace(getplugin=lambda name: capman))


def test_progress_lines_are_written_with_capture_suspended(capsys):
    suspended = []
    progress_writer(_config(False, suspended))("tiny/activations: 10/10 stories")
    assert suspended == [True]
    assert "tiny/activations: 10/10 stories" in capsys.readouterr().err


def test_no_progress_silences_them(capsys):
    suspended = []
    progress_writer(_config(True, suspended))("tiny/activations: 10/10 stories")
    assert suspended == [] and capsys.readouterr().err == ""
