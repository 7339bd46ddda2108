import numpy as np
import pytest
import torch

from matsight import InputError
from matsight.nn.tiling import importance_map, sliding_window_inference, tile_starts, tiled_apply


def test_tile_starts_cover_and_align_with_end():
    assert tile_starts(10, 4, 3) == [0, 3, 6]
    assert tile_starts(11, 4, 3) == [0, 3, 6, 7]
    assert tile_starts(4, 8, 3) == [0]


@pytest.mark.parametrize("mode", ["gaussian", "linear", "constant"])
@pytest.mark.parametrize("shape,roi", [((1, 2, 37, 29), 16), ((2, 1, 9, 13, 11), (4, 8, 5))])
def test_plus_one_predictor_is_exact(mode, shape, roi):
    x = torch.randn(shape)
    y = sliding_window_inference(x, roi, lambda t: t + 1, sw_batch_size=3, overlap=0.4, mode=mode)
    assert torch.allclose(y, x + 1, atol=1e-5)


def test_translation_equivariant_conv_equals_untiled_with_margin():
    torch.manual_seed(0)
    conv = torch.nn.Sequential(
        torch.nn.Conv2d(1, 3, 5, padding=2), torch.nn.Tanh(), torch.nn.Conv2d(3, 2, 3, padding=1)
    )
    x = torch.randn(1, 1, 70, 53)
    with torch.no_grad():
        ref = conv(x)
        # receptive-field radius 3: margin 3 makes tiling exact everywhere, borders included
        y = sliding_window_inference(x, 24, conv, overlap=0.5, margin=3, mode="gaussian")
        assert torch.allclose(y, ref, atol=1e-5)
        # without a margin, tile edges blend in zero-padded values: close but not exact
        y0 = sliding_window_inference(x, 24, conv, overlap=0.5, margin=0, mode="gaussian")
        assert not torch.allclose(y0, ref, atol=1e-5)
        assert (y0 - ref).abs().mean() < 0.05


def test_tiled_apply_numpy_and_errors():
    img = np.random.default_rng(0).normal(size=(40, 40)).astype(np.float32)
    out = tiled_apply(img, lambda t: 2 * t, tile=16, overlap=0.25)
    np.testing.assert_allclose(out, 2 * img, atol=1e-5)
    with pytest.raises(InputError, match="margin"):
        sliding_window_inference(torch.zeros(1, 1, 40, 40), 8, lambda t: t, margin=4)
    with pytest.raises(InputError, match="keep"):
        sliding_window_inference(torch.zeros(1, 1, 40, 40), 16, lambda t: t[..., :8])


def test_importance_map_shapes():
    w = importance_map((5, 7), "linear")
    assert w.shape == (5, 7) and w.max() == 1 and w.min() > 0
    assert w[2, 3] == 1
