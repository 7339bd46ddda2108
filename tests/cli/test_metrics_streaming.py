"""``matsight metrics`` of volumes larger than memory: slab by slab, with the in-memory figures."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

import matsight.cli.metrics as metrics_cli
from matsight.cli import app
from matsight.data.microstructures import particle_electrode
from matsight.io.volumes import write_volume

runner = CliRunner()


@pytest.mark.parametrize("ext", ["tif", "zarr", "npy"])
def test_streamed_metrics_equal_the_in_memory_ones(tmp_path, monkeypatch, ext):
    vol = write_volume(tmp_path / f"e.{ext}", particle_electrode((40, 36, 32), radius=4, seed=1))
    args = ["metrics", str(vol), "--axis", "0", "--axis", "2", "--subvolumes", "3", "--subvolume-size", "16"]
    r = runner.invoke(app, [*args, "--json", str(tmp_path / "eager.json")])
    assert r.exit_code == 0, r.output
    monkeypatch.setattr(metrics_cli, "STREAM_VOXELS", 1000)
    monkeypatch.setattr(metrics_cli, "REGION", 24)
    r = runner.invoke(app, [*args, "--json", str(tmp_path / "streamed.json"), "--plot", str(tmp_path / "p")])
    assert r.exit_code == 0, r.output
    assert "measured slab by slab" in r.output and "central 24×24×24 box" in r.output
    eager = json.loads((tmp_path / "eager.json").read_text())
    streamed = json.loads((tmp_path / "streamed.json").read_text())
    assert streamed["region"] == {
        "corner": [8, 6, 4],
        "shape": [24, 24, 24],
        "figures": ["tortuosity", "two_point_correlation", "fft_profile"],
    }
    whole = ("volume_fraction", "specific_surface_area", "interfacial_area", "interface_face_fraction")
    for key in (*whole, "triple_phase_boundary", "euler_density", "chord_length", "subvolumes"):
        assert streamed[key] == eager[key], key
    # the figures that are not streamed are the central box's, and differ from the whole volume's
    assert streamed["tortuosity"] != eager["tortuosity"]
    assert (tmp_path / "p" / "index.html").is_file()


def test_a_grayscale_slab_is_one_line_and_writes_nothing(tmp_path, monkeypatch):
    v = np.random.default_rng(0).random((20, 16, 16)).astype(np.float32)
    vol = write_volume(tmp_path / "grey.tif", v)
    monkeypatch.setattr(metrics_cli, "STREAM_VOXELS", 1000)
    out = tmp_path / "m.json"
    r = runner.invoke(app, ["metrics", str(vol), "--json", str(out)])
    assert r.exit_code == 2
    assert "grayscale" in r.output and "Traceback" not in r.output
    assert not out.exists()
