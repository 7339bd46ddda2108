import numpy as np
import pytest
import torch

from matsight._errors import InputError
from matsight.data.degrade import blur_kernel, degrade, lr_shape, merge_phases
from matsight.data.microstructures import particle_electrode
from matsight.fuse.degrade import downsample


def test_blur_kernel_paper_rule():
    assert blur_kernel(4) == (3, 0.8)
    assert blur_kernel(8) == (7, 1.4)
    assert blur_kernel(2)[0] == 1  # no blur
    assert blur_kernel(64 / 24)[0] == 3


def test_merge_phases_renumbers_by_smallest_member():
    lab = np.array([0, 1, 2, 3, 2])
    merged, groups = merge_phases(lab, [(0, 2)])
    assert groups == [[0, 2], [1], [3]]
    np.testing.assert_array_equal(merged, [0, 1, 0, 2, 0])
    with pytest.raises(InputError, match="two merge groups"):
        merge_phases(lab, [(0, 2), (2, 3)])
    with pytest.raises(InputError, match="phases 0..3"):
        merge_phases(lab, [(0, 7)])


@pytest.mark.parametrize("d", [32, 16, 8, 24])
@pytest.mark.parametrize("mode", ["resolve", "sample"])
def test_degrade_equals_the_training_loss_degradation(d, mode):
    # a perfect super-resolution (the truth itself) must reproduce the LR volume under the loss's degradation
    gt = particle_electrode((48, 48, 48), seed=2)
    lr, _ = degrade(gt, 64 / d, merge=[(0, 2)], mode=mode)
    merged = np.where(gt == 2, 0, gt).astype(np.int64)
    oh = torch.nn.functional.one_hot(torch.from_numpy(merged), 2).permute(3, 0, 1, 2)[None].double()
    ref = downsample(oh, channels=[0, 1], d=d, mode=mode).argmax(1)[0].numpy()
    assert lr.shape == ref.shape == lr_shape(gt.shape, 64 / d)
    assert (lr == ref).mean() > 0.999  # float32 vs float64 ties at most


def test_degrade_flat_interface_and_sampling():
    vol = np.zeros((32, 32, 32), np.uint8)
    vol[:, :, 16:] = 1
    lr, groups = degrade(vol, 4)
    assert groups == [[0], [1]] and lr.shape == (8, 8, 8)
    np.testing.assert_array_equal(lr[:, :, :4], 0)
    np.testing.assert_array_equal(lr[:, :, 4:], 1)
    s, _ = degrade(vol, 4, mode="sample")
    np.testing.assert_array_equal(s, vol[::4, ::4, ::4])


def test_degrade_bad_inputs():
    with pytest.raises(InputError, match="3D"):
        degrade(np.zeros((8, 8), np.uint8), 2)
    with pytest.raises(InputError, match="integer labels"):
        degrade(np.random.default_rng(0).random((8, 8, 8)), 2)
    with pytest.raises(InputError, match="> 1"):
        degrade(np.zeros((8, 8, 8), np.uint8), 0.5)
