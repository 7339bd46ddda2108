import json

import numpy as np
import pytest

from matsight import InputError
from matsight.data import lattice
from matsight.tem.series import analyze_series, write_series


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
