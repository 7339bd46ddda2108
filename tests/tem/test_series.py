import json

import numpy as np
import pytest

from matsight import InputError
from matsight.tem import analyze_series, lattice
from matsight.tem.series import write_series


def _movie(n=4, shape=(224, 224)):
    # LiF throughout; a Li grain appears from frame 2 on (like Li growing out of LiF under the beam)
    frames = []
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    lif = (yy - 112) ** 2 + (xx - 75) ** 2 < 60**2
    li = ((yy - 112) ** 2 + (xx - 150) ** 2 < 65**2) & ~lif
    for i in range(n):
        grains = [lattice.Grain("LiF", (0, 0, 1), 20.0, lif)]
        if i >= 2:
            grains.append(lattice.Grain("Li", (0, 0, 1), 65.0, li))
        frames.append(lattice.lattice_image(shape, 0.02, grains=grains, dose=3000, seed=i).image)
    return np.stack(frames)


def test_series_tracks_phase_appearance(tmp_path):
    frames = _movie()
    res = analyze_series(frames, 0.02, ["Li", "LiF"], frame_time=2.5)
    assert res.first_seen()["LiF"] == 0 and res.first_seen()["Li"] == 2
    assert np.all(res.intensity["LiF"] > 0)
    assert np.all(res.intensity["Li"][:2] == 0) and np.all(res.intensity["Li"][2:] > 0)
    assert res.time_s[-1] == pytest.approx(7.5)
    html = write_series(res, tmp_path, x="time")
    assert html.exists() and (tmp_path / "intensity.png").stat().st_size > 0
    lines = (tmp_path / "series.csv").read_text().splitlines()
    assert lines[0].startswith("frame,time_s,Li_intensity") and len(lines) == 5
    meta = json.loads((tmp_path / "series.json").read_text())
    assert meta["first_seen"]["Li"] == 2
    assert meta["time_source"] == "frame_time"


def test_series_intensity_per_plane_family(tmp_path):
    # the paper follows planes, not only phases ("LiF (002) is dominant over LiF (111)")
    frames = _movie()
    res = analyze_series(frames, 0.02, ["Li", "LiF"])
    assert "LiF {200}" in res.families and "Li {220}" in res.families
    assert np.all(res.families["LiF {200}"] > 0)
    assert np.all(res.families["Li {220}"][:2] == 0) and np.all(res.families["Li {220}"][2:] > 0)
    # the families of a phase add up to the phase's intensity (every matched spot belongs to one family)
    for p in ("Li", "LiF"):
        total = sum(v for f, v in res.families.items() if f.split(" ", 1)[0] == p)
        np.testing.assert_allclose(total, res.intensity[p])
    names = list(res.families)
    assert names.index("LiF {200}") < names.index("LiF {220}")  # by decreasing d within a phase
    write_series(res, tmp_path)
    header = (tmp_path / "series.csv").read_text().splitlines()[0].split(",")
    assert header[:3] == ["frame", "time_s", "Li_intensity"]  # the per-phase columns stay first
    assert "LiF {200}_intensity" in header and "Li {220}_intensity" in header
    meta = json.loads((tmp_path / "series.json").read_text())
    assert "LiF {200}" in meta["families"] and meta["frames"][3]["Li {220}_intensity"] > 0


def _fake_movie(monkeypatch, tmp_path, times):
    from matsight import io as mio
    from matsight.io.microscope import MicroscopeImage

    stack = np.random.default_rng(0).poisson(100, (3, 64, 64)).astype(float)
    img = MicroscopeImage(stack, (0.02, 0.02), axes=("t", "y", "x"), frame_times=times)
    monkeypatch.setattr(mio, "read_microscope", lambda path, **kwargs: img)
    path = tmp_path / "movie.mrc"
    path.write_bytes(b"")
    return path


def test_series_uses_the_files_frame_times(tmp_path, monkeypatch):
    from matsight.tem.frames import read_series

    path = _fake_movie(monkeypatch, tmp_path, np.array([0.0, 0.25, 0.5]))
    frames, ps, labels = read_series(path)  # the three-value form is kept
    frames, ps, labels, times = read_series(path, return_times=True)
    np.testing.assert_allclose(times, [0.0, 0.25, 0.5])
    res = analyze_series(frames, ps, ["LiF"], times=times)
    assert res.time_source == "file"
    np.testing.assert_allclose(res.time_s, [0.0, 0.25, 0.5])
    res = analyze_series(frames, ps, ["LiF"], times=times, frame_time=2.0)  # --frame-time wins
    assert res.time_source == "frame_time"
    np.testing.assert_allclose(res.time_s, [0.0, 2.0, 4.0])
    res = analyze_series(frames, ps, ["LiF"])
    assert res.time_source == "index"
    with pytest.raises(InputError, match="frame times"):
        analyze_series(frames, ps, ["LiF"], times=[0.0, 1.0])


def test_cli_series_says_which_time_axis(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from matsight.cli import app

    path = _fake_movie(monkeypatch, tmp_path, np.array([0.0, 0.25, 0.5]))
    args = ["tem", "series", str(path), "--phases", "LiF"]
    r = CliRunner().invoke(app, [*args, "-o", str(tmp_path / "a")])
    assert r.exit_code == 0, r.output
    assert "time axis: the file's frame times" in r.output
    assert json.loads((tmp_path / "a" / "series.json").read_text())["frames"][2]["time_s"] == 0.5
    r = CliRunner().invoke(app, [*args, "--frame-time", "2", "-o", str(tmp_path / "b")])
    assert r.exit_code == 0, r.output
    assert "--frame-time" in r.output
    assert json.loads((tmp_path / "b" / "series.json").read_text())["frames"][2]["time_s"] == 4.0


def test_series_dask_threads_matches_serial():
    pytest.importorskip("dask")
    frames = _movie(3)
    a = analyze_series(frames, 0.02, ["Li", "LiF"])
    b = analyze_series(frames, 0.02, ["Li", "LiF"], scheduler="threads", workers=2)
    for p in a.phases:
        np.testing.assert_allclose(a.intensity[p], b.intensity[p])


def test_series_errors():
    with pytest.raises(InputError, match="no frames"):
        analyze_series([], 0.02)
    with pytest.raises(InputError, match="scheduler"):
        analyze_series(np.zeros((1, 64, 64)), 0.02, scheduler="cluster")
    with pytest.raises(InputError, match="no frames"):
        analyze_series(np.zeros((0, 64, 64)), 0.02, scheduler="threads")


@pytest.mark.slow
def test_series_dask_distributed_matches_serial():
    pytest.importorskip("distributed")
    frames = _movie(3)
    a = analyze_series(frames, 0.02, ["Li", "LiF"])
    b = analyze_series(frames, 0.02, ["Li", "LiF"], scheduler="distributed", workers=2)
    for p in a.phases:
        np.testing.assert_allclose(a.intensity[p], b.intensity[p])


def test_series_dask_processes_matches_serial():
    pytest.importorskip("dask")
    frames = _movie(2)
    a = analyze_series(frames, 0.02, ["Li", "LiF"])
    b = analyze_series(frames, 0.02, ["Li", "LiF"], scheduler="processes", workers=2)
    for p in a.phases:
        np.testing.assert_allclose(a.intensity[p], b.intensity[p])
