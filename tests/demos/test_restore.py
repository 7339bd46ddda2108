import inspect
import time

import pytest

from matsight.demos import restore as demo


def _slow_clock(monkeypatch, factor):
    """Every clock the training could read runs ``factor`` times faster than real time (a busy machine)."""
    for name in ("perf_counter", "monotonic", "time"):
        real = getattr(time, name)
        t0 = real()
        monkeypatch.setattr(time, name, lambda real=real, t0=t0: t0 + factor * (real() - t0))


def test_restore_demo_trains_its_steps_however_slow_the_machine(tmp_path, monkeypatch):
    """No wall-clock budget: on a machine 1000× slower the demo still trains every one of its steps."""
    assert "budget_s" not in inspect.signature(demo.run).parameters
    _slow_clock(monkeypatch, 1000.0)
    summary = demo.run(tmp_path, seed=0, steps=3, shape=(16, 96, 96))
    assert summary["train steps"] == 3
    assert (tmp_path / "index.html").is_file()


@pytest.mark.slow
def test_restore_demo_runs(tmp_path):
    summary = demo.run(tmp_path, seed=0, steps=150, shape=(16, 96, 96))
    assert (tmp_path / "index.html").is_file()
    assert summary["train steps"] == 150
    assert summary["PSNR one-step (dB)"] > summary["PSNR bicubic (dB)"]
