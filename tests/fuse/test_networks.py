import pytest
import torch

from matsight._errors import InputError
from matsight.fuse.config import make_config, validate_scale
from matsight.fuse.networks import build_critics, build_generator, count_parameters


@pytest.mark.parametrize(
    ("scale", "lr_edge", "out_edge"),
    [(2, 8, 16), (4, 4, 16), (8, 2, 16), (64 / 24, 6, 16), (64 / 24, 3, 8)],
)
def test_generator_output_shape(scale, lr_edge, out_edge):
    cfg = make_config("cpu", scale=scale, n_hr_phases=3, n_lr_phases=2, gen_width=8, gen_min_width=4)
    g = build_generator(cfg).eval()
    x = torch.randn(2, 3, lr_edge, lr_edge, lr_edge)
    with torch.no_grad():
        y = g(x)
    assert y.shape == (2, 3, out_edge, out_edge, out_edge)
    torch.testing.assert_close(y.sum(1), torch.ones_like(y[:, 0]))


def test_generator_non_cubic_input():
    cfg = make_config("cpu", scale=4, n_hr_phases=3, n_lr_phases=2, gen_width=8, gen_min_width=4)
    g = build_generator(cfg).eval()
    with torch.no_grad():
        y = g(torch.randn(1, 3, 3, 5, 6))
    assert y.shape == (1, 3, 12, 20, 24)


def test_paper_preset_sizes():
    # parameter counts of the reference networks (REFERENCE.md): 1.1 M / 5.9 M / 20 M and a 1.85 M critic
    expect = {2: 1.12e6, 4: 5.89e6, 8: 20.07e6}
    for sf, n in expect.items():
        cfg = make_config("paper", scale=sf, n_hr_phases=3, n_lr_phases=2)
        assert cfg.lr_crop == 64 / sf and cfg.slice_size == 56
        assert count_parameters(build_generator(cfg)) == pytest.approx(n, rel=0.01)
        (critic,) = build_critics(cfg)
        assert count_parameters(critic) == pytest.approx(1.847e6, rel=0.01)
        assert critic(torch.zeros(2, 3, 56, 56)).shape == (2,)


def test_cpu_preset_training_cube():
    for sf in (1, 2, 4, 8, 64 / 24, 64 / 9):
        cfg = make_config("cpu", scale=sf)
        assert cfg.lr_crop * 64 == cfg.training.output_size * cfg.d
        assert cfg.slice_size >= 16


@pytest.mark.parametrize("bad", [3, 5.5, 0.5, 9, 0, -4, "x"])
def test_bad_scale(bad):
    with pytest.raises(InputError, match="scale"):
        validate_scale(bad)


def test_scale_accepts_64_over_d():
    assert validate_scale(2.6667)[1] == 24
    assert validate_scale(64 / 9)[1] == 9
    assert validate_scale(1)[1] == 64


def test_config_rejects_more_lr_phases():
    with pytest.raises(InputError, match="LR has 3 phases but HR only 2"):
        make_config("cpu", n_hr_phases=2, n_lr_phases=3)
    with pytest.raises(InputError, match="compare_phases"):
        make_config("cpu", n_hr_phases=3, n_lr_phases=2, compare_phases=[3])
    with pytest.raises(InputError, match="preset"):
        make_config("gpu")


def test_written_settings_may_be_none():
    # a command-line option left out (None) keeps the preset's value; a written setting of None is applied
    assert make_config("cpu", slices_per_volume=None).training.slices_per_volume == 8
    assert make_config("cpu", settings={"slices_per_volume": None}).training.slices_per_volume is None
    assert make_config("cpu", scale=8, settings={"gen_width": None}).trunk_width == 512
    assert make_config("cpu", settings={"scale": 2}).scale == 2
    with pytest.raises(InputError, match="slices_per_volume"):
        make_config("cpu", settings={"slices_per_volume": 0})
