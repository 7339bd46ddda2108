"""matsight output folders as layer data with their calibration (no display needed)."""

import json

import numpy as np
import pytest

from matsight._errors import InputError
from matsight.io import write_volume
from matsight.napari.folders import folder_kind, is_labels, read_folder
from matsight.napari.reader import get_reader, read_layers


@pytest.fixture(scope="module")
def tem_folder(tmp_path_factory):
    from matsight.tem import analyze, lattice
    from matsight.tem.report import write_analysis

    frame = lattice.two_phase_image((256, 256), 0.02, seed=0)
    res = analyze(frame.image, 0.02, ["LiF", "Li"])
    assert len(res.spots) > 4 and res.maps is not None
    out = tmp_path_factory.mktemp("tem") / "analysis"
    write_analysis(res, frame.image, out)
    return out, res


def test_tem_analysis(tem_folder):
    out, res = tem_folder
    assert folder_kind(out) == "tem analysis"
    found = read_folder(out)
    by_name = {kw["name"]: (data, kw, kind) for data, kw, kind in found.layers}
    data, kw, kind = by_name["phase_labels"]
    assert kind == "labels" and data.shape == (256, 256)
    assert (
        kw["scale"] == (0.02, 0.02) and kw["units"] == "nm"
    )  # the tif has no tags: spots.json's calibration
    pts, kw, kind = by_name["spots (g, 1/nm)"]
    assert kind == "points" and len(pts) == 2 * len(res.spots)
    assert np.allclose(10 / np.hypot(*pts[: len(res.spots)].T), res.spots.d)  # d (Å) = 10 / |g| (1/nm)
    assert np.allclose(pts[len(res.spots) :], -pts[: len(res.spots)])  # Friedel mates
    assert found.notes[0].startswith("tem: phases found")


def test_calibrated_volumes_and_labels(tmp_path):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, (6, 20, 24)).astype(np.uint8)
    grey = rng.random((6, 20, 24)).astype(np.float32)
    write_volume(tmp_path / "labels.tif", labels, spacing=(50.0, 10.0, 10.0))
    write_volume(tmp_path / "grey.tif", grey, spacing=(50.0, 10.0, 10.0))
    np.save(tmp_path / "raw.npy", grey)
    found = read_folder(tmp_path)
    assert found.kind == "folder"
    layers = {kw["name"]: (data, kw, kind) for data, kw, kind in found.layers}
    data, kw, kind = layers["labels"]
    assert kind == "labels" and np.array_equal(data, labels)
    assert kw["scale"] == pytest.approx((50.0, 10.0, 10.0))
    assert layers["grey"][2] == "image" and layers["grey"][1]["scale"] == pytest.approx((50.0, 10.0, 10.0))
    assert layers["raw"][1]["scale"] == (1.0, 1.0, 1.0) and "units" not in layers["raw"][1]
    assert found.notes == ["raw.npy: no calibration recorded; scale 1 (pixels)"]
    assert get_reader(str(tmp_path)) is None  # no matsight marker: napari's own readers take it


def test_restore_output_and_metrics(tmp_path):
    out = tmp_path / "enhanced"
    out.mkdir()
    write_volume(out / "enhanced.tif", np.ones((4, 8, 8), np.float32))
    (out / "enhance.json").write_text(json.dumps({"steps": 8}))
    assert folder_kind(out) == "restore output"
    reader = get_reader(str(out))
    assert reader is not None
    ((data, kw, kind),) = reader(str(out))
    assert kind == "image" and data.shape == (4, 8, 8)

    met = tmp_path / "metrics"
    met.mkdir()
    write_volume(met / "labels.tif", np.eye(8, dtype=np.uint8), spacing=2.0)
    (met / "nmc.json").write_text(json.dumps({"volume_fraction": {"0": 0.875, "1": 0.125}}))
    found = read_folder(met)
    assert found.kind == "metrics" and found.notes == ["volume fractions 0: 0.875, 1: 0.125"]
    assert found.layers[0][1]["scale"] == (2.0, 2.0)


def test_nothing_to_show_is_one_clear_error(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "status.json").write_text(json.dumps({"verdict": "converged"}))
    with pytest.raises(InputError, match=r"^run \(fuse run\) holds no .* generate a volume from it first"):
        read_folder(run)
    with pytest.raises(ValueError, match="holds no"):
        read_layers([str(run)])
    with pytest.raises(InputError, match="is not a folder"):
        read_folder(tmp_path / "missing")
    assert get_reader(str(tmp_path / "missing")) is None
    assert get_reader([str(run), str(run)]) is None


def test_is_labels():
    assert is_labels(np.zeros((4, 4), np.uint8))
    assert not is_labels(np.zeros((4, 4), np.float32))
    assert not is_labels(np.arange(100, dtype=np.uint16).reshape(10, 10))
