import json

import numpy as np
import pytest
import torch

from matsight import InputError
from matsight.restore.train import load_model, one_cycle_lr, split_validation, train

TINY = dict(
    features=[4, 8],
    time_embedding=8,
    space_to_depth=2,
    crop=16,
    batch=2,
    val_every=4,
    val_crop=24,
    checkpoint_every=5,
    steps=2,
)


def _pair(rng, shape=(5, 40, 40)):
    hq = np.clip(rng.normal(0, 0.4, shape), -1, 1).astype(np.float32)
    lq = np.clip(0.8 * hq + rng.normal(0, 0.1, shape), -1, 1).astype(np.float32)
    return lq, hq


def test_one_cycle_schedule():
    kw = dict(lr_max=1e-3, pct_start=0.3, div_factor=25, final_div_factor=1e4)
    assert one_cycle_lr(0, **kw) == pytest.approx(4e-5)
    assert one_cycle_lr(0.3, **kw) == pytest.approx(1e-3)
    assert one_cycle_lr(1.0, **kw) == pytest.approx(4e-9)
    assert one_cycle_lr(0.65, **kw) == pytest.approx((1e-3 + 4e-9) / 2)
    # matches torch's OneCycleLR (cosine) at every step
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=1e-3, total_steps=101, pct_start=0.3, three_phase=False, anneal_strategy="cos"
    )
    ours = []
    for i in range(100):
        ours.append(one_cycle_lr(i / 100, **kw))
        assert opt.param_groups[0]["lr"] == pytest.approx(ours[-1], rel=0.05, abs=1e-8)
        opt.step()
        sched.step()


def test_validation_split_holds_out_a_block():
    tr, va = split_validation((20, 64, 64), 0.1, 16)
    assert [r[0] for r in va] == [18, 19] and len(tr) == 18
    tr, va = split_validation((1, 200, 64), 0.1, 32)
    assert tr == [(0, 0, 180)] and va == [(0, 180, 200)]
    # a test block (10..14) left out: validation is the last slices of those given
    tr, va = split_validation((20, 64, 64), 0.1, 16, slices=[*range(10), *range(15, 20)])
    assert [r[0] for r in va] == [18, 19] and [r[0] for r in tr] == [*range(10), 15, 16, 17]
    with pytest.raises(InputError, match="indices"):
        split_validation((20, 64, 64), 0.1, 16, slices=[3, 20])
    # validation slices chosen: the end of the stack stays in training
    tr, va = split_validation((20, 64, 64), 0.1, 16, slices=[*range(10), *range(15, 20)], val_slices=[4, 5])
    assert [r[0] for r in va] == [4, 5] and [r[0] for r in tr] == [0, 1, 2, 3, *range(6, 10), *range(15, 20)]
    with pytest.raises(InputError, match="validation slices"):
        split_validation((20, 64, 64), 0.1, 16, slices=[*range(10)], val_slices=[12])


def test_training_batches_carry_the_neighbouring_lq_slices(rng):
    from matsight.restore.config import make_config
    from matsight.restore.pair_io import Pair
    from matsight.restore.train import _draw_batch, as_training_pair

    # slice i of the LQ is the constant i/10; the LQ's z voxel is 2 HQ slices
    lq = np.broadcast_to((np.arange(8, dtype=np.float32) / 10)[:, None, None], (8, 32, 32)).copy()
    data = as_training_pair(Pair(lq_up=lq, hq=lq.copy(), transform={"scale": [2.0, 2.0, 2.0]}, stats={}))
    assert data.context_step == 2
    cfg = make_config("cpu", **{**TINY, "context": 1})
    a, _, _, c = _draw_batch(data, [(i, 0, 32) for i in range(8)], 16, 32, np.random.default_rng(0), cfg)
    assert c.shape == (32, 2, 16, 16)
    i = np.rint(a[:, 0, 0, 0] * 10).astype(int)
    np.testing.assert_allclose(c[:, 0, 0, 0], np.maximum(i - 2, 0) / 10, atol=1e-6)  # clamped at slice 0
    np.testing.assert_allclose(c[:, 1, 0, 0], np.minimum(i + 2, 7) / 10, atol=1e-6)


def test_a_single_slice_trains_without_context(tmp_path, rng):
    lq, hq = _pair(rng, (1, 48, 48))
    train((lq[0], hq[0]), tmp_path / "m", device="cpu", max_steps=2, **{**TINY, "context": 1})
    net, meta = load_model(tmp_path / "m")
    assert meta["config"].model.context == 0 and net.context == 0


def test_train_writes_model_and_resumes_exactly(tmp_path, rng):
    pair = _pair(rng)
    full = train(pair, tmp_path / "full", device="cpu", max_steps=10, **TINY)
    assert full.steps == 10
    for f in ("model.safetensors", "state.safetensors", "history.json", "curves.png"):
        assert (tmp_path / "full" / f).is_file()
    hist = json.loads((tmp_path / "full" / "history.json").read_text())
    assert any("psnr_1" in h for h in hist) and any("loss" in h for h in hist)

    seen = []

    def stop(p):  # a matsight.progress callback
        seen.append(p)
        if p.step == 7:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(pair, tmp_path / "cut", device="cpu", max_steps=10, callback=stop, **TINY)
    assert not (tmp_path / "cut" / "model.safetensors").exists()
    assert [p.step for p in seen] == list(range(1, 8)) and {p.total for p in seen} == {10}
    assert all(np.isfinite(p.metrics["loss"]) for p in seen) and "psnr_1" in seen[-1].metrics  # val_every=4
    resumed = train(pair, tmp_path / "cut", device="cpu", max_steps=10, **TINY)
    assert resumed.steps == 10
    a, meta = load_model(tmp_path / "full")
    b, _ = load_model(tmp_path / "cut")
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        torch.testing.assert_close(va, vb, msg=k)
    assert meta["config"].model.features == [4, 8] and meta["train"]["steps"] == 10
    # a different network in the same folder is refused
    with pytest.raises(InputError, match="different network"):
        train(pair, tmp_path / "cut", device="cpu", max_steps=12, **{**TINY, "features": [4, 8, 8]})


def test_train_rejects_bad_pairs(tmp_path, rng):
    lq, hq = _pair(rng)
    with pytest.raises(InputError, match="differ in shape"):
        train((lq[:, :30], hq), tmp_path / "m", max_steps=1, **TINY)
    bad = lq.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        train((bad, hq), tmp_path / "m", max_steps=1, **TINY)
    with pytest.raises(InputError, match="normalised"):
        train((lq * 10, hq), tmp_path / "m", max_steps=1, **TINY)
    with pytest.raises(InputError, match="no restore model"):
        load_model(tmp_path / "nothing")
    assert not (tmp_path / "m").exists()


def test_validation_slices_outside_the_pair_are_named_as_such():
    with pytest.raises(InputError, match=r"50:60 are outside the pair's slices 0\.\.10"):
        split_validation((11, 40, 40), 0.1, 16, val_slices=range(50, 60))
    with pytest.raises(InputError, match=r"5:15 reach outside the pair's slices 0\.\.10"):
        split_validation((11, 40, 40), 0.1, 16, val_slices=range(5, 15))
    with pytest.raises(InputError, match="0:11 must be some, not all"):
        split_validation((11, 40, 40), 0.1, 16, val_slices=range(0, 11))


def test_resume_refuses_another_pair_and_a_finished_run_is_not_redone(tmp_path, rng):
    pair = _pair(rng)
    first = train(pair, tmp_path / "m", device="cpu", max_steps=4, **TINY)
    assert first.steps == 4 and first.resumed_at == 0
    model = tmp_path / "m" / "model.safetensors"
    stamp = model.stat().st_mtime_ns
    again = train(pair, tmp_path / "m", device="cpu", max_steps=4, **TINY)
    assert again.steps == again.resumed_at == 4 and again.validation == first.validation
    assert model.stat().st_mtime_ns == stamp
    more = train(pair, tmp_path / "m", device="cpu", max_steps=6, **TINY)
    assert more.steps == 6 and more.resumed_at == 4
    lq, hq = pair
    with pytest.raises(InputError, match=r"another pair \(shape \(5, 40, 40\), now \(4, 40, 40\)\)"):
        train((lq[:4], hq[:4]), tmp_path / "m", device="cpu", max_steps=8, **TINY)
    with pytest.raises(InputError, match="another pair .same shape, other content"):
        train((hq, lq), tmp_path / "m", device="cpu", max_steps=8, **TINY)
    # starting afresh on purpose is still possible
    fresh = train((hq, lq), tmp_path / "m", device="cpu", max_steps=2, resume=False, **TINY)
    assert fresh.steps == 2 and fresh.resumed_at == 0


def test_a_negative_seed_is_a_config_error():
    from matsight.restore.config import make_config

    with pytest.raises(InputError, match="seed"):
        make_config("cpu", seed=-1)


# the flat config that model folders held before the settings were grouped (model / training / inference)
FLAT_CONFIG = {
    "preset": "cpu", "features": [4, 8], "time_embedding": 8, "space_to_depth": 2, "blocks_per_level": 1,
    "dilated_bottleneck": True, "subpixel_upsample": True, "first_kernel": 7, "last_kernel": 7,
    "activation": "swish", "output_activation": "tanh", "context": 0, "prediction": "residual",
    "t_mass_at_one": 0.5, "eps": 0.01, "loss": "reverse_huber", "huber_c": 0.5, "crop": 16, "batch": 2,
    "lr_max": 0.0005, "pct_start": 0.3, "div_factor": 25.0, "final_div_factor": 10000.0, "weight_decay": 0.0,
    "max_steps": 4, "budget_s": None, "flips": True, "rotations": True, "val_fraction": 0.1, "val_every": 4,
    "val_crop": 24, "checkpoint_every": 5, "seed": 0, "steps": 2, "auto_steps": [1, 2],
    "auto_psnr_tolerance": 1.0, "tile": 1024, "overlap": 0.25,
}  # fmt: skip


def test_a_model_folder_with_the_old_flat_config_loads_resumes_and_applies(tmp_path, rng):
    from matsight.nn.checkpoint import load_checkpoint, save_checkpoint
    from matsight.restore import load, predict
    from matsight.restore.config import make_config

    pair = _pair(rng)
    flat = {k: v for k, v in FLAT_CONFIG.items() if k not in ("preset", "budget_s")}
    config = make_config("cpu", **flat)
    train(pair, tmp_path / "m", config=config, device="cpu")
    for name in ("model.safetensors", "state.safetensors"):  # as written before the grouping
        groups, meta = load_checkpoint(tmp_path / "m" / name)
        save_checkpoint(tmp_path / "m" / name, groups, {**meta, "config": FLAT_CONFIG})
    net, meta = load(tmp_path / "m")
    assert meta["config"] == config and meta["config"].inference.indi_steps == 2
    res = predict(tmp_path / "m", pair[0][:2], slice_axis=0, upscaled=True, onestep=False, device="cpu")
    assert res.steps == 2 and res.image.shape == pair[0][:2].shape  # the old flat `steps`: InDI's N
    more = train(pair, tmp_path / "m", device="cpu", **{**flat, "max_steps": 6})
    assert more.resumed_at == 4 and more.steps == 6


def test_train_takes_a_config_and_a_budget(tmp_path, rng):
    from matsight.restore.config import make_config

    pair = _pair(rng)
    config = make_config("cpu", **{**TINY, "max_steps": 100_000})
    res = train(pair, tmp_path / "m", config=config, budget=1.0, device="cpu")
    assert 0 < res.steps < 100_000 and res.elapsed_s >= 1.0
    assert load_model(tmp_path / "m")[1]["config"].training.budget_s == 1.0
