"""``fuse evaluate`` of volumes larger than memory: slab by slab, with the in-memory figures."""

import json
import sys
import tracemalloc

import numpy as np
import pytest
from scipy import ndimage

import matsight.fuse.evaluate  # noqa: F401  (the module, which the package's function hides)
from matsight.io.volumes import LazyTif, open_volume, write_volume
from matsight.metrics.microstructure import (
    chord_length_distribution,
    euler_density,
    interfacial_area,
    specific_surface_area,
    triple_phase_boundary,
    volume_fraction,
)
from matsight.metrics.microstructure.streamed import Chords, Counts, Slices, scan

ev = sys.modules["matsight.fuse.evaluate"]


def _three_phase(shape, seed=0, sigma=1.5):
    g = ndimage.gaussian_filter(np.random.default_rng(seed).random(shape), sigma)
    return np.digitize(g, np.quantile(g, [0.4, 0.7])).astype(np.uint8)


@pytest.mark.parametrize("rows", [1, 2, 5, 100])
def test_streamed_counts_equal_the_whole_volume_functions(rows):
    v = _three_phase((13, 17, 11), sigma=1.0)
    v[:, :4] = 1  # a slab of one phase: chords that end at the faces
    counts, slices, chords = (
        Counts(euler=True),
        Slices(v.shape, {0: [0, 5, 12], 1: [3, 16], 2: [0]}),
        Chords(),
    )
    scan(v, [counts, slices, chords], rows=rows)
    assert counts.volume_fraction() == volume_fraction(v)
    assert counts.specific_surface_area() == specific_surface_area(v)
    sp = (1.0, 0.5, 0.25)
    a, b = counts.specific_surface_area(spacing=sp), specific_surface_area(v, spacing=sp)
    assert a == pytest.approx(b, rel=1e-14)
    for norm in ("volume", "faces", "none"):
        assert counts.interfacial_area(normalize=norm) == interfacial_area(v, normalize=norm)
    assert counts.triple_phase_boundary() == triple_phase_boundary(v) > 0
    for p in range(3):
        for ax in range(3):
            assert counts.euler_density(p, slice_axis=ax) == euler_density(v, p, slice_axis=ax)
            assert chords.distribution(p, ax) == chord_length_distribution(v, p, axis=ax).to_dict()
    for ax, idx in slices.picks.items():
        np.testing.assert_array_equal(slices.result[ax], np.take(v, idx, axis=ax))


def test_scan_of_a_file_holds_a_slab_not_the_volume(tmp_path):
    v = _three_phase((128, 256, 256), sigma=1.0)
    path = write_volume(tmp_path / "v.tif", v)
    lazy = open_volume(path)
    assert isinstance(lazy, LazyTif)  # compressed: read page by page, not memory-mapped
    lazy.cache_bytes = 2 * 256 * 256  # the decoded pages it keeps: a slab and the row below
    tracemalloc.start()
    counts = Counts()
    scan(lazy, [counts, Slices(v.shape, {0: [0, 50], 1: [5], 2: [7]})], rows=1)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert counts.volume_fraction() == volume_fraction(v)
    assert peak < v.nbytes / 4, f"peak {peak} B for a {v.nbytes} B volume"
    # reads larger than the cache that overlap the pages it holds
    np.testing.assert_array_equal(lazy[0:2], v[0:2])
    np.testing.assert_array_equal(lazy[np.array([0, 5, 6])], v[[0, 5, 6]])  # page 0 cached before
    np.testing.assert_array_equal(lazy[5:100], v[5:100])
    # the control: loading it whole is what the bound rules out
    tracemalloc.start()
    np.asarray(lazy[:])
    _, whole = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert whole >= v.nbytes


def _case(tmp_path):
    truth = _three_phase((48, 48, 48))
    lr = truth[::4, ::4, ::4].copy()
    sr = truth[4:-4, 4:-4, 4:-4].copy()
    sr[np.random.default_rng(1).random(sr.shape) < 0.05] = 2  # disagreements with the LR and the truth
    hr = _three_phase((2, 64, 64), seed=3)
    return sr, lr, truth, hr


def test_evaluate_streamed_equals_in_memory(tmp_path, monkeypatch):
    sr, lr, truth, hr = _case(tmp_path)
    kw = {
        "hr": hr,
        "lr": lr,
        "n_subvolumes": 6,
        "subvolume_size": 16,
        "n_transport": 1,
        "transport_axes": (0,),
        "summary_size": 24,
        "fft_slices": 4,
    }
    eager = ev.evaluate(sr, truth=truth, **kw)
    monkeypatch.setattr(ev, "TILE_VOXELS", 28**3)  # LR tiles of 3 voxels plus halo: 4³ tiles
    sr_file = open_volume(write_volume(tmp_path / "sr.tif", sr))
    truth_file = open_volume(write_volume(tmp_path / "truth.zarr", truth, chunks=(8, 8, 8)))
    seen = []
    streamed = ev.evaluate(sr_file, truth=truth_file, block=3, callback=seen.append, **kw)
    assert json.dumps(streamed, sort_keys=True) == json.dumps(eager, sort_keys=True)
    assert {p.message for p in seen} >= {"reading SR", "reading truth", "LR consistency", "sub-volumes"}
    # and those are the whole-volume functions' figures
    w = streamed["whole"]["SR"]
    assert w["volume_fraction"] == {str(k): v for k, v in volume_fraction(sr).items()}
    assert w["interface_face_fraction"] == {
        f"{a}-{b}": v for (a, b), v in interfacial_area(sr, normalize="faces").items()
    }
    assert w["triple_phase_boundary"] == triple_phase_boundary(sr)
    whole_lr = ev.lr_consistency(sr, lr, tile=10**6)
    assert streamed["lr_consistency"]["confusion"] == whole_lr["confusion"]
    assert 0.5 < whole_lr["consistency"] < 1


def test_cli_evaluates_files_as_the_library_does(tmp_path):
    from typer.testing import CliRunner

    from matsight.cli import app

    sr, lr, _, hr = _case(tmp_path)
    for name, a in (("sr.tif", sr), ("lr.tif", lr), ("hr.tif", hr)):
        write_volume(tmp_path / name, a)
    out = tmp_path / "report"
    args = ["fuse", "evaluate", str(tmp_path / "sr.tif"), "--out", str(out), "--lr", str(tmp_path / "lr.tif")]
    args += [
        "--hr",
        str(tmp_path / "hr.tif"),
        "--subvolumes",
        "4",
        "--subvolume-size",
        "16",
        "--transport",
        "0",
    ]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    page = (out / "index.html").read_text()
    assert "the whole volume (40×40×40)" in page and "central 256" not in page  # captions from the data
    got = json.loads((out / "metrics.json").read_text())
    want = ev.evaluate(sr, hr=hr, lr=lr, n_subvolumes=4, subvolume_size=16, n_transport=0)
    assert got["whole"] == json.loads(json.dumps(want["whole"]))
    assert got["lr_consistency"]["confusion"] == want["lr_consistency"]["confusion"]
