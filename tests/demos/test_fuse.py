import inspect
import time

import numpy as np
import pytest

from matsight.demos import fuse as demo
from matsight.io import read_volume


def test_demo_trains_generates_and_reports(tmp_path):
    summary = demo.run(tmp_path / "fuse", seed=2, size=64, iterations=6)
    out = tmp_path / "fuse"
    for name in ("index.html", "sr.tif", "lr.tif", "truth.tif", "metrics.json", "run/best.safetensors"):
        assert (out / name).is_file(), name
    assert summary["truth / LR / SR"].startswith("64³ / 16³ / 56³")
    assert summary["training"].startswith("6 iterations")
    assert 0 <= summary["max |ΔVF| vs truth"] <= 1
    assert summary["LR consistency"].endswith("%")
    assert isinstance(demo.TITLE, str) and demo.TITLE
    # the report marks each target met or not and says what the targets are
    assert (
        summary["targets met"].split(" of ")[0].isdigit() and "LR consistency ≥ 95%" in summary["targets met"]
    )
    html = (out / "index.html").read_text()
    assert "Targets met:" in html and "<th>met</th>" in html and "|ΔVF| ≤ 0.01" in html


def _slow_clock(monkeypatch, factor):
    """Every clock the training could read runs ``factor`` times faster than real time (a busy machine)."""
    for name in ("perf_counter", "monotonic", "time"):
        real = getattr(time, name)
        t0 = real()
        monkeypatch.setattr(time, name, lambda real=real, t0=t0: t0 + factor * (real() - t0))


def test_same_seed_and_steps_give_the_same_volume_on_a_slow_machine(tmp_path, monkeypatch):
    """No wall-clock budget in the demo: a machine 1000× slower (the old 150 s budget: 0.15 s) trains as many
    steps, to the same SR volume."""
    assert "budget" not in inspect.signature(demo.run).parameters
    a = demo.run(tmp_path / "a", seed=1, size=48, iterations=4)
    _slow_clock(monkeypatch, 1000.0)
    b = demo.run(tmp_path / "b", seed=1, size=48, iterations=4)
    assert a["training"].split(" in ")[0] == b["training"].split(" in ")[0] == "4 iterations"
    np.testing.assert_array_equal(
        read_volume(tmp_path / "a" / "sr.tif"), read_volume(tmp_path / "b" / "sr.tif")
    )
    assert a["LR consistency"] == b["LR consistency"]


@pytest.mark.parametrize("marks", [{"x": {"met": "yes"}, "y": {"met": "no"}, "z": {"met": "n/a"}}])
def test_target_summary_counts_judged_targets(marks):
    s = demo._target_summary(marks)
    assert s["targets met"].startswith("1 of 2") and s["targets not met"] == "y"
