"""The generator's three upsamplings: the paper's transposed convolution, resize-convolution and sub-pixel
convolution (3D pixel shuffle with ICNR initialisation)."""

from fractions import Fraction

import numpy as np
import pytest
import torch

from matsight.fuse.config import make_config
from matsight.fuse.networks import UPSAMPLINGS, _Up, build_generator, depth_to_space, upsampling_plan
from matsight.fuse.predict import generate


def _cfg(d, upsampling, **kw):
    return make_config(
        "cpu",
        scale=64 / d,
        n_hr_phases=3,
        n_lr_phases=2,
        gen_width=4,
        gen_min_width=2,
        upsampling=upsampling,
        **kw,
    )


@pytest.mark.parametrize("upsampling", UPSAMPLINGS)
def test_every_scale_gives_its_output_shape(upsampling):
    # every supported 64/d, fractional ones included, on one whole block of q LR voxels (q·64/d outputs)
    torch.manual_seed(0)
    for d in range(8, 65):
        sf = Fraction(64, d)
        q = sf.denominator
        g = build_generator(_cfg(d, upsampling)).eval()
        x = torch.randn(1, 3, q, q, q)
        with torch.no_grad():
            y = g(x)
        p = int(q * sf)
        assert tuple(y.shape) == (1, 3, p, p, p), (d, upsampling)
        kinds = [k for k, _ in upsampling_plan(d, upsampling)]
        if upsampling == "shuffle":
            assert ("convT" not in kinds) and (("shuffle" in kinds) == (sf >= 2)), (d, kinds)
        if upsampling == "transpose":
            assert ("convT" in kinds) == (sf > 2)


def test_the_three_plans_have_the_same_stages():
    for d in range(8, 65):
        plans = [upsampling_plan(d, u) for u in UPSAMPLINGS]
        assert len({len(p) for p in plans}) == 1
        assert len({tuple(f for _, f in p) for p in plans}) == 1  # same factors, stage by stage


def test_unknown_upsampling_is_refused():
    with pytest.raises(ValueError, match="upsampling"):
        upsampling_plan(16, "bicubic")
    with pytest.raises(Exception, match="upsampling"):
        make_config("cpu", upsampling="bicubic")


def test_depth_to_space_places_each_channel_at_its_offset():
    r = 2
    x = torch.arange(2 * r**3, dtype=torch.float32).reshape(1, 2 * r**3, 1, 1, 1).repeat(1, 1, 2, 3, 1)
    y = depth_to_space(x, r)
    assert y.shape == (1, 2, 4, 6, 2)
    for c in range(2):
        for i in range(r):
            for j in range(r):
                for k in range(r):
                    block = y[0, c, i::r, j::r, k::r]
                    assert torch.all(block == c * r**3 + (i * r + j) * r + k)
    # the 2D case is torch's own pixel shuffle: one z offset, the same layout in y and x
    x2 = torch.randn(1, 3 * 4, 5, 6)
    x3 = x2.reshape(1, 3, 1, 4, 5, 6).repeat(1, 1, 2, 1, 1, 1).reshape(1, 3 * 8, 1, 5, 6)
    np.testing.assert_array_equal(depth_to_space(x3, 2)[:, :, 0], torch.nn.functional.pixel_shuffle(x2, 2))
    with pytest.raises(ValueError, match="divisible by 8"):
        depth_to_space(torch.zeros(1, 12, 2, 2, 2), 2)


@pytest.mark.parametrize("train_mode", [False, True])
def test_icnr_stage_starts_piecewise_constant(train_mode):
    # at initialisation each r³ output block holds one value: nearest-neighbour upsampling, no checkerboard
    torch.manual_seed(1)
    stage = _Up("shuffle", 2, 6, 5).train(train_mode)
    x = torch.randn(2, 6, 5, 4, 6)
    with torch.no_grad():
        y = stage(x)
    assert y.shape == (2, 5, 10, 8, 12)
    blocks = y.reshape(2, 5, 5, 2, 4, 2, 6, 2)
    first = blocks[:, :, :, :1, :, :1, :, :1]
    assert torch.equal(blocks, first.expand_as(blocks))
    assert float(y.std()) > 0.1  # not constant altogether
    # and equal to nearest-neighbour upsampling of the stage's prototype k3 convolution
    w = stage.conv.weight[::8]
    b = stage.conv.bias[::8]
    conv = torch.nn.functional.conv3d(torch.nn.functional.pad(x, (1,) * 6, mode="replicate"), w, b)
    up = torch.nn.functional.interpolate(conv, scale_factor=2, mode="nearest")
    with torch.no_grad():
        want = torch.relu(stage.bn(up))
    torch.testing.assert_close(y, want, rtol=1e-5, atol=1e-5)


def test_shuffle_generator_learns_away_from_blocks():
    # one optimiser step on a target makes the sub-pixel outputs of a block differ: ICNR is a start only
    torch.manual_seed(2)
    stage = _Up("shuffle", 2, 3, 2)
    opt = torch.optim.SGD(stage.parameters(), lr=0.1)
    x = torch.randn(1, 3, 4, 4, 4)
    target = torch.rand(1, 2, 8, 8, 8)
    loss = ((stage(x) - target) ** 2).mean()
    loss.backward()
    opt.step()
    with torch.no_grad():
        y = stage(x).reshape(1, 2, 4, 2, 4, 2, 4, 2)
    assert not torch.equal(y, y[:, :, :, :1, :, :1, :, :1].expand_as(y))


def test_checkpoint_round_trip(tmp_path):
    from matsight.fuse import load
    from matsight.fuse.run import save_state

    torch.manual_seed(3)
    cfg = _cfg(8, "shuffle")
    g = build_generator(cfg).eval()
    with torch.no_grad():  # move off the ICNR start so that the round trip carries trained-like weights
        for p in g.parameters():
            p.add_(0.05 * torch.randn_like(p))
    save_state(tmp_path / "best.safetensors", cfg, g, [], None, [], {"iteration": 1}, full=False)
    g2, saved, _ = load(tmp_path)
    assert saved.model.upsampling == "shuffle"
    assert [s.kind for s in g2.up] == ["shuffle"] * 3
    for (k, a), (k2, b) in zip(g.state_dict().items(), g2.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(a, b), k
    lr = np.random.default_rng(0).integers(0, 2, size=(4, 5, 4)).astype(np.uint8)
    np.testing.assert_array_equal(generate(tmp_path, lr).labels, generate(g, lr).labels)


@pytest.mark.parametrize("scale", [2, 8, 64 / 24])
def test_shuffle_tiled_equals_untiled(scale):
    # tiled generation crops each stage's margins; the sub-pixel stage must keep that exact
    torch.manual_seed(4)
    g = build_generator(_cfg(round(64 / scale), "shuffle")).eval()
    with torch.no_grad():
        g.conv_out.weight.mul_(30)
    lr = np.random.default_rng(1).integers(0, 2, size=(9, 6, 7)).astype(np.uint8)
    whole = generate(g, lr, crop=False, tile=64)
    assert len(np.unique(whole.labels)) > 1
    tiled = generate(g, lr, crop=False, tile=3)
    assert (tiled.labels == whole.labels).mean() > 0.999  # ties to rounding may flip (test_generate)


def test_auto_is_the_measured_choice_per_scale_and_stored_as_that_choice():
    from matsight.fuse.config import AUTO_UPSAMPLING, auto_upsampling

    for d in range(8, 65):
        sf = 64 / d
        cfg = make_config("cpu", scale=sf)
        assert cfg.model.upsampling == auto_upsampling(sf) != "auto"  # a saved run names its network
        assert cfg.model.upsampling == ("resize" if sf > 4 else "transpose")
        assert make_config("paper", scale=sf).model.upsampling == "transpose"  # the paper's network
        assert make_config("cpu", scale=sf, upsampling="shuffle").model.upsampling == "shuffle"
    assert [b for b, _ in AUTO_UPSAMPLING] == sorted(b for b, _ in AUTO_UPSAMPLING)
    assert AUTO_UPSAMPLING[-1][0] >= 8  # every supported scale has a choice
    # the default of a bare config is still the paper's: runs saved before 'auto' keep their network
    from matsight.fuse.config import FuseConfig

    assert FuseConfig(scale=8).model.upsampling == "transpose"
    assert FuseConfig(scale=8, model={"upsampling": "auto"}).model.upsampling == "resize"
