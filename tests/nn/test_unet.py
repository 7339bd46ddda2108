import pytest
import torch

from matsight import InputError
from matsight.nn.unet import UNet, pixel_shuffle, sinusoidal_embedding

# outputs stored by an earlier run: another thread count or CPU sums floats in another order (~1e-7);
# a different network would differ by O(1)
STORED = dict(rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape", [(1, 1, 17, 23), (2, 1, 32, 32), (1, 1, 5, 9)])
def test_unet_2d_any_size_with_time(shape):
    net = UNet(features=(4, 8, 16), time_embedding=16)
    y = net(torch.randn(shape), t=torch.rand(shape[0]))
    assert y.shape == shape
    assert y.abs().max() <= 1  # tanh output


def test_unet_3d_odd_size_and_plain_segmentation_setup():
    net = UNet(
        spatial_dims=3,
        in_channels=2,
        out_channels=3,
        features=(2, 4),
        activation="relu",
        output_activation="sigmoid",
        time_embedding=False,
        first_kernel=3,
        last_kernel=3,
    )
    y = net(torch.randn(1, 2, 7, 9, 6))
    assert y.shape == (1, 3, 7, 9, 6)
    assert (y >= 0).all() and (y <= 1).all()


def test_unet_time_changes_output_and_is_required():
    torch.manual_seed(0)
    net = UNet(features=(4, 8), time_embedding=8, output_activation=None)
    x = torch.randn(1, 1, 12, 12)
    assert not torch.allclose(net(x, t=0.1), net(x, t=0.9))
    with pytest.raises(InputError, match="pass t"):
        net(x)
    with pytest.raises(InputError, match="4D tensor"):
        net(torch.zeros(1, 12, 12))


def test_unet_gradients_flow_to_all_parameters():
    net = UNet(features=(4, 8, 8), time_embedding=8, dropout=0.1, norm="group")
    y = net(torch.randn(2, 1, 16, 16), t=torch.tensor([0.2, 1.0]))
    y.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())


def test_pixel_shuffle_3d_matches_definition():
    x = torch.arange(2 * 8 * 2 * 3 * 4, dtype=torch.float32).reshape(2, 8, 2, 3, 4)
    y = pixel_shuffle(x, 2, 3)
    assert y.shape == (2, 1, 4, 6, 8)
    # output voxel (d*2+i, h*2+j, w*2+k) comes from channel i*4+j*2+k at (d, h, w)
    for i, j, k in [(0, 0, 0), (1, 0, 1), (0, 1, 1), (1, 1, 0)]:
        assert torch.equal(y[:, 0, i::2, j::2, k::2], x[:, i * 4 + j * 2 + k])
    # the 2D one is torch's
    x2 = torch.randn(1, 4, 3, 5)
    assert torch.equal(pixel_shuffle(x2, 2, 2), torch.nn.functional.pixel_shuffle(x2, 2))


def test_sinusoidal_embedding_values():
    e = sinusoidal_embedding(torch.tensor([0.0, 0.5]), 6)
    assert e.shape == (2, 6)
    assert torch.allclose(e[0], torch.tensor([0, 0, 0, 1, 1, 1.0]))
    # first frequency is 1 (times scale 1000): sin(500)
    assert torch.isclose(e[1, 0], torch.sin(torch.tensor(500.0)))


def _reference():
    from pathlib import Path

    from safetensors.torch import load_file

    return load_file(str(Path(__file__).with_name("data") / "unet_reference.safetensors"))


@pytest.mark.parametrize(
    ("name", "kw"),
    [
        ("restore", dict(features=(4, 8, 16), time_embedding=8)),
        ("restore_blocks2", dict(features=(4, 8), time_embedding=8, blocks_per_level=2,
                                 dilated_bottleneck=False, subpixel_upsample=False, activation="gelu",
                                 norm="group")),
    ],
)  # fmt: skip
def test_restore_configurations_unchanged_by_the_new_options(name, kw):
    """Outputs and random draws saved before the U-Net gained blocks, gates and pooling options (#40)."""
    ref = _reference()
    torch.manual_seed(5)
    net = UNet(**kw).eval()
    with torch.no_grad():
        torch.testing.assert_close(net(ref["x"], t=torch.tensor([0.3])), ref[f"y/{name}"], **STORED)
    torch.testing.assert_close(torch.rand(4), ref[f"after_rng/{name}"], rtol=0, atol=0)


def test_3d_configuration_unchanged():
    ref = _reference()
    torch.manual_seed(5)
    net = UNet(spatial_dims=3, in_channels=2, out_channels=3, features=(2, 4), activation="relu",
               output_activation="sigmoid", first_kernel=3, last_kernel=3).eval()  # fmt: skip
    with torch.no_grad():
        torch.testing.assert_close(net(ref["x3"]), ref["y/3d"], **STORED)


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("block", ["residual", "double_conv"])
def test_plain_and_gated_variants_any_size(dims, block):
    shape = (2, 2, 9, 11) if dims == 2 else (1, 2, 5, 7, 6)
    for kw in (
        dict(stem=False, downsample="maxpool", upsample="transpose", attention=False),
        dict(stem=True, downsample="conv", upsample="nearest", attention=True),
    ):
        net = UNet(dims, 2, 3, (4, 8, 8), block=block, activation="relu", subpixel_upsample=False,
                   bottleneck=(1,), head_activation=False, last_kernel=1, output_activation=None,
                   time_embedding=8, **kw)  # fmt: skip
        y = net(torch.randn(shape), t=0.5)
        assert y.shape == (shape[0], 3, *shape[2:])
        y.square().mean().backward()
        assert all(p.grad is not None for p in net.parameters())
    assert net.multiple == 4


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        (dict(block="dense"), "block"),
        (dict(downsample="avg"), "downsample"),
        (dict(upsample="bilinear"), "upsample"),
    ],
)
def test_bad_options_name_the_option(kw, match):
    with pytest.raises(InputError, match=match):
        UNet(**kw)


def test_tem_spot_detector_is_a_unet_with_the_shipped_weights_and_outputs_of_its_earlier_class():
    """Outputs of the earlier ``SpotUNet`` class on a fixed input (saved before it became a configured UNet):
    with the shipped weights, and freshly built from seed 3 (same draws, so training is unchanged)."""
    from pathlib import Path

    from safetensors.torch import load_file

    from matsight.nn.device import seed_everything
    from matsight.tem.detector import DEFAULT_WEIGHTS, load_detector
    from matsight.tem.networks import SpotUNet

    ref = load_file(str(Path(__file__).with_name("data") / "spot_unet_reference.safetensors"))
    net, _ = load_detector(DEFAULT_WEIGHTS)
    assert type(net) is UNet and net.multiple == 8
    with torch.no_grad():
        torch.testing.assert_close(net(ref["x"]), ref["y_shipped"], **STORED)
    seed_everything(3)
    fresh = SpotUNet().eval()
    with torch.no_grad():
        torch.testing.assert_close(fresh(ref["x"]), ref["y_seed3"], **STORED)
    again = SpotUNet()
    again.load_state_dict(net.state_dict())  # current names load too
    with torch.no_grad():
        torch.testing.assert_close(again.eval()(ref["x"]), ref["y_shipped"], **STORED)
