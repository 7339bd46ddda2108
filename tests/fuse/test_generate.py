import math

import numpy as np
import pytest
import torch

from matsight._errors import InputError
from matsight.fuse.config import make_config
from matsight.fuse.networks import build_generator
from matsight.fuse.predict import (
    NOISE_BLOCK,
    _groups,
    border_voxels,
    generate,
    noise_field,
    output_shape,
    receptive_radius,
)


def _generator(scale, *, n_hr=3, n_lr=2, seed=0, upsampling="transpose"):
    """A tiny random generator whose output mixes all phases (so label comparisons can fail)."""
    torch.manual_seed(seed)
    cfg = make_config(
        "cpu",
        scale=scale,
        n_hr_phases=n_hr,
        n_lr_phases=n_lr,
        gen_width=8,
        gen_min_width=4,
        upsampling=upsampling,
    )
    g = build_generator(cfg).eval()
    with torch.no_grad():
        for m in g.modules():
            if isinstance(m, torch.nn.BatchNorm3d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 2)
        g.conv_out.weight.mul_(30)
        x = torch.cat([torch.rand(1, n_lr, 6, 6, 6).round(), torch.randn(1, 1, 6, 6, 6)], 1)
        mean = g.logits(x).mean(dim=(0, 2, 3, 4))
        g.conv_out.bias.sub_(mean)  # centre the phases
    return g


def _lr(shape, seed=0, n=2):
    return np.random.default_rng(seed).integers(0, n, size=shape).astype(np.uint8)


@pytest.mark.parametrize(
    ("scale", "shape"), [(2, (7, 6, 5)), (4, (5, 4, 6)), (8, (3, 4, 3)), (64 / 24, (7, 6, 9))]
)
def test_output_shapes(scale, shape):
    g = _generator(scale)
    lr = _lr(shape)
    sf = 64 / round(64 / scale)
    kept = generate(g, lr, crop=False).labels
    assert kept.shape == tuple(math.floor(n * sf + 1e-9) for n in shape)
    assert kept.dtype == np.uint8 and kept.max() < 3
    cropped = generate(g, lr).labels
    b = border_voxels(sf)
    assert b == math.ceil(sf - 1e-9)
    assert cropped.shape == output_shape(shape, sf) == tuple(n - 2 * b for n in kept.shape)
    # cropping is a view of the same volume: same noise field, same tiles
    np.testing.assert_array_equal(cropped, kept[b:-b, b:-b, b:-b])


@pytest.mark.parametrize(
    ("scale", "tiles", "upsampling"),
    [
        (2, (2, 3, 5), "transpose"),
        (4, (1, 2, 3), "transpose"),
        (64 / 24, (3, 6), "transpose"),
        (4, (1, 3), "resize"),
        (8, (2,), "resize"),
    ],
)
def test_tiled_equals_untiled(scale, tiles, upsampling):
    g = _generator(scale, upsampling=upsampling)
    has_transpose = any(isinstance(m, torch.nn.ConvTranspose3d) for m in g.modules())
    assert has_transpose == (upsampling == "transpose" and scale > 2)  # sf ≤ 2: no ×2 stage at all
    lr = _lr((10, 9, 11), seed=1)
    whole = generate(g, lr, crop=False, tile=64, samples=2)
    assert len(np.unique(whole.labels)) == 3  # the comparison is not trivially all one phase
    # oneDNN picks its kernels by tile shape, so a voxel whose two best logits tie to rounding may flip
    # (seen on an AVX-512 machine: 1 voxel of 506 880, logit gap 2e-7)
    clear = np.ones(whole.labels.shape, bool)
    if float(scale).is_integer():  # (fractional sf: generation aligns its own grid, no plain reference)
        plain = [_plain_forward(g, lr, sample=k) for k in range(2)]
        clear = np.logical_and.reduce([gap > 1e-5 for _, gap in plain])
        assert clear.mean() > 0.999
        for (want, _), got in zip(plain, whole.samples, strict=True):
            np.testing.assert_array_equal(got[clear], want[clear])
    for t in tiles:
        tiled = generate(g, lr, crop=False, tile=t, samples=2)
        for a, b in zip(whole.samples, tiled.samples, strict=True):
            np.testing.assert_array_equal(a[clear], b[clear])
        np.testing.assert_array_equal(whole.entropy[clear], tiled.entropy[clear])


def _plain_forward(g, lr, *, seed=0, sample=0):
    """Labels of the generator's plain forward pass on the whole volume, and each voxel's lead of the best
    logit over the second (near 0: a tie that float rounding may break either way)."""
    x = torch.zeros(1, 3, *lr.shape)
    for c in range(2):
        x[0, c] = torch.from_numpy(lr == c)
    x[0, 2] = torch.from_numpy(noise_field((0, 0, 0), lr.shape, seed=seed, sample=sample))
    with torch.no_grad():
        logits = g.logits(x)[0]
    top2 = logits.topk(2, dim=0).values
    return logits.argmax(0).numpy(), (top2[0] - top2[1]).numpy()


def test_tiles_match_plain_forward():
    # the staged, cropped tile forward equals the generator's own forward pass on the whole volume
    g = _generator(4)
    lr = _lr((6, 7, 5), seed=2)
    got = generate(g, lr, crop=False, tile=2, seed=3).labels
    x = torch.zeros(1, 3, *lr.shape)
    for c in range(2):
        x[0, c] = torch.from_numpy(lr == c)
    x[0, 2] = torch.from_numpy(noise_field((0, 0, 0), lr.shape, seed=3))
    want, gap = _plain_forward(g, lr, seed=3)
    clear = gap > 1e-3  # ignore exact ties of float rounding
    assert clear.mean() > 0.99
    np.testing.assert_array_equal(got[clear], want[clear])


def test_receptive_radius_bounds_influence():
    g = _generator(4)
    r = receptive_radius(g)
    assert r == sum(grp.radius for grp in _groups(g))
    x = torch.cat([torch.rand(1, 2, 15, 15, 15).round(), torch.randn(1, 1, 15, 15, 15)], 1)
    x2 = x.clone()
    x2[0, 2, 7, 7, 7] += 5.0
    with torch.no_grad():
        diff = (g.logits(x) - g.logits(x2)).abs().amax(dim=(0, 1)).numpy()
    idx = np.argwhere(diff > 0)
    # output voxel j has its centre at (j + 0.5) / sf LR voxels
    dist = np.abs((idx + 0.5) / 4 - 7.5).max()
    assert dist <= float(r) + 1e-9
    assert dist >= float(r) - 1.5  # the bound is not loose by more than a voxel or so


def test_noise_field_chunkwise():
    big = noise_field((0, 0, 0), (40, 20, 33), seed=5)
    part = noise_field((7, 16, 30), (20, 4, 3), seed=5)
    np.testing.assert_array_equal(part, big[7:27, 16:20, 30:33])
    assert not np.array_equal(noise_field((0, 0, 0), (4, 4, 4), seed=6), big[:4, :4, :4])
    assert not np.array_equal(noise_field((0, 0, 0), (4, 4, 4), seed=5, sample=1), big[:4, :4, :4])
    # blocks are independent draws, not copies of each other
    assert not np.array_equal(big[:NOISE_BLOCK, :NOISE_BLOCK, :NOISE_BLOCK], big[NOISE_BLOCK:32, :16, :16])
    assert abs(big.mean()) < 0.05 and abs(big.std() - 1) < 0.05


def test_samples_and_entropy():
    g = _generator(2)
    lr = _lr((8, 8, 8), seed=4)
    res = generate(g, lr, samples=3, seed=7)
    assert len(res.samples) == 3 and res.labels is res.samples[0]
    assert res.entropy.shape == res.labels.shape and res.entropy.dtype == np.float32
    assert res.entropy.min() >= 0 and res.entropy.max() <= 1 + 1e-6
    stack = np.stack(res.samples)
    agree = (stack == stack[0]).all(0)
    assert 0 < agree.mean() < 1  # noise changes some voxels, not all
    assert np.all(res.entropy[agree] == 0) and np.all(res.entropy[~agree] > 0)
    # three different phases in three samples: the maximum, ln 3 / ln 3
    all3 = (stack[0] != stack[1]) & (stack[1] != stack[2]) & (stack[0] != stack[2])
    if all3.any():
        np.testing.assert_allclose(res.entropy[all3], 1.0, rtol=1e-5)
    again = generate(g, lr, samples=1, seed=7).labels
    np.testing.assert_array_equal(again, res.labels)
    other = generate(g, lr, samples=1, seed=8).labels
    assert not np.array_equal(other, res.labels)


def test_zarr_and_tif_outputs(tmp_path):
    pytest.importorskip("zarr")
    from matsight.io import read_volume

    g = _generator(4)
    lr = _lr((6, 5, 6), seed=5)
    mem = generate(g, lr, samples=2, tile=2)
    z = generate(g, lr, samples=2, tile=2, out=tmp_path / "sr.zarr", spacing=40.0)
    assert z.paths["samples"] == [tmp_path / "sr.zarr", tmp_path / "sr_sample1.zarr"]
    for k in range(2):
        np.testing.assert_array_equal(read_volume(z.paths["samples"][k]), mem.samples[k])
    np.testing.assert_array_equal(read_volume(tmp_path / "sr_entropy.zarr"), mem.entropy)
    assert not list(tmp_path.glob(".*"))  # no temporary stores left behind
    t = generate(g, lr, out=tmp_path / "sr.tif")
    np.testing.assert_array_equal(read_volume(tmp_path / "sr.tif"), mem.labels)
    assert t.paths["entropy"] is None


def test_dask_scheduler_matches():
    pytest.importorskip("dask")
    g = _generator(2)
    lr = _lr((8, 6, 7), seed=6)
    a = generate(g, lr, tile=2).labels
    b = generate(g, lr, tile=2, scheduler="threads").labels
    np.testing.assert_array_equal(a, b)


def test_run_folder(tmp_path):
    from matsight.fuse.run import save_state as _save

    g = _generator(4)
    cfg = make_config("cpu", scale=4, n_hr_phases=3, n_lr_phases=2, gen_width=8, gen_min_width=4)
    _save(tmp_path / "best.safetensors", cfg, g, [], None, [], {"iteration": 1}, full=False)
    lr = _lr((5, 5, 5))
    np.testing.assert_array_equal(generate(tmp_path, lr).labels, generate(g, lr).labels)


def test_bad_inputs():
    g = _generator(4)
    with pytest.raises(InputError, match="LR phases"):
        generate(g, _lr((4, 4, 4), n=3))
    with pytest.raises(InputError, match="3D"):
        generate(g, _lr((4, 4)))
    with pytest.raises(InputError, match="label"):
        generate(g, np.random.default_rng(0).random((4, 4, 4)))
    with pytest.raises(InputError, match="receptive"):
        generate(g, _lr((4, 4, 4)), overlap=1)
    with pytest.raises(InputError, match="no output"):
        generate(g, _lr((2, 4, 4)))
    with pytest.raises(InputError, match="samples"):
        generate(g, _lr((4, 4, 4)), samples=0)
    with pytest.raises(InputError, match=r"\.zarr"):
        generate(g, _lr((4, 4, 4)), out="x.png")


def test_cli_generate(tmp_path):
    from typer.testing import CliRunner

    from matsight.cli import app
    from matsight.fuse.run import save_state as _save
    from matsight.io import read_volume, write_volume

    g = _generator(4)
    cfg = make_config("cpu", scale=4, n_hr_phases=3, n_lr_phases=2, gen_width=8, gen_min_width=4)
    _save(tmp_path / "run" / "best.safetensors", cfg, g, [], None, [], {"iteration": 1}, full=False)
    lr = _lr((6, 6, 6))
    write_volume(tmp_path / "lr.tif", lr, spacing=100.0)
    args = ["fuse", "generate", str(tmp_path / "run"), "--lr", str(tmp_path / "lr.tif")]
    r = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "sr.tif"), "--samples", "2", "--seed", "3"])
    assert r.exit_code == 0, r.output
    want = generate(g, lr, samples=2, seed=3)
    np.testing.assert_array_equal(read_volume(tmp_path / "sr.tif"), want.labels)
    np.testing.assert_array_equal(read_volume(tmp_path / "sr_sample1.tif"), want.samples[1])
    assert (tmp_path / "sr_entropy.tif").is_file()
    r = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "sr2.tif"), "--keep-border"])
    assert r.exit_code == 0, r.output
    assert read_volume(tmp_path / "sr2.tif").shape == (24, 24, 24)
    # a user mistake: one line, exit code 2
    r = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "sr.png")])
    assert r.exit_code == 2 and "error:" in r.output
