"""The one progress protocol (matsight.progress) and the CLI's view of it (cli._common.progress_bar)."""

import pytest

from matsight._duration import format_duration, parse_duration
from matsight.cli import _common
from matsight.progress import Progress, report, throttled


def test_fraction_is_the_larger_of_steps_and_time():
    assert Progress(step=5, total=10).fraction == 0.5
    assert Progress(step=5, total=10, seconds=90, budget=100).fraction == 0.9
    assert Progress(step=5, seconds=30, budget=60).fraction == 0.5
    assert Progress(step=5).fraction is None
    assert Progress(step=12, total=10).fraction == 1.0


def test_throttled_passes_the_first_and_the_last_call(monkeypatch):
    clock = iter([0.0, 0.1, 0.2, 0.3])
    monkeypatch.setattr("matsight.progress.time.monotonic", lambda: next(clock))
    seen = []
    cb = throttled(seen.append, interval=10)
    for step in (1, 2, 3, 4):
        report(cb, step=step, total=4)
    assert [p.step for p in seen] == [1, 4]
    assert throttled(None) is None


@pytest.mark.parametrize("seconds", [1, 45, 381, 3725])
def test_format_duration_reads_back(seconds):
    tolerance = 60 if seconds >= 3600 else 0  # hours show minutes only
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds, abs=tolerance)


def test_without_a_terminal_a_line_comes_at_least_every_interval_and_at_the_end(monkeypatch, capsys):
    monkeypatch.delenv("MATSIGHT_PROGRESS", raising=False)
    monkeypatch.setattr(_common.sys.stderr, "isatty", lambda: False, raising=False)
    now = [0.0]
    monkeypatch.setattr(_common.time, "monotonic", lambda: now[0])
    with _common.progress_bar("train", line_every=30) as cb:
        for step in range(1, 101):
            now[0] = step * 1.0  # one step a second: a line at steps 1, 31, 61, 91, and one at the end
            cb(Progress(step=step, total=100, metrics={"loss": 1 / step}))
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 5, lines
    assert lines[1].startswith("train: step 31/100") and "steps/s" in lines[1] and "loss 0.03226" in lines[1]
    assert "ETA 1m09s" in lines[1]  # 69 steps left at 1 step/s
    assert lines[-1].startswith("train: step 100/100")


def test_progress_can_be_silenced(monkeypatch, capsys):
    monkeypatch.setenv("MATSIGHT_PROGRESS", "0")
    with _common.progress_bar("train") as cb:
        assert cb is None
    assert capsys.readouterr().err == ""
