import numpy as np
import pytest
import torch

from matsight import InputError
from matsight.restore.config import UNLIMITED_STEPS, RestoreConfig, make_config, parse_slices
from matsight.restore.indi import indi_sample, sample_image, time_grid
from matsight.restore.losses import degrade_path, indi_loss, reverse_huber, sample_t
from matsight.restore.networks import build_network, context_slices


def toy(x, t):
    # F(x, t) = x / 2 + t: simple enough to follow by hand
    return 0.5 * x + t


def test_sampler_reproduces_update_rule_by_hand():
    y = torch.tensor([2.0])
    # N = 4, δ = 1/4, x̂_{t-δ} = (δ/t) F + (1 - δ/t) x̂_t, last step returns F(x̂_δ, δ)
    # t=1:   F = 2;          r = 1/4: x = 0.5 + 1.5          = 2
    # t=3/4: F = 1.75;       r = 1/3: x = 1.75/3 + 2·2/3     = 1.916666…
    # t=1/2: F = 1.458333…;  r = 1/2: x = (1.458333 + 1.916667)/2 = 1.6875
    # t=1/4: F = 0.84375 + 0.25 = 1.09375 (last step)
    seen = []
    out = indi_sample(toy, y, steps=4, callback=lambda i, t, x: seen.append((t, float(x))))
    assert [t for t, _ in seen] == [1.0, 0.75, 0.5, 0.25]
    np.testing.assert_allclose([v for _, v in seen], [2.0, 23 / 12, 1.6875, 1.09375], rtol=1e-6)
    assert float(out) == pytest.approx(1.09375)
    # N = 2 from y = 1: x = ½(1.5) + ½ = 1.25, then F(1.25, ½) = 1.125
    assert float(indi_sample(toy, torch.tensor([1.0]), steps=2)) == pytest.approx(1.125)
    assert time_grid(5) == [1.0, 0.8, 0.6, 0.4, 0.2]


def test_one_step_equals_network_at_t1():
    torch.manual_seed(0)
    cfg = make_config("cpu", features=[4, 8], time_embedding=8, space_to_depth=2, crop=16, context=0)
    net = build_network(cfg).eval()
    y = np.random.default_rng(0).uniform(-0.8, 0.8, (21, 30)).astype(np.float32)
    out = sample_image(net, y, steps=1)
    with torch.no_grad():
        ref = net(torch.from_numpy(y)[None, None], 1.0)[0, 0].numpy()
    np.testing.assert_allclose(out, ref, atol=1e-6)
    assert out.shape == y.shape
    # more steps give another (not identical) image
    assert not np.allclose(sample_image(net, y, steps=3), out)


def test_residual_prediction_is_the_input_minus_t_times_the_degradation():
    torch.manual_seed(0)
    small = dict(features=[4, 8], time_embedding=8, space_to_depth=2, crop=16, context=0)
    net = build_network(make_config("cpu", prediction="residual", **small)).eval()
    x = torch.from_numpy(np.random.default_rng(0).uniform(-0.8, 0.8, (2, 1, 21, 30)).astype(np.float32))
    t = torch.tensor([0.0, 0.5])
    with torch.no_grad():
        out = net(x, t)
        d = 2.0 * net.unet(
            torch.nn.functional.pixel_unshuffle(
                torch.nn.functional.pad(x, (0, 0, 0, 1), mode="replicate"), 2
            ),
            t=t,
        )
        d = torch.nn.functional.pixel_shuffle(d, 2)[..., :21, :30]
    np.testing.assert_allclose(out[0], x[0], atol=0)  # F(x, 0) = x: nothing left to restore
    np.testing.assert_allclose(out[1], x[1] - 0.5 * d[1], atol=1e-6)
    with pytest.raises(InputError, match="prediction"):
        make_config("cpu", prediction="noise")


class _RampNet(torch.nn.Module):
    """F(x, t) = x/2 + t + a ramp along the slice's last axis: not flip- or rotation-equivariant."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))  # a parameter, so the sampler finds a device

    def forward(self, x, t):
        ramp = torch.linspace(-1.0, 1.0, x.shape[-1]).expand_as(x)
        return 0.5 * x + t + ramp + self.w


def test_self_ensemble_averages_the_prediction_over_the_8_flips_and_rotations():
    y = np.random.default_rng(2).uniform(-0.5, 0.5, (2, 5, 7)).astype(np.float32)
    net = _RampNet()
    plain = sample_image(net, y, steps=3)
    ens = sample_image(net, y, steps=3, ensemble=True)
    # the ramps along +x, −x, +y, −y cancel: what is left is the equivariant part, followed by hand
    expected = indi_sample(toy, torch.from_numpy(y), steps=3).numpy()
    np.testing.assert_allclose(ens, expected, atol=1e-6)
    ramp = np.linspace(-1.0, 1.0, 7, dtype=np.float32)
    np.testing.assert_allclose(sample_image(net, y, steps=1), 0.5 * y + 1 + ramp, atol=1e-6)
    assert np.abs(plain - ens).max() > 0.1


def test_tiled_sampling_matches_whole_image():
    torch.manual_seed(1)
    cfg = make_config(
        "cpu",
        features=[4, 8],
        time_embedding=8,
        space_to_depth=1,
        crop=16,
        first_kernel=3,
        last_kernel=3,
        dilated_bottleneck=False,
        context=1,  # the neighbouring slices are tiled with the slice
    )
    net = build_network(cfg).eval()
    y = np.random.default_rng(1).uniform(-0.5, 0.5, (2, 70, 64)).astype(np.float32)
    ctx = np.random.default_rng(2).uniform(-0.5, 0.5, (2, 2, 70, 64)).astype(np.float32)
    whole = sample_image(net, y, steps=2, tile=1024, context=ctx)
    tiled = sample_image(net, y, steps=2, tile=48, overlap=0.5, context=ctx)
    # blending differs only near tile seams (the receptive field sees different padding there)
    assert np.abs(whole - tiled).mean() < 0.02


def test_reverse_huber_piecewise_values_and_continuity():
    e = torch.tensor([0.0, 0.2, -0.4, 0.5, 1.0, -2.0])
    per = [float(reverse_huber(v, torch.zeros(()), c=0.5)) for v in e]
    # MAE up to c = 0.5, (e² + c²)/(2c) = e² + 0.25 above
    np.testing.assert_allclose(per, [0.0, 0.2, 0.4, 0.5, 1.25, 4.25], rtol=1e-6)
    assert float(reverse_huber(e, torch.zeros_like(e))) == pytest.approx(
        np.mean([0, 0.2, 0.4, 0.5, 1.25, 4.25])
    )
    # slope 1 on both sides of c
    for v in (0.4999, 0.5001):
        x = torch.tensor(v, requires_grad=True)
        reverse_huber(x, torch.zeros(())).backward()
        assert float(x.grad) == pytest.approx(1.0, abs=1e-3)
    w = torch.tensor([1.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    assert float(reverse_huber(e + 0.1, torch.zeros_like(e), weight=w)) == pytest.approx(0.1)


def test_t_mixture_and_path():
    g = torch.Generator().manual_seed(0)
    t = sample_t(20000, a=0.5, generator=g)
    at_one = (t == 1).float().mean()
    assert float(at_one) == pytest.approx(1 / 3, abs=0.015)
    rest = t[t < 1]
    assert float(rest.mean()) == pytest.approx(0.5, abs=0.01)
    assert float(sample_t(1000, a=0.0, generator=g).eq(1).float().mean()) == 0.0
    x, y = torch.zeros(3, 1, 2, 2), torch.ones(3, 1, 2, 2)
    xt = degrade_path(x, y, torch.tensor([0.0, 0.25, 1.0]))
    assert xt[:, 0, 0, 0].tolist() == [0.0, 0.25, 1.0]
    noisy = degrade_path(x, y, torch.tensor([0.0, 0.5, 1.0]), eps=0.1, generator=g)
    assert torch.equal(noisy[0], x[0])  # no noise at t = 0


def test_loss_decreases_when_fitting_identity_pair():
    torch.manual_seed(0)
    cfg = make_config("cpu", features=[4, 8], time_embedding=8, space_to_depth=2, crop=16, context=0)
    net = build_network(cfg)
    x = torch.rand(4, 1, 16, 16) * 2 - 1
    y = x + 0.1
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    first = indi_loss(net, x, y, config=cfg, generator=g).item()
    for _ in range(40):
        loss = indi_loss(net, x, y, config=cfg, generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss) < 0.5 * first


def test_bad_inputs():
    cfg = make_config("cpu", features=[4, 8], time_embedding=8, space_to_depth=2, crop=16, context=0)
    net = build_network(cfg)
    with pytest.raises(InputError, match="NaN"):
        sample_image(net, np.full((8, 8), np.nan, np.float32), steps=2)
    with pytest.raises(InputError, match="positive integer"):
        sample_image(net, np.zeros((8, 8), np.float32), steps=0)
    with pytest.raises(InputError, match="2D slice"):
        sample_image(net, np.zeros((2, 2, 8, 8), np.float32), steps=1)
    with pytest.raises(InputError, match="preset"):
        make_config("huge")
    with pytest.raises(InputError, match="crop"):
        make_config("cpu", crop=8)
    with pytest.raises(InputError, match="features"):
        make_config("cpu", features=[])


def test_presets_and_durations():
    paper = make_config("paper")
    pm, pt = paper.model, paper.training
    assert pm.features[0] == 64 and pm.space_to_depth == 1 and pt.crop == 640 and pt.batch == 2
    assert pt.lr_max == 5e-4 and pt.huber_c == 0.5 and pt.steps == 200_000
    assert pm.prediction == "clean" and pt.eps == 0  # the paper's network outputs the clean image
    cpu = make_config("cpu", budget_s="20m")
    assert cpu.training.budget_s == 1200 and cpu.model.prediction == "residual" and cpu.training.eps == 0.01
    assert cpu.model.context == 0 and pm.context == 0  # the paper's single slice; 2.5D is opt-in
    assert cpu.training.steps == 4000  # the old flat budget_s keeps the preset's step count
    assert parse_slices("45:54") == range(45, 54)
    for bad in ("5", "5:5", "9:3", "a:3", "3:"):
        with pytest.raises(InputError, match="--val-slices must be START:STOP"):
            parse_slices(bad, "--val-slices")


def test_context_slices_are_the_neighbours_clamped_at_the_ends():
    stack = np.arange(5, dtype=np.float32)[:, None, None] * np.ones((1, 2, 3), np.float32)
    got = context_slices(stack, 1, context=2, step=2)  # offsets −4, −2, +2, +4 → slices 0, 0, 3, 4
    assert got.shape == (4, 2, 3)
    np.testing.assert_array_equal(got[:, 0, 0], [0, 0, 3, 4])
    np.testing.assert_array_equal(context_slices(stack, 2, context=1)[:, 0, 0], [1, 3])
    assert context_slices(stack, 2, context=0).shape == (0, 2, 3)


def test_a_2p5d_network_reads_the_neighbouring_slices():
    torch.manual_seed(0)
    cfg = make_config("cpu", features=[4, 8], time_embedding=8, space_to_depth=2, crop=16, context=1)
    net = build_network(cfg).eval()
    assert net.unet.stem.in_channels == 12  # (slice + 2 neighbours) × 2×2 space-to-depth
    rng = np.random.default_rng(0)
    y = rng.uniform(-0.8, 0.8, (21, 30)).astype(np.float32)
    ctx = rng.uniform(-0.8, 0.8, (2, 21, 30)).astype(np.float32)
    out = sample_image(net, y, steps=1, context=ctx)
    with torch.no_grad():
        ref = net(torch.from_numpy(y)[None, None], 1.0, cond=torch.from_numpy(ctx)[None])[0, 0].numpy()
    np.testing.assert_allclose(out, ref, atol=1e-6)  # N = 1 is F(y, 1 | neighbours)
    assert np.abs(sample_image(net, y, steps=1, context=ctx[::-1]) - out).max() > 1e-4
    with pytest.raises(InputError, match="2 neighbouring LQ slices"):
        sample_image(net, y, steps=1)
    with pytest.raises(InputError, match="does not match"):
        sample_image(net, y, steps=1, context=ctx[:, :20])


def test_config_groups_take_dotted_and_flat_names():
    cfg = make_config("cpu", crop=64, max_steps=30, steps=5, **{"model.context": 1, "inference.tile": 256})
    assert cfg.training.crop == 64 and cfg.training.steps == 30  # max_steps: optimiser steps
    assert cfg.inference.indi_steps == 5 and cfg.inference.tile == 256  # flat steps: InDI sampling steps
    assert cfg.model.context == 1
    assert RestoreConfig(**cfg.model_dump()) == cfg  # the nested form round-trips
    with pytest.raises(InputError, match="nope"):
        make_config("cpu", nope=1)
    with pytest.raises(InputError, match="training.crop"):
        make_config("cpu", **{"training.crop": 8})


def test_a_budget_without_a_step_count_trains_until_the_budget_ends():
    for preset in ("cpu", "paper"):
        cfg = make_config(preset, budget="5m")
        assert cfg.training.budget_s == 300 and cfg.training.steps == UNLIMITED_STEPS
    assert make_config("cpu", budget="5m", **{"training.steps": 7}).training.steps == 7
    assert make_config("cpu", budget="5m", max_steps=7).training.steps == 7
