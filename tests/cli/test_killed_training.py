"""A training killed with SIGKILL while it writes a checkpoint keeps its previous checkpoint whole, and
resuming from it ends exactly where an uninterrupted run ends (same weights, bit for bit).

The kill comes from inside the child, right before the rename that would publish the new checkpoint: the worst
moment, when the new file is fully written under its temporary name and the old one is about to be replaced.
"""

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

# the child: the parent's data and settings, and a kill before the n-th rename onto ``target``
KILLER = """
import os, signal, sys
import numpy as np
import torch
torch.set_num_threads(1)  # as the parent: another thread count sums floats in another order
TARGET, NTH = sys.argv[1], int(sys.argv[2])
real_replace, seen = os.replace, []

def replace(src, dst, *a, **k):
    if os.fspath(dst).endswith(TARGET):
        seen.append(dst)
        if len(seen) == NTH:
            os.kill(os.getpid(), signal.SIGKILL)
    return real_replace(src, dst, *a, **k)

os.replace = replace
"""

RESTORE = dict(
    features=[4, 8],
    time_embedding=8,
    space_to_depth=2,
    crop=16,
    batch=2,
    val_every=4,
    val_crop=24,
    checkpoint_every=3,
    steps=2,
)
FUSE = dict(
    gen_width=8,
    gen_min_width=4,
    critic_widths=[4, 4, 8, 8],
    fake_batch=1,
    real_batch=4,
    slices_per_volume=2,
    metrics_every=2,
    checkpoint_every=2,
)


def _restore_pair():
    rng = np.random.default_rng(0)
    hq = np.clip(rng.normal(0, 0.4, (5, 40, 40)), -1, 1).astype(np.float32)
    lq = np.clip(0.8 * hq + rng.normal(0, 0.1, hq.shape), -1, 1).astype(np.float32)
    return lq, hq


def _fuse_data():
    from matsight.data.degrade import degrade
    from matsight.data.microstructures import particle_electrode

    gt = particle_electrode((48, 48, 48), seed=3)
    lr, _ = degrade(gt, 4, merge=[(0, 2)])
    return lr, gt[24]


def _run_killed(tmp_path, body, target, nth):
    script = tmp_path / "child.py"
    script.write_text(KILLER + textwrap.dedent(body))
    proc = subprocess.run(
        [sys.executable, str(script), target, str(nth)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch):
    # bit-exact comparisons across processes need the same summation order on both sides: one thread in the
    # parent and (through the variable it inherits) in the child
    from matsight.nn.device import set_threads

    before = torch.get_num_threads()
    monkeypatch.setenv("MATSIGHT_THREADS", "1")
    set_threads(1)
    yield
    torch.set_num_threads(before)


def _same_weights(a, b):
    for (k, va), vb in zip(a.items(), b.values(), strict=True):
        torch.testing.assert_close(va, vb, rtol=0, atol=0, msg=k)


def test_restore_training_killed_while_checkpointing_resumes_exactly(tmp_path):
    from matsight.nn.checkpoint import load_checkpoint
    from matsight.restore.train import load_model, train

    cut = tmp_path / "cut"
    _run_killed(
        tmp_path,
        f"""
        from matsight.restore.train import train
        sys.path.insert(0, {str(os.path.dirname(__file__))!r})
        from test_killed_training import RESTORE, _restore_pair
        train(_restore_pair(), {str(cut)!r}, device="cpu", max_steps=10, **RESTORE)
        """,
        "state.safetensors",
        2,
    )
    # the first checkpoint (step 3) is whole; the second died under its temporary name
    _, meta = load_checkpoint(cut / "state.safetensors")
    assert meta["step"] == 3
    assert not (cut / "model.safetensors").exists()

    resumed = train(_restore_pair(), cut, device="cpu", max_steps=10, **RESTORE)
    full = train(_restore_pair(), tmp_path / "full", device="cpu", max_steps=10, **RESTORE)
    assert resumed.steps == full.steps == 10
    _same_weights(load_model(tmp_path / "full")[0].state_dict(), load_model(cut)[0].state_dict())
    assert not [p.name for p in cut.iterdir() if p.name.endswith(".tmp") or ".tmp." in p.name]


def test_fuse_training_killed_while_checkpointing_resumes_exactly(tmp_path):
    from matsight.fuse.config import make_config
    from matsight.fuse.train import load_generator, train

    cut = tmp_path / "cut"
    _run_killed(
        tmp_path,
        f"""
        from matsight.fuse.config import make_config
        from matsight.fuse.train import train
        sys.path.insert(0, {str(os.path.dirname(__file__))!r})
        from test_killed_training import FUSE, _fuse_data
        lr, hr = _fuse_data()
        train((lr, hr), {str(cut)!r}, config=make_config("cpu", scale=4, steps=6, **FUSE))
        """,
        "last.safetensors",
        2,
    )
    _, _, meta = load_generator(cut / "last.safetensors")
    assert meta["iteration"] == 2

    cfg = make_config("cpu", scale=4, **FUSE)
    lr, hr = _fuse_data()
    assert train((lr, hr), cut, config=cfg.updated({"steps": 6})).iterations == 6
    assert train((lr, hr), tmp_path / "full", config=cfg.updated({"steps": 6})).iterations == 6
    a = load_generator(tmp_path / "full" / "last.safetensors")[0].state_dict()
    b = load_generator(cut / "last.safetensors")[0].state_dict()
    _same_weights(a, b)


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__, "-q"])
