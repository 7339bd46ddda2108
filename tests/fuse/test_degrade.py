import numpy as np
import pytest
import torch

from matsight.fuse.degrade import blur_rule, downsample
from matsight.fuse.losses import voxelwise_loss, voxelwise_term


def _hand_resolve(p, sf_int, temperature):
    """Paper's degradation written out by hand: blur (k3, σ 0.8), trilinear 1/4, softmax(x/T)."""
    sigma = 0.8
    w = np.exp(-0.5 * (np.arange(-1, 2) / sigma) ** 2)
    w /= w.sum()
    c, n = p.shape[0], p.shape[1]
    padded = np.pad(p, ((0, 0), (1, 1), (1, 1), (1, 1)), mode="edge")
    blurred = np.zeros_like(p)
    for a in range(3):
        for b in range(3):
            for cc in range(3):
                blurred += w[a] * w[b] * w[cc] * padded[:, a : a + n, b : b + n, cc : cc + n]
    m = n // sf_int
    low = np.zeros((c, m, m, m))
    for i in range(m):
        for j in range(m):
            for kk in range(m):
                # align_corners=False: LR voxel i sits at HR coordinate 4i + 1.5 -> mean of voxels 4i+1, 4i+2
                sl = (
                    slice(None),
                    slice(4 * i + 1, 4 * i + 3),
                    slice(4 * j + 1, 4 * j + 3),
                    slice(4 * kk + 1, 4 * kk + 3),
                )
                low[:, i, j, kk] = blurred[sl].mean(axis=(1, 2, 3))
    e = np.exp((low - low.max(0)) / temperature)
    return e / e.sum(0)


def test_blur_rule_matches_paper():
    assert blur_rule(4) == (3, pytest.approx(0.8))
    assert blur_rule(8) == (7, pytest.approx(1.4))
    assert blur_rule(2)[0] == 1


def test_voxelwise_loss_matches_hand_computation():
    rng = np.random.default_rng(0)
    # 3 HR phases; LR shows pore (0) and phase 1, so channels [0, 1] are compared
    raw = rng.random((3, 8, 8, 8))
    raw[0] += 0.03 * np.indices((8, 8, 8))[0] / 8  # a gradient so the LR voxels differ
    p = raw / raw.sum(0)
    lr = np.zeros((2, 2, 2, 2))
    lr[0, :, :, 1] = 1
    lr[1, :, :, 0] = 1
    expect_down = _hand_resolve(p[[0, 1]], 4, 0.01)
    expect = np.mean((expect_down - lr) ** 2)

    pt = torch.tensor(p[None], dtype=torch.float64)
    down = downsample(pt, channels=[0, 1], d=16, mode="resolve", temperature=0.01)
    np.testing.assert_allclose(down[0].numpy(), expect_down, rtol=1e-9, atol=1e-12)
    loss = voxelwise_loss(pt, torch.tensor(lr[None]), channels=[0, 1], d=16)
    assert float(loss) == pytest.approx(expect, rel=1e-9)
    assert 0.01 < expect < 0.99  # not a trivial all-right / all-wrong case


def test_super_sampling_takes_every_sf_th_voxel():
    p = torch.rand(1, 3, 8, 8, 8, dtype=torch.float64)
    down = downsample(p, channels=[0, 2], d=16, mode="sample")
    np.testing.assert_array_equal(down[0].numpy(), p[0, [0, 2]][:, ::4, ::4, ::4].numpy())
    lr = torch.zeros(1, 2, 2, 2, 2, dtype=torch.float64)
    lr[:, 0] = 1
    expect = float(((p[0, [0, 2]][:, ::4, ::4, ::4] - lr[0]) ** 2).mean())
    assert float(voxelwise_loss(p, lr, channels=[0, 2], d=16, mode="sample")) == pytest.approx(expect)


def test_material_only_ignores_extra_material():
    p = torch.zeros(1, 2, 8, 8, 8)
    p[:, 1] = 1  # all material
    lr = torch.zeros(1, 2, 2, 2, 2)
    lr[:, 0] = 1  # LR says pore everywhere
    assert float(voxelwise_loss(p, lr, channels=[0, 1], d=16, material_only=True)) == 0.0
    assert float(voxelwise_loss(p, lr, channels=[0, 1], d=16)) == pytest.approx(1.0)


def test_voxelwise_term_threshold_and_coefficient():
    assert float(voxelwise_term(torch.tensor(0.004))) == 0.0
    assert float(voxelwise_term(torch.tensor(0.02))) == pytest.approx(0.2)
    loss = torch.tensor(0.5, requires_grad=True)
    voxelwise_term(loss, coefficient=10).backward()
    assert float(loss.grad) == 10.0


def test_unseen_phase_is_added_to_pore_before_degrading():
    # the LR pore phase of an NMC-like volume is pore + binder: [[0, 2], 1] sums channels 0 and 2 first
    rng = np.random.default_rng(1)
    raw = rng.random((3, 8, 8, 8))
    p = raw / raw.sum(0)
    merged = np.stack([p[0] + p[2], p[1]])
    pt = torch.tensor(p[None], dtype=torch.float64)
    down = downsample(pt, channels=[[0, 2], 1], d=16, mode="resolve", temperature=0.01)
    np.testing.assert_allclose(down[0].numpy(), _hand_resolve(merged, 4, 0.01), rtol=1e-9, atol=1e-12)
    sampled = downsample(pt, channels=[[0, 2], 1], d=16, mode="sample")
    np.testing.assert_allclose(sampled[0].numpy(), merged[:, ::4, ::4, ::4])


def test_lr_channels_put_inpainted_phases_into_pore():
    from matsight.fuse.config import make_config

    nmc = dict(scale=4, n_hr_phases=3, n_lr_phases=2, compare_phases=[1])
    assert make_config("cpu", **nmc).lr_channels == [[0, 2], 1]
    assert make_config("paper", **nmc).lr_channels == [[0, 2], 1]
    assert make_config("cpu", vw_unseen="drop", **nmc).lr_channels == [0, 1]  # the reference code
    assert make_config("cpu", scale=4, n_hr_phases=3, n_lr_phases=3).lr_channels == [0, 1, 2]
    sep = make_config("cpu", scale=4, n_hr_phases=4, n_lr_phases=2, compare_phases=[2])
    assert sep.lr_channels == [[0, 1, 3], 2]


def test_true_structure_satisfies_the_voxelwise_loss_only_with_binder_in_pore():
    # the truth that made the LR volume must be a zero-cost answer (loss under the 0.005 slack); leaving the
    # binder out of the comparison, as the reference code does, makes the truth itself pay ~10x the slack
    from matsight.data.degrade import degrade
    from matsight.data.microstructures import particle_electrode
    from matsight.fuse.config import make_config
    from matsight.fuse.data import one_hot

    truth = particle_electrode((40, 40, 40), radius=6, seed=3)
    lr, groups = degrade(truth, 4, merge=[(0, 2)])
    assert groups == [[0, 2], [1]]
    t1h = one_hot(torch.from_numpy(truth.astype(np.int64))[None], 3)
    l1h = one_hot(torch.from_numpy(lr.astype(np.int64))[None], 2)
    nmc = dict(scale=4, n_hr_phases=3, n_lr_phases=2, compare_phases=[1])
    merged, dropped = (
        float(voxelwise_loss(t1h, l1h, channels=make_config("cpu", vw_unseen=r, **nmc).lr_channels, d=16))
        for r in ("pore", "drop")
    )
    assert merged < 0.005 < dropped
    assert dropped > 5 * merged


def test_margin_leaves_the_faces_out_of_the_voxelwise_loss():
    # SR = the LR upsampled exactly, except the LR voxels of one face, which the SR gets wrong
    lr_labels = (np.indices((4, 4, 4)).sum(0) % 2).astype(np.int64)
    sr_labels = np.kron(lr_labels, np.ones((4, 4, 4), np.int64))
    sr_labels[:4] = 1 - sr_labels[:4]  # first LR layer (a face) flipped
    probs = torch.nn.functional.one_hot(torch.from_numpy(sr_labels), 2).movedim(-1, 0)[None].double()
    lr = torch.nn.functional.one_hot(torch.from_numpy(lr_labels), 2).movedim(-1, 0)[None].double()
    for mode in ("resolve", "sample"):
        kw = dict(channels=[0, 1], d=16, mode=mode)
        assert float(voxelwise_loss(probs, lr, **kw)) > 0.1  # a quarter of the LR voxels wrong
        assert float(voxelwise_loss(probs, lr, margin=1, **kw)) == pytest.approx(0.0, abs=1e-9)
    probs[..., 8:12, 8:12, 8:12] = probs[..., 8:12, 8:12, 8:12].flip(1)  # an interior LR voxel wrong
    assert float(voxelwise_loss(probs, lr, channels=[0, 1], d=16, mode="sample", margin=1)) > 0.1


def test_lr_margin_is_the_lr_voxels_reaching_outside_the_judged_region():
    from matsight.fuse.config import FuseConfig, make_config

    assert make_config("cpu", scale=4).lr_margin == 1  # 4 cropped voxels = 1 LR voxel
    assert make_config("paper", scale=8).lr_margin == 1
    assert make_config("cpu", scale=64 / 24, output_size=48).lr_margin == 2  # 4 voxels = 1.5 LR voxels
    assert make_config("cpu", scale=4, edge_crop=0).lr_margin == 0
    assert make_config("cpu").training.vw_region == make_config("paper").training.vw_region == "all"
    with pytest.raises(ValueError, match="edge_crop 4 covers the whole 2-voxel"):
        FuseConfig(scale=8, training=dict(output_size=16, edge_crop=4, vw_region="judged"))
    FuseConfig(scale=8, training=dict(output_size=16, edge_crop=4))  # the whole crop counts: nothing left out


@pytest.mark.parametrize("mode", ["resolve", "sample"])
@pytest.mark.parametrize("m", [2, 3])
def test_voxelwise_loss_is_the_share_of_wrong_lr_voxels_for_any_number_of_lr_phases(mode, m):
    # the reference's ×m/2: a wrong LR voxel costs 2/m in a plain MSE over m one-hot channels
    rng = np.random.default_rng(2)
    lr = rng.integers(0, m, (10, 10, 10))
    wrong = lr.copy()
    flat = rng.choice(lr.size, 10, replace=False)  # 1% of the LR voxels
    wrong.flat[flat] = (wrong.flat[flat] + 1) % m
    # HR made of uniform 4³ blocks: the degraded output is the (wrong) block labels, one-hot
    hr = np.kron(wrong, np.ones((4, 4, 4), int))
    probs = torch.nn.functional.one_hot(torch.tensor(hr), m).movedim(-1, 0)[None].double()
    lr_oh = torch.nn.functional.one_hot(torch.tensor(lr), m).movedim(-1, 0)[None].double()
    loss = float(voxelwise_loss(probs, lr_oh, channels=list(range(m)), d=16, mode=mode))
    assert loss == pytest.approx(0.01, rel=1e-6)
    plain = float(((downsample(probs, channels=list(range(m)), d=16, mode=mode) - lr_oh) ** 2).mean())
    assert plain == pytest.approx(0.02 / m, rel=1e-6)  # 0.0067 for m = 3: what the loss used to be
