import importlib
import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

from matsight._errors import InputError
from matsight.data.degrade import degrade
from matsight.data.microstructures import particle_electrode
from matsight.fuse import load, train
from matsight.fuse.config import make_config, saved_config
from matsight.fuse.train import lr_agreement, slice_metrics
from matsight.metrics.microstructure import euler_density, volume_fraction

# a tiny model and cube: the loop, checkpoints and resume are what is tested, not fidelity
TINY = dict(
    gen_width=8,
    gen_min_width=4,
    critic_widths=[4, 4, 8, 8],
    fake_batch=1,
    real_batch=4,
    slices_per_volume=2,
    metrics_every=2,
    checkpoint_every=2,
)


@pytest.fixture(scope="module")
def data():
    gt = particle_electrode((48, 48, 48), seed=3)
    lr, _ = degrade(gt, 4, merge=[(0, 2)])
    return gt, lr


def test_resume_continues_the_iteration_count(tmp_path, data):
    gt, lr = data
    cfg = make_config("cpu", scale=4, **TINY)
    run = tmp_path / "run"
    first = train((lr, gt[24]), run, config=cfg.updated({"steps": 3}))
    assert first.iterations == 3
    _, _, meta = load(run / "last.safetensors")
    assert meta["iteration"] == 3
    again = train((lr, gt[24]), run, config=cfg.updated({"steps": 6}))
    assert again.iterations == 6
    history = json.loads((run / "metrics.json").read_text())
    its = [r["iteration"] for r in history]
    assert its == sorted(its) and its[-1] == 6 and 3 in its  # one history across both calls
    assert (run / "training_curves.png").stat().st_size > 0
    ref = json.loads((run / "hr_reference.json").read_text())
    assert len(ref) == 1 and len(ref[0]["eu"]) == 3 and {"eu0", "eu1", "eu2"} <= set(history[-1])
    gen, saved, _ = load(run)
    assert saved.n_hr_phases == 3 and saved.n_lr_phases == 2 and saved.scale == 4
    # a finished run asked for no more iterations does nothing and keeps its count
    assert train((lr, gt[24]), run, config=cfg.updated({"steps": 6})).iterations == 6


def test_slice_metrics_are_the_metrics_modules(data):
    gt, _ = data
    slices = gt[10:14]
    vf, sa, eu = slice_metrics(slices, 3)
    want_vf = volume_fraction(slices, phases=range(3))
    for p in range(3):
        assert vf[p] == pytest.approx(want_vf[p])
        assert eu[p] == pytest.approx(euler_density(slices, p, slice_axis=0))
    assert (sa > 0).all() and eu[1] > 0  # grains of active material in every slice


def test_weight_average_is_saved_resumed_and_generated_from(tmp_path, data):
    from matsight.nn.checkpoint import load_checkpoint

    gt, lr = data
    cfg = make_config("cpu", scale=4, **{**TINY, "g_every": 1})
    assert (
        cfg.training.ema == 0.99 and make_config("paper").training.ema == 0
    )  # the paper trains without an average
    train((lr, gt[24]), tmp_path, config=cfg.updated({"steps": 4}))
    groups, _ = load_checkpoint(tmp_path / "last.safetensors")
    raw, avg = groups["generator"], groups["generator_ema"]
    weights = [k for k in raw if k.endswith("weight")]
    assert any(not np.allclose(raw[k], avg[k]) for k in weights)
    gen, _, _ = load(tmp_path / "last.safetensors")
    for k, v in gen.state_dict().items():
        assert np.allclose(v.numpy(), avg[k])  # generation uses the average
    best, _ = load_checkpoint(tmp_path / "best.safetensors")
    assert set(best) == {"generator"}  # a best checkpoint is one generator: the average at that iteration
    assert train((lr, gt[24]), tmp_path, config=cfg.updated({"steps": 6})).iterations == 6
    again, _ = load_checkpoint(tmp_path / "last.safetensors")
    assert any(not np.allclose(again["generator_ema"][k], avg[k]) for k in weights)


def test_averaged_generator_gets_its_own_batchnorm_statistics():
    import torch

    from matsight.fuse.networks import build_generator
    from matsight.fuse.train import _recalibrate_batchnorm

    cfg = make_config("cpu", scale=4, n_hr_phases=3, n_lr_phases=2, gen_width=8)
    net = build_generator(cfg)
    x = torch.randn(3, 3, 6, 6, 6)
    with torch.no_grad():
        net.train()
        batch_stats = net(x)  # normalised with x's own statistics
        net.eval()
        before = net(x)  # fresh running statistics (0 mean, unit variance): a different output
    _recalibrate_batchnorm(net, x)
    with torch.no_grad():
        after = net(x)
    assert not net.training
    assert not torch.allclose(before, batch_stats, atol=1e-3)
    # BatchNorm's running variance is unbiased (n/(n-1)): equal up to that factor on 648 values
    assert torch.allclose(after, batch_stats, atol=2e-3)
    assert all(m.momentum == 0.1 for m in net.modules() if isinstance(m, torch.nn.BatchNorm3d))


def test_interrupt_saves_the_state(tmp_path, data, monkeypatch):
    # Ctrl-C (or the GUI's stop, a KeyboardInterrupt in its worker) between checkpoints loses nothing

    gt, lr = data
    cfg = make_config("cpu", scale=4, **{**TINY, "checkpoint_every": 999, "metrics_every": 999, "g_every": 1})
    import matsight.fuse.losses as fl

    real, calls = fl.voxelwise_term, []

    def interrupt_at_third(*a, **k):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(fl, "voxelwise_term", interrupt_at_third)
    with pytest.raises(KeyboardInterrupt):
        train((lr, gt[24]), tmp_path, config=cfg.updated({"steps": 50}))
    _, _, meta = load(tmp_path / "last.safetensors")
    assert meta["iteration"] == 2  # the two finished iterations, not the last periodic checkpoint (none)
    monkeypatch.setattr(fl, "voxelwise_term", real)
    assert train((lr, gt[24]), tmp_path, config=cfg.updated({"steps": 4})).iterations == 4


def test_resume_refuses_other_data(tmp_path, data):
    gt, lr = data
    cfg = make_config("cpu", scale=4, **TINY)
    train((lr, gt[24]), tmp_path, config=cfg.updated({"steps": 1}))
    with pytest.raises(InputError, match="other data"):
        train((lr, gt[24] % 2), tmp_path, config=cfg.updated({"steps": 2}))


def test_lr_agreement_counts_only_lr_material_in_separator_mode():
    lr = np.array([0, 0, 1, 1, 1, 2, 2, 0])
    down = np.array([0, 1, 1, 1, 0, 2, 1, 1])  # 2 pore voxels gained material, 2 material voxels lost
    assert lr_agreement(down, lr) == pytest.approx(4 / 8)
    # the SR may add material in LR pore (fibrils the LR cannot show): only LR material has to stay
    assert lr_agreement(down, lr, material_only=True) == pytest.approx(3 / 5)
    assert lr_agreement(down, np.zeros(8, int), material_only=True) == 1.0


def test_adversarial_term_is_the_mean_over_the_axes():
    from types import SimpleNamespace

    import torch

    from matsight.fuse.losses import adversarial_loss

    class Const(torch.nn.Module):  # a critic that scores every slice v
        def __init__(self, v):
            super().__init__()
            self.v = v

        def forward(self, x):
            return torch.full((x.shape[0], 1), self.v)

    fake = torch.zeros(2, 3, 12, 12, 12)
    cfg = SimpleNamespace(training=SimpleNamespace(edge_crop=2, slices_per_volume=None))
    # one critic per axis scoring 1, 2, 6: −(1 + 2 + 6)/3, so c·l_vw weighs the same as in the paper's
    # l_G = −D(slices of all planes) + c·l_vw whatever the number of axes
    assert float(adversarial_loss([Const(1.0), Const(2.0), Const(6.0)], fake, (0, 1, 2), cfg)) == -3.0
    assert float(adversarial_loss([Const(4.0)], fake, (0, 1, 2), cfg)) == -4.0


def test_hard_critic_view_is_one_hot_forward_and_probability_gradient_backward():
    import torch

    from matsight.fuse.losses import critic_view

    logits = torch.tensor([[[2.0, -1.0, 0.3]], [[0.5, 1.0, 0.2]], [[-1.0, 0.0, 0.9]]]).T[None]  # (1, 3, 1, 3)
    probs = torch.softmax(logits.clone().requires_grad_(True), dim=1)
    assert critic_view(probs, "soft") is probs
    hard = critic_view(probs, "hard")
    assert torch.equal(hard.detach().argmax(1), probs.argmax(1))
    assert torch.equal(hard.detach().sum(1), torch.ones_like(hard[:, 0]))
    assert set(hard.detach().unique().tolist()) == {0.0, 1.0}
    w = torch.randn_like(probs)
    (g_hard,) = torch.autograd.grad((hard * w).sum(), probs, retain_graph=True)
    (g_soft,) = torch.autograd.grad((probs * w).sum(), probs)
    assert torch.allclose(g_hard, g_soft)


def test_critic_input_is_validated():
    assert make_config("cpu", critic_input="hard").training.critic_input == "hard"
    with pytest.raises(InputError, match="critic_input"):
        make_config("cpu", critic_input="argmax")


@pytest.mark.parametrize(
    "case, match",
    [
        ("more_lr_phases", "HR images only 2"),
        ("hr_too_small", "smaller than the"),
        ("float_lr", "label image"),
        ("anisotropic_one_stack", "HR stack per slicing axis"),
        ("lr_2d", "must be 3D"),
    ],
)
def test_bad_inputs(tmp_path, data, case, match):
    gt, lr = data
    hr = gt[24]
    cfg = make_config("cpu", scale=4, **TINY)
    if case == "more_lr_phases":
        lr = gt[::4, ::4, ::4]  # 3 phases
        hr = (gt[24] > 0).astype(np.uint8)  # 2 phases
    elif case == "hr_too_small":
        hr = gt[24, :20, :20]
    elif case == "float_lr":
        lr = lr + np.random.default_rng(0).random(lr.shape)
    elif case == "anisotropic_one_stack":
        cfg = make_config("cpu", scale=4, anisotropic=True, **TINY)
    elif case == "lr_2d":
        lr = lr[0]
    with pytest.raises(InputError, match=match):
        train((lr, hr), tmp_path / "run", config=cfg.updated({"steps": 1}))
    assert not (tmp_path / "run" / "last.safetensors").exists()  # nothing written for a bad input


def test_cli_train_degrade_generate(tmp_path, data, monkeypatch):
    from typer.testing import CliRunner

    from matsight.cli import app

    gt, _ = data
    tifffile.imwrite(tmp_path / "gt.tif", gt)
    tifffile.imwrite(tmp_path / "hr.tif", gt[20])
    r = CliRunner().invoke(
        app,
        [
            "fuse",
            "degrade",
            str(tmp_path / "gt.tif"),
            "--scale",
            "4",
            "--merge",
            "0,2",
            "--out",
            str(tmp_path / "lr.tif"),
        ],
    )
    assert r.exit_code == 0, r.output
    assert "LR phase 0 = HR phase(s) 0, 2" in r.output
    lr = tifffile.imread(tmp_path / "lr.tif")
    np.testing.assert_array_equal(lr, degrade(gt, 4, merge=[(0, 2)])[0])
    # the CLI builds the preset itself: check the command path, tiny sizes come from a short run
    r = CliRunner().invoke(
        app,
        [
            "fuse",
            "train",
            "--lr",
            str(tmp_path / "lr.tif"),
            "--hr",
            str(tmp_path / "hr.tif"),
            "--scale",
            "4",
            "--steps",
            "2",
            "--set",
            "training.ema=0.5",
            "--set",
            "g_every=1",  # a flat name, as before the settings were nested
            "--per-axis-critics",
            "--upsampling",
            "resize",
            "--metrics-every",
            "1",
            "--out",
            str(tmp_path / "run"),
        ],
    )
    assert r.exit_code == 0, r.output
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["preset"] == "cpu" and cfg["model"]["shared_critic"] is False
    assert cfg["training"]["metrics_every"] == 1 and cfg["training"]["steps"] == 2
    assert cfg["training"]["ema"] == 0.5 and cfg["training"]["g_every"] == 1
    assert cfg["model"]["upsampling"] == "resize"  # and generate below rebuilds that generator from the run
    assert len(json.loads((tmp_path / "run" / "metrics.json").read_text())) == 2
    r = CliRunner().invoke(
        app,
        [
            "fuse",
            "generate",
            str(tmp_path / "run"),
            "--lr",
            str(tmp_path / "lr.tif"),
            "--out",
            str(tmp_path / "sr.tif"),
        ],
    )
    assert r.exit_code == 0, r.output
    # 12 LR voxels × 4, one LR voxel cropped per face
    assert tifffile.imread(tmp_path / "sr.tif").shape == (40, 40, 40)
    # output paths that would replace an input or cannot be written are refused before any work
    (tmp_path / "afile").write_text("mine")
    lr_bytes = (tmp_path / "lr.tif").read_bytes()
    for cmd, message in [
        (
            [
                "generate",
                str(tmp_path / "run"),
                "--lr",
                str(tmp_path / "lr.tif"),
                "--out",
                str(tmp_path / "lr.tif"),
            ],
            "also an input",
        ),
        (
            ["degrade", str(tmp_path / "gt.tif"), "--out", str(tmp_path / "afile" / "lr.tif")],
            "is a file, not a folder",
        ),
        (
            [
                "train",
                "--lr",
                str(tmp_path / "lr.tif"),
                "--hr",
                str(tmp_path / "hr.tif"),
                "--out",
                str(tmp_path / "afile"),
            ],
            "is a file; give a folder",
        ),
    ]:
        r = CliRunner().invoke(app, ["fuse", *cmd])
        assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output, r.output
    assert (tmp_path / "lr.tif").read_bytes() == lr_bytes and (tmp_path / "afile").read_text() == "mine"

    # the GUI's worker tasks run the same library calls on files
    from matsight.gui.tasks import fuse_evaluate, fuse_generate

    res = fuse_generate(
        lambda **_: None,
        run=str(tmp_path / "run"),
        lr=str(tmp_path / "lr.tif"),
        out=str(tmp_path / "g.tif"),
        samples=2,
    )
    assert res["shape"] == [40, 40, 40] and len(res["paths"]["samples"]) == 2 and res["paths"]["entropy"]
    res = fuse_evaluate(
        lambda **_: None,
        sr=str(tmp_path / "sr.tif"),
        hr=str(tmp_path / "hr.tif"),
        hr_y=str(tmp_path / "hr.tif"),  # a stack per plane, as for an anisotropic run
        hr_z=str(tmp_path / "hr.tif"),
        lr=str(tmp_path / "lr.tif"),
        out_dir=str(tmp_path / "eval"),
        n_subvolumes=4,
        subvolume_size=16,
        n_transport=0,
    )
    assert 0 <= res["lr_consistency"] <= 1 and (tmp_path / "eval" / "index.html").is_file()


@pytest.mark.parametrize(
    "args, match",
    [
        (["--scale", "3"], "64/d"),
        (["--mode", "blurry"], "mode"),
        (["--preset", "huge"], "unknown preset"),
        (["--compare-phases", "5"], "compare_phases"),
        (["--unseen", "binder"], "vw_unseen"),
        (["--upsampling", "bilinear"], "upsampling"),
        (["--critic-steps", "sometimes"], "critic_steps"),
        (["--augment-axes", "w"], "--augment-axes"),
    ],
)
def test_cli_train_bad_settings(tmp_path, data, args, match):
    from typer.testing import CliRunner

    from matsight.cli import app

    gt, lr = data
    tifffile.imwrite(tmp_path / "lr.tif", lr)
    tifffile.imwrite(tmp_path / "hr.tif", gt[20])
    r = CliRunner().invoke(
        app,
        [
            "fuse",
            "train",
            "--lr",
            str(tmp_path / "lr.tif"),
            "--hr",
            str(tmp_path / "hr.tif"),
            "--steps",
            "1",
            "--out",
            str(tmp_path / "run"),
            *args,
        ],
    )
    assert r.exit_code == 2, r.output
    assert match in r.output and "Traceback" not in r.output
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("region", "margin"), [("judged", 1), ("all", 0)])
def test_voxelwise_loss_counts_the_judged_region(tmp_path, data, monkeypatch, region, margin):
    import matsight.fuse.losses as fuse_train

    seen = []
    real = fuse_train.voxelwise_loss

    def spy(*args, **kw):
        seen.append(kw["margin"])
        return real(*args, **kw)

    monkeypatch.setattr(fuse_train, "voxelwise_loss", spy)
    gt, lr = data
    cfg = make_config("cpu", scale=4, vw_region=region, **{**TINY, "g_every": 1})
    train((lr, gt[24]), tmp_path, config=cfg.updated({"steps": 2}))
    assert seen == [margin, margin]


def test_swapped_anisotropic_hr_stacks_are_reported(tmp_path, caplog):
    from scipy import ndimage as ndi

    from matsight.fuse.data import stack_order_warnings

    # lamellae normal to x: sheets along z and y, 12 voxels apart, with wavy faces
    rng = np.random.default_rng(0)
    z, y, x = np.indices((64, 96, 96))
    wave = ndi.gaussian_filter(rng.standard_normal((64, 96)), 6) * 40
    truth = (np.sin(2 * np.pi * (x + wave[..., None]) / 12) > 0.2).astype(np.uint8)
    lr, _ = degrade(truth, 4)
    # HR slices normal to each axis
    normal_z, normal_y = truth[::8], truth[:, ::8].transpose(1, 0, 2)
    normal_x = truth[:, :, ::8].transpose(2, 0, 1)
    assert stack_order_warnings(lr, [normal_z, normal_y, normal_x], scale=4) == []
    swapped = stack_order_warnings(lr, [normal_x, normal_y, normal_z], scale=4)
    assert len(swapped) == 2
    assert "normal to z (--hr-z) look like the LR volume's slices normal to x" in swapped[0]

    cfg = make_config("cpu", scale=4, anisotropic=True, **TINY)
    with caplog.at_level("WARNING", logger="matsight.fuse.train"):
        train((lr, {"x": normal_z, "y": normal_y, "z": normal_x}), tmp_path, config=cfg.updated({"steps": 1}))
    assert any("check the order of --hr (x), --hr-y, --hr-z" in r.message for r in caplog.records)


@pytest.mark.parametrize(
    ("steps", "shared", "n_steps", "reals"),
    [("per_axis", True, 3, 6), ("joint", True, 1, 2), ("joint", False, 3, 6), ("per_axis", False, 3, 6)],
)
def test_critic_steps_per_axis_or_joint(tmp_path, data, monkeypatch, steps, shared, n_steps, reals):
    # the reference's shared critic takes one Adam step per axis, each on real_batch real crops; "joint"
    # takes one on all axes with real_batch // 3 per axis; per-axis critics always one step each
    import torch

    fuse_train = importlib.import_module("matsight.fuse.train")  # (fuse.train is the function)

    critic_steps, samples = [], []

    class CountingAdam(torch.optim.Adam):
        def step(self, *a, **kw):
            if self.param_groups[0]["params"][0].dim() == 4:  # a critic's (Conv2d) parameters
                critic_steps.append(id(self))
            return super().step(*a, **kw)

    class SpySampler(fuse_train.HRSampler):
        def sample(self, batch, axis=0):
            samples.append((batch, axis))
            return super().sample(batch, axis)

    monkeypatch.setattr(torch.optim, "Adam", CountingAdam)
    monkeypatch.setattr(fuse_train, "HRSampler", SpySampler)
    gt, lr = data
    cfg = make_config(
        "cpu", scale=4, critic_steps=steps, shared_critic=shared, **{**TINY, "real_batch": 6, "g_every": 5}
    )
    train((lr, gt[24]), tmp_path, config=cfg.updated({"steps": 2}))
    assert len(critic_steps) == 2 * n_steps
    assert len(set(critic_steps)) == (1 if shared else 3)
    assert samples == [(reals, a) for a in (0, 1, 2)] * 2


def test_presets_choose_critic_steps_and_augmentation():
    assert make_config("paper").training.critic_steps == "per_axis"
    assert make_config("cpu").training.critic_steps == "joint"
    assert make_config("cpu").hr_augment == (True, True, True)
    # the reference's rotation flags for anisotropic data: only the x plane (--hr, the separator's speckles)
    assert make_config("cpu", anisotropic=True).hr_augment == (False, False, True)
    assert make_config("cpu", anisotropic=True, augment_axes=[True, False, False]).hr_augment == (
        True,
        False,
        False,
    )
    with pytest.raises(InputError, match="augment_axes"):
        make_config("cpu", augment_axes=[True, True])


def test_settings_absent_from_old_runs_keep_their_behaviour():
    from matsight.fuse.config import FuseConfig

    for aniso in (False, True):
        old = _flat(make_config("paper", anisotropic=aniso))  # saved before the settings were nested
        del old["critic_steps"], old["augment_axes"]
        cfg = FuseConfig.from_saved(old)
        assert cfg.training.critic_steps == "joint"  # one critic step per iteration, as before the setting
        assert cfg.hr_augment == (
            (False,) * 3 if aniso else (True,) * 3
        )  # formerly: augment = not anisotropic
    new = make_config("paper", anisotropic=True)
    assert FuseConfig.from_saved(new.model_dump(mode="json")) == new


def _flat(cfg):
    """The settings as runs saved them before they were nested: one flat dict."""
    data = cfg.model_dump(mode="json")
    return {k: v for k, v in data.items() if k not in ("model", "training", "inference")} | {
        k: v for section in ("model", "training") for k, v in data[section].items() if k != "steps"
    }


def test_a_run_saved_with_flat_settings_loads_and_resumes(tmp_path, data):
    import json

    from matsight.fuse.config import FuseConfig, read_run_config
    from matsight.nn.checkpoint import load_checkpoint, save_checkpoint

    # config.json of a run trained before the settings were nested (written by that version)
    flat = json.loads((Path(__file__).parent / "data" / "config_flat_v0.json").read_text())
    cfg = FuseConfig.from_saved(flat)
    assert cfg.training.ema == 0.99 and cfg.model.critic_widths == [4, 4, 8, 8] and cfg.training.g_every == 1
    assert cfg.training.steps == 1000 and cfg.inference.crop  # settings added since: their defaults
    assert _flat(cfg) == flat
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(flat))
    assert read_run_config(run) == cfg
    # a run folder whose checkpoint holds the flat settings resumes, and goes on with nested ones
    gt, lr = data
    train((lr, gt[24]), run, config=make_config("cpu", scale=4, steps=1, **TINY))
    groups, meta = load_checkpoint(run / "last.safetensors")
    meta["config"] = _flat(FuseConfig.from_saved(meta["config"]))
    save_checkpoint(run / "last.safetensors", groups, meta)
    assert saved_config(run).training.ema == 0.99
    assert train((lr, gt[24]), run, config=make_config("cpu", scale=4, steps=2, **TINY)).iterations == 2
    assert train((lr, gt[24]), run, config=saved_config(run).updated({"steps": 3})).iterations == 3
    _, meta = load_checkpoint(run / "last.safetensors")
    assert meta["config"]["training"]["ema"] == 0.99


def test_nested_flat_and_dotted_names_are_one_setting():
    from matsight.fuse.config import FLAT_NAMES

    a = make_config("cpu", ema=0.5, gen_width=8, steps=7)
    b = make_config("cpu", **{"training.ema": 0.5, "model.gen_width": 8, "training.steps": 7})
    c = make_config("cpu", training={"ema": 0.5, "steps": 7}, model={"gen_width": 8})
    assert a == b == c and a.setting("ema") == a.setting("training.ema") == 0.5
    assert (
        FLAT_NAMES["vw_unseen"] == "training.vw_unseen"
        and FLAT_NAMES["critic_widths"] == "model.critic_widths"
    )
    with pytest.raises(InputError, match="training.nope"):
        make_config("cpu", settings={"training.nope": 1})
    with pytest.raises(InputError, match="nope"):
        make_config("cpu", settings={"nope": 1})


def test_callback_sees_every_iteration_with_losses_and_the_latest_evaluation(tmp_path, data):
    gt, lr = data
    seen = []
    train(
        (lr, gt[24]),
        tmp_path,
        config=make_config("cpu", scale=4, steps=4, **{**TINY, "g_every": 2}),
        callback=seen.append,
    )
    assert [p.step for p in seen] == [1, 2, 3, 4] and {p.total for p in seen} == {4}
    assert "g_adv" in seen[0].metrics and "g_adv" not in seen[1].metrics and "d_loss" in seen[1].metrics
    assert "score" not in seen[0].metrics and "score" in seen[1].metrics  # metrics_every=2
    assert seen[-1].fraction == 1.0


def test_callback_interrupt_saves_the_state(tmp_path, data):
    gt, lr = data

    def stop_at_two(p):
        if p.step == 2:
            raise KeyboardInterrupt

    cfg = make_config("cpu", scale=4, steps=9, **{**TINY, "checkpoint_every": 99})
    with pytest.raises(KeyboardInterrupt):
        train((lr, gt[24]), tmp_path, config=cfg, callback=stop_at_two)
    assert load(tmp_path / "last.safetensors")[2]["iteration"] == 2


def _anisotropic_stacks(gt):
    # slices normal to z, y, x of the truth, each as a stack of 2D images
    return gt[::8], gt[:, ::8].transpose(1, 0, 2), gt[:, :, ::8].transpose(2, 0, 1)


def test_anisotropic_run_augments_the_x_stack_and_an_old_run_resumes_without(tmp_path, data, monkeypatch):
    fuse_train = importlib.import_module("matsight.fuse.train")  # (fuse.train is the function)
    from matsight.fuse.config import FuseConfig
    from matsight.nn.checkpoint import load_checkpoint, save_checkpoint

    flags = []

    class SpySampler(fuse_train.HRSampler):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            flags.append(self.augment)

    monkeypatch.setattr(fuse_train, "HRSampler", SpySampler)
    gt, lr = data
    z, y, x = _anisotropic_stacks(gt)
    cfg = make_config("cpu", scale=4, anisotropic=True, **TINY)
    run = tmp_path / "run"
    train((lr, {"x": x, "y": y, "z": z}), run, config=cfg.updated({"steps": 1}))
    assert flags == [(False, False, True)]
    # a run saved before the settings existed: its config lacks them, and it had no augmentation
    groups, meta = load_checkpoint(run / "last.safetensors")
    meta["config"] = _flat(FuseConfig.from_saved(meta["config"]))  # a run saved with the flat settings
    del meta["config"]["augment_axes"], meta["config"]["critic_steps"]
    save_checkpoint(run / "last.safetensors", groups, meta)
    assert fuse_train.saved_config(run).hr_augment == (False, False, False)
    assert (
        train((lr, {"x": x, "y": y, "z": z}), run, config=saved_config(run).updated({"steps": 2})).iterations
        == 2
    )
    assert flags[-1] == (False, False, False)
    _, meta = load_checkpoint(run / "last.safetensors")
    assert meta["config"]["training"]["augment_axes"] == [False, False, False]  # now explicit in the run
    assert meta["config"]["training"]["critic_steps"] == "joint"


def test_cli_augment_axes_are_axis_letters():
    from matsight.cli.fuse import _augment_axes

    assert _augment_axes("x") == [False, False, True]
    assert _augment_axes("z,y,x") == [True, True, True]
    assert _augment_axes("none") == [False, False, False]
    assert _augment_axes(None) is None
