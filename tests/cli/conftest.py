"""Fixtures for the CLI's reliability tests: a full or read-only file system, and a tree fingerprint."""

import contextlib
import errno
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from matsight.cli import app
from matsight.data.degrade import degrade
from matsight.data.microstructures import particle_electrode
from matsight.fuse.config import make_config
from matsight.fuse.train import train as fuse_train
from matsight.io import write_volume
from matsight.restore.pair_io import save_pair
from matsight.restore.register import prepare_pair
from matsight.restore.train import train as restore_train
from matsight.tem import lattice


def _mount(*args):
    return subprocess.run(["mount", *args], capture_output=True, check=False).returncode == 0


def _can_mount():
    # root in a container usually may not mount; try it once on a scratch folder
    # (MATSIGHT_NO_MOUNT=1 tests the injected errors where mounting works)
    if os.environ.get("MATSIGHT_NO_MOUNT") == "1" or os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    probe = Path(tempfile.mkdtemp(prefix="matsight-mount-"))
    try:
        ok = _mount("-t", "tmpfs", "-o", "size=16k", "tmpfs", str(probe))
        if ok:
            subprocess.run(["umount", str(probe)], check=False)
        return ok
    finally:
        probe.rmdir()


CAN_MOUNT = _can_mount()


def _inject(monkeypatch, root, code):
    """Make writes under ``root`` fail with ``code`` where matsight writes: the last rename of every output
    (``os.replace``) and, for a read-only disk, making folders and temporary files too."""
    root = str(root)

    def inside(p):
        return os.path.abspath(os.fsdecode(p)).startswith(root)

    def fail(p):
        raise OSError(code, os.strerror(code), os.fsdecode(p))

    real_replace, real_mkstemp, real_mkdtemp = os.replace, tempfile.mkstemp, tempfile.mkdtemp
    real_mkdir = Path.mkdir

    def replace(src, dst, **kw):
        if inside(dst):
            fail(dst)
        return real_replace(src, dst, **kw)

    monkeypatch.setattr(os, "replace", replace)
    if code == errno.EROFS:

        def mkstemp(*a, dir=None, **kw):
            if dir is not None and inside(dir):
                fail(dir)
            return real_mkstemp(*a, dir=dir, **kw)

        def mkdtemp(*a, dir=None, **kw):
            if dir is not None and inside(dir):
                fail(dir)
            return real_mkdtemp(*a, dir=dir, **kw)

        def mkdir(self, *a, **kw):
            if inside(self) and not self.is_dir():
                fail(self)
            return real_mkdir(self, *a, **kw)

        monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
        monkeypatch.setattr(tempfile, "mkdtemp", mkdtemp)
        monkeypatch.setattr(Path, "mkdir", mkdir)


@pytest.fixture
def broken_disk(tmp_path_factory, monkeypatch):
    """``(state) -> folder`` on a file system that is ``"full"`` or ``"read-only"``.

    A small tmpfs (filled up, or remounted read-only) where this process may mount (root outside a
    container); otherwise the same errors (ENOSPC, EROFS) injected into every write under the folder.
    """
    mounted = []

    def make(state):
        where = tmp_path_factory.mktemp(f"disk-{state}")
        if CAN_MOUNT and _mount("-t", "tmpfs", "-o", "size=64k", "tmpfs", str(where)):
            mounted.append(where)
            if state == "full":
                with contextlib.suppress(OSError), open(where / ".filler", "wb") as f:
                    while True:  # to the last byte: the first real write fails
                        f.write(b"\0" * 1024)
                        f.flush()
            else:
                assert _mount("-o", "remount,ro", str(where))
        else:
            _inject(monkeypatch, where, errno.ENOSPC if state == "full" else errno.EROFS)
        return where

    yield make
    monkeypatch.undo()
    for where in mounted:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fingerprint(root):
    """``{relative path: sha256}`` of every file and ``{folder: None}`` of every folder under ``root``."""
    root = Path(root)
    out = {}
    for d, dirs, files in os.walk(root):
        for n in dirs:
            out[os.path.relpath(os.path.join(d, n), root)] = None
        for n in files:
            p = os.path.join(d, n)
            out[os.path.relpath(p, root)] = hashlib.sha256(Path(p).read_bytes()).hexdigest()
    return out


TINY_FUSE = dict(gen_width=8, gen_min_width=4, critic_widths=[4, 4, 8, 8], fake_batch=1, real_batch=4)
TINY_INDI = dict(features=[4, 8], time_embedding=8, crop=16, batch=2, val_crop=24, auto_steps=[1, 2], steps=2)


@pytest.fixture(scope="package")
def work(tmp_path_factory):
    """Good inputs of every command, tiny trained runs, and bad files (see ``_bad_files``)."""
    t = tmp_path_factory.mktemp("bad_inputs")
    rng = np.random.default_rng(3)
    gt = particle_electrode((48, 48, 48), radius=5, seed=1)
    lr, _ = degrade(gt, 4, merge=[(0, 2)])
    write_volume(t / "gt.tif", gt)
    write_volume(t / "lr.tif", lr)
    write_volume(t / "hr.tif", gt[24])
    write_volume(t / "sr.tif", gt[4:-4, 4:-4, 4:-4])
    fuse_train((lr, gt[24]), t / "run", config=make_config("cpu", **TINY_FUSE).updated({"steps": 0}))
    hq = np.full((32, 32), 0.2, np.float32)
    hq[6:18, 8:22], hq[20:28, 4:12] = 0.9, 0.6
    lq = hq.reshape(16, 2, 16, 2).mean((1, 3)).astype(np.float32)
    write_volume(t / "hq.tif", hq)
    write_volume(t / "lq.tif", lq)
    save_pair(prepare_pair(lq, hq, scale=2, mask=False), t / "pair")
    restore_train(t / "pair", t / "model", device="cpu", max_steps=1, **TINY_INDI)
    r = CliRunner().invoke(
        app, ["restore", "apply", str(t / "model"), str(t / "lq.tif"), "--out", str(t / "enh")]
    )
    assert r.exit_code == 0, r.output
    write_volume(t / "img.tif", hq)
    strokes = np.zeros(hq.shape, np.uint8)
    strokes[:4], strokes[-4:] = 1, 2
    write_volume(t / "strokes.tif", strokes)
    r = CliRunner().invoke(
        app, ["segment", "train", *_s(t / "img.tif", t / "strokes.tif"), "--out", str(t / "seg")]
    )
    assert r.exit_code == 0, r.output
    frame = lattice.two_phase_image((64, 64), 0.02, seed=1, dose=1500).image.astype(np.float32)
    tifffile.imwrite(t / "frame.tif", frame)
    tifffile.imwrite(t / "movie.tif", np.stack([frame, frame]))
    _bad_files(t, rng)
    return t


def _s(*paths):
    return [str(p) for p in paths]


def _bad_files(t, rng):
    good = (t / "gt.tif").read_bytes()
    (t / "empty.tif").write_bytes(b"")
    (t / "truncated.tif").write_bytes(good[: len(good) // 3])
    flipped = bytearray(good)
    flipped[0] ^= 0xFF  # the byte-order mark: no longer a TIFF
    (t / "flipped.tif").write_bytes(bytes(flipped))
    (t / "text.tif").write_text("not an image\n")
    write_volume(t / "float_labels.tif", rng.random((48, 48)).astype(np.float32))
    np.save(t / "complex.npy", (rng.random((32, 32)) + 1j).astype(np.complex64))
    nan = rng.random((32, 32)).astype(np.float32)
    nan[3, 3] = np.nan
    write_volume(t / "nan.tif", nan)
    inf = rng.random((16, 16)).astype(np.float32)
    inf[2, 2] = np.inf
    write_volume(t / "inf.tif", inf)
    write_volume(t / "labels255.tif", (np.indices((48, 48)).sum(0) % 2 * 255).astype(np.uint8))
    write_volume(t / "stack.tif", rng.random((4, 32, 32)).astype(np.float32))
    (t / "inside").mkdir()
    for name in ("lq.tif", "img.tif", "frame.tif", "gt.tif", "hq.tif", "sr.tif", "strokes.tif"):
        (t / "inside" / name).write_bytes((t / name).read_bytes())
