"""Files whose header lies (issue #35, classes 2 and 6): refused in one line, fast, before anything is read.

Each lying file is tiny and claims a huge array; the library call must raise :class:`InputError` within
2 s, and every command that reads such a file must print one ``error:`` line, exit 2 and write nothing.
A consistent file larger than the memory available is refused for eager reading but still opens lazily.
"""

import ast
import json
import os
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from matsight._errors import InputError
from matsight.cli import app
from matsight.io import read_labels, read_microscope, read_volume, write_volume
from matsight.io._limits import format_bytes

HUGE = 100_000
IO = Path(__file__).resolve().parents[2] / "src" / "matsight" / "io"


# ------------------------------------------------------------------------------------------- lying files
def write_mrc(path, nx, ny, nz, *, mode=0, data=b"", nsymbt=0, big_endian=False):
    """An MRC2014 file written by hand: the 1024-byte header, an extended header, then ``data``."""
    order = ">" if big_endian else "<"
    head = bytearray(1024)
    struct.pack_into(order + "4i", head, 0, nx, ny, nz, mode)
    struct.pack_into(order + "3i", head, 28, nx, ny, nz)  # mx, my, mz
    struct.pack_into(order + "3f", head, 40, 10.0 * nx, 10.0 * ny, 10.0 * nz)  # 1 nm voxels (Å)
    struct.pack_into(order + "3i", head, 64, 1, 2, 3)
    struct.pack_into(order + "i", head, 92, nsymbt)
    head[208:212] = b"MAP "
    head[212:214] = b"\x11\x11" if big_endian else b"\x44\x44"
    path.write_bytes(bytes(head) + b"\0" * nsymbt + data)
    return path


def write_npy(path, shape, descr="<f8", data=b""):
    """A .npy whose hand-written header claims ``shape``, followed by ``data``."""
    header = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {tuple(shape)}, }}"
    header += " " * ((-(10 + len(header) + 1)) % 64) + "\n"  # numpy aligns the data to 64 bytes
    path.write_bytes(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + data)
    return path


def patch_tif_size(path, width, length, *, one_strip=False):
    """Make a tif's first page claim ``width × length`` pixels.

    With ``one_strip`` RowsPerStrip claims ``length`` too, so the single strip is consistent with the size
    (tifffile then finds nothing wrong); without it tifffile logs that the strip count is wrong.
    """
    import tifffile

    keys = ("ImageWidth", "ImageLength") + (("RowsPerStrip",) if one_strip else ())
    with tifffile.TiffFile(path) as tif:
        tags = tif.pages[0].tags
        where = {k: (tags[k].valueoffset, tags[k].dtype) for k in keys}
    raw = bytearray(path.read_bytes())
    for key, value in (("ImageWidth", width), ("ImageLength", length), ("RowsPerStrip", length)):
        if key not in where:
            continue
        offset, dtype = where[key]
        struct.pack_into("<H" if int(dtype) == 3 else "<I", raw, offset, value)
    path.write_bytes(bytes(raw))
    return path


def lying_tif(path, **kw):
    import tifffile

    tifffile.imwrite(path, np.zeros((16, 16), np.float32), metadata=None, **kw)
    return patch_tif_size(path, HUGE, HUGE, one_strip=True)


def lying_imagej(path):
    """An ImageJ hyperstack of 4 slices whose description claims 9 (same length, so nothing else moves)."""
    import tifffile

    tifffile.imwrite(path, np.zeros((4, 64, 64), np.uint8), imagej=True, metadata={"axes": "ZYX"})
    raw = path.read_bytes()
    assert b"images=4" in raw and b"slices=4" in raw
    path.write_bytes(raw.replace(b"images=4", b"images=9").replace(b"slices=4", b"slices=9"))
    return path


def lying_zarr(path):
    """A zarr v2 array whose .zarray claims 100000³ (no chunk is stored: every voxel is the fill value)."""
    import zarr

    zarr.create_array(store=str(path), shape=(4, 4, 4), chunks=(4, 4, 4), dtype="uint8", zarr_format=2)
    meta = json.loads((path / ".zarray").read_text())
    meta["shape"] = [HUGE, HUGE, HUGE]
    meta["chunks"] = [64, 64, 64]
    (path / ".zarray").write_text(json.dumps(meta))
    return path


def truncated(path, src, keep=0.5):
    raw = Path(src).read_bytes()
    path.write_bytes(raw[: int(len(raw) * keep)])
    return path


def timed(fn, *args, **kwargs):
    """Call ``fn``; return (its InputError, seconds taken). Fails if it does not raise one."""
    t = time.perf_counter()
    with pytest.raises(InputError) as err:
        fn(*args, **kwargs)
    return err.value, time.perf_counter() - t


# ------------------------------------------------------------------------------------------ library calls
@pytest.fixture
def lying(tmp_path):
    """name -> a tiny file whose header claims far more than it holds (all uncompressed formats)."""
    d = tmp_path
    return {
        "mrc": write_mrc(d / "huge.mrc", HUGE, HUGE, HUGE, data=b"\0" * 64),
        "mrc-big-endian": write_mrc(d / "be.mrc", HUGE, HUGE, 2, mode=2, big_endian=True),
        "mrcs": write_mrc(d / "huge.mrcs", 512, 512, HUGE, mode=1, nsymbt=2048),
        "npy": write_npy(d / "huge.npy", (HUGE, HUGE, 12_000), data=b"\0" * 100),
        "tif": lying_tif(d / "huge.tif"),
        "bigtiff": lying_tif(d / "big.tif", bigtiff=True),
        "imagej": lying_imagej(d / "hyper.tif"),
    }


@pytest.mark.parametrize("kind", ["mrc", "mrc-big-endian", "mrcs", "npy", "tif", "bigtiff", "imagej"])
@pytest.mark.parametrize("lazy", [False, True])
def test_lying_header_is_refused_fast(lying, kind, lazy):
    path = lying[kind]
    err, seconds = timed(read_volume, path, lazy=lazy)
    msg = str(err)
    assert seconds < 2, seconds
    assert msg.startswith(f"{path.name} ") and "damaged or truncated" in msg and "\n" not in msg, msg
    if kind == "imagej":  # tifffile itself notices this one and says so: its message is ours
        assert "(ImageJ series metadata invalid or corrupted file)" in msg, msg
    else:
        held = format_bytes(path.stat().st_size)
        assert "claims " in msg and f"{HUGE}" in msg and f"holds {held}" in msg, msg


def test_messages_say_what_is_claimed_and_held(lying):
    msg = str(timed(read_volume, lying["mrc"])[0])
    assert "claims 100000×100000×100000 uint8 (909 TiB) but holds 1.1 KiB" in msg, msg
    msg = str(timed(read_volume, lying["tif"])[0])
    assert "claims 100000×100000 float32 (37.3 GiB)" in msg, msg
    # the same check guards read_microscope (lazy, as the GUI opens files) and read_labels
    assert "claims" in str(timed(read_microscope, lying["mrc"], lazy=True)[0])
    assert "claims" in str(timed(read_labels, lying["npy"])[0])


def test_impossible_mrc_header(tmp_path):
    err, seconds = timed(read_volume, write_mrc(tmp_path / "bad.mrc", 64, 64, 1, mode=77))
    assert "impossible MRC header" in str(err) and seconds < 2
    short = tmp_path / "short.mrc"
    short.write_bytes(b"\0" * 100)
    assert "less than the 1024-byte MRC header" in str(timed(read_volume, short)[0])


def test_consistent_big_endian_mrc_reads(tmp_path):
    """The header check reads the byte order from the machine stamp, and tells rosettasciio."""
    pytest.importorskip("rsciio")
    a = np.arange(4 * 6, dtype=">f4").reshape(4, 6)
    path = write_mrc(tmp_path / "be.mrc", 6, 4, 1, mode=2, big_endian=True, data=a.tobytes())
    np.testing.assert_array_equal(read_volume(path), a)


@pytest.mark.parametrize("src", ["tif", "npy", "mrc"])
def test_truncated_normal_files(tmp_path, rng, src):
    vol = rng.random((8, 32, 32)).astype(np.float32)
    if src == "mrc":
        full = write_mrc(tmp_path / "full.mrc", 32, 32, 8, mode=2, data=vol.tobytes())
    else:
        full = write_volume(tmp_path / f"full.{src}", vol)
        if src == "tif":  # write_volume compresses: an uncompressed one shows the size check
            import tifffile

            tifffile.imwrite(full, vol)
    np.testing.assert_array_equal(read_volume(full), vol)
    cut = truncated(tmp_path / f"cut.{src}", full)
    msg = str(timed(read_volume, cut)[0])
    assert "claims 8×32×32 float32 (32.0 KiB)" in msg and "damaged or truncated" in msg, msg


def test_truncated_tif_that_tifffile_would_read_short(tmp_path, rng):
    """tifffile logs "invalid page offset" and returns the first page only: that is a damaged file too."""
    import tifffile

    full = tmp_path / "full.tif"
    tifffile.imwrite(full, rng.integers(0, 255, (6, 64, 64), dtype=np.uint8), compression="zlib")
    cut = truncated(tmp_path / "cut.tif", full, keep=0.6)
    with tifffile.TiffFile(cut) as tif:  # what tifffile alone makes of it: one page, no error
        assert tif.series[0].asarray().shape == (64, 64)
    msg = str(timed(read_volume, cut)[0])
    assert msg.startswith("cut.tif is damaged or truncated (invalid page offset"), msg


# ------------------------------------------------------------------------------- compressed and memory
@pytest.fixture
def small_memory(monkeypatch):
    """Pretend 100 KiB of memory is available."""
    monkeypatch.setattr("matsight.io._limits.available_memory", lambda: 100 * 1024)
    return 100 * 1024


def test_compressed_claims_are_checked_against_memory(tmp_path, small_memory):
    tif = lying_tif(tmp_path / "z.tif", compression="zlib")
    for lazy in (False, True):  # a compressed tif cannot be memory-mapped: it is always loaded
        msg, seconds = timed(read_volume, tif, lazy=lazy)
        assert "holds 100000×100000 float32 (37.3 GiB), more than the 100 KiB of memory available" in str(msg)
        assert seconds < 2
    store = lying_zarr(tmp_path / "huge.zarr")
    msg, seconds = timed(read_volume, store)
    assert "100000×100000×100000 uint8 (909 TiB), more than the 100 KiB" in str(msg) and seconds < 2
    t = time.perf_counter()
    lazy = read_volume(store, lazy=True)  # out of core: a zarr array, nothing read
    assert lazy.shape == (HUGE, HUGE, HUGE) and time.perf_counter() - t < 2


@pytest.mark.parametrize("ext", ["npy", "tif", "mrc"])
def test_consistent_file_too_big_for_memory_opens_lazily(tmp_path, small_memory, ext):
    vol = np.arange(32 * 64 * 64, dtype=np.float32).reshape(32, 64, 64)  # 512 KiB > 100 KiB
    path = tmp_path / f"big.{ext}"
    if ext == "npy":
        np.save(path, vol)
    elif ext == "tif":
        import tifffile

        tifffile.imwrite(path, vol)  # uncompressed: memory-mapped when lazy
    else:
        pytest.importorskip("rsciio")
        write_mrc(path, 64, 64, 32, mode=2, data=vol.tobytes())
    msg = str(timed(read_volume, path)[0])
    assert msg.startswith(f"big.{ext} holds 32×64×64 float32 (512 KiB), more than the 100 KiB of memory"), msg
    assert "crop or bin it" in msg
    lazy = read_volume(path, lazy=True)
    assert not isinstance(lazy, np.ndarray) or isinstance(lazy, np.memmap)
    np.testing.assert_array_equal(np.asarray(lazy[5]), vol[5])  # one slice, read out of core


def test_available_memory_is_known_here():
    from matsight.io._limits import available_memory

    avail = available_memory()
    assert avail is not None and avail > 0


# ------------------------------------------------------------------------------------ dm3 (shared data)
def test_lying_and_truncated_dm3(tmp_path, shared_data):
    src = shared_data / "tem" / "test_STEM_image.dm3"
    if not src.is_file():
        pytest.skip("shared dm3 sample absent")
    raw = bytearray(src.read_bytes())
    # its 68×68 image: the two uint32 "Dimensions" values of the second ImageData (DM3 tags are big-endian,
    # array values little-endian): claim 100000×100000 instead
    at = raw.find(b"Dimensions", raw.find(b"Dimensions") + 1)
    for _ in range(2):
        at = raw.find(b"\x00\x00\x00\x05\x44\x00\x00\x00", at) + 4
        raw[at : at + 4] = struct.pack("<I", HUGE)
    huge = tmp_path / "huge.dm3"
    huge.write_bytes(bytes(raw))
    for lazy in (True, False):  # rosettasciio alone hands back a lazy 100000² array for it
        msg, seconds = timed(read_microscope, huge, lazy=lazy)
        assert "claims 100000×100000 uint32" in str(msg) and seconds < 2, msg
    cut = truncated(tmp_path / "cut.dm3", src, keep=0.6)
    assert "damaged or truncated" in str(timed(read_microscope, cut)[0])


# ------------------------------------------------------------------------------------------- every command
def _segment_model(root):
    from matsight.segment import train

    img = np.tile(np.linspace(0, 1, 32, dtype=np.float32), (32, 1))
    lab = np.zeros((32, 32), np.uint8)
    lab[:, :4], lab[:, -4:] = 1, 2
    train((img, lab), root / "segmodel", config={"method": "forest", "n_estimators": 3, "sigmas": [1.0]})
    return root / "segmodel"


@pytest.fixture(scope="module")
def cli_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("lying_cli")
    files = {
        "mrc": write_mrc(d / "huge.mrc", HUGE, HUGE, HUGE, data=b"\0" * 64),
        "npy": write_npy(d / "huge.npy", (HUGE, HUGE, 12_000), data=b"\0" * 100),
        "tif": lying_tif(d / "huge.tif"),
    }
    write_volume(d / "lab2d.tif", (np.arange(32 * 32).reshape(32, 32) % 2).astype(np.uint8))
    write_volume(d / "vol.tif", np.zeros((8, 16, 16), np.float32))
    (d / "restoremodel").mkdir()  # restore apply reads its input before it loads the model
    return d, files, _segment_model(d)


def _commands(d, bad, seg_model, out):
    return {
        "metrics": ["metrics", bad, "--json", out / "m.json"],
        "fuse train": ["fuse", "train", "--lr", bad, "--hr", d / "lab2d.tif", "--out", out / "run"],
        "restore register": ["restore", "register", bad, d / "vol.tif", "--out", out / "pair"],
        "restore apply": ["restore", "apply", d / "restoremodel", bad, "--out", out / "enh"],
        "segment train": ["segment", "train", bad, d / "lab2d.tif", "--out", out / "model"],
        "segment apply": ["segment", "apply", seg_model, bad, "--out", out / "lab.tif"],
        "tem analyze": ["tem", "analyze", bad, "--pixel-size", "0.1", "--out", out / "ta"],
        "tem series": ["tem", "series", bad, "--pixel-size", "0.1", "--out", out / "ts"],
    }


COMMANDS = list(_commands(Path(), Path(), Path(), Path()))


@pytest.mark.parametrize("kind", ["mrc", "npy", "tif"])
@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_refuses_a_lying_header(cli_files, tmp_path, one_error_line, command, kind):
    d, files, seg_model = cli_files
    out = tmp_path / "out"
    args = [str(a) for a in _commands(d, files[kind], seg_model, out)[command]]
    t = time.perf_counter()
    result = CliRunner().invoke(app, args)
    seconds = time.perf_counter() - t
    one_error_line(result, files[kind].name, "claims", "damaged or truncated")
    assert seconds < 2, seconds
    assert not out.exists(), sorted(out.rglob("*"))


# ------------------------------------------------------------- class 6: one line on stderr, for real
@pytest.mark.parametrize("kind", ["tif", "mrc", "dm3", "lying-tif"])
def test_truncated_file_gives_one_stderr_line(tmp_path, rng, shared_data, kind):
    """In a real process (pytest's log capture would hide tifffile's lines from CliRunner)."""
    import tifffile

    if kind == "tif":  # tifffile logs "invalid page offset" before anything fails
        tifffile.imwrite(tmp_path / "full.tif", rng.random((6, 32, 32)).astype(np.float32))
        bad = truncated(tmp_path / "cut.tif", tmp_path / "full.tif", keep=0.7)
    elif kind == "lying-tif":  # tifffile logs two lines about the strip count and shape
        bad = tmp_path / "huge.tif"
        tifffile.imwrite(bad, np.zeros((16, 16), np.uint8))
        patch_tif_size(bad, HUGE, HUGE)
    elif kind == "mrc":
        bad = truncated(tmp_path / "cut.mrc", shared_data / "tem" / "temp.mrc")
    else:
        bad = truncated(tmp_path / "cut.dm3", shared_data / "tem" / "test_STEM_image.dm3", keep=0.6)
    out = tmp_path / "m.json"
    env = dict(os.environ, MATSIGHT_PROGRESS="0")
    p = subprocess.run(
        [sys.executable, "-m", "matsight", "metrics", str(bad), "--json", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {bad.name}"), p.stderr
    assert "damaged or truncated" in lines[0] and not out.exists()


# --------------------------------------------------------------------------------------------- layering
def _io_imports(name):
    tree = ast.parse((IO / f"{name}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            found.add(node.module)
    return found


def test_volumes_and_microscope_do_not_import_each_other():
    assert "microscope" in _io_imports("volumes")
    assert "volumes" not in _io_imports("microscope")
    assert not {"volumes", "microscope"} & _io_imports("_readers")


# ------------------------------------------------------------------------------------------ noise capture
def test_capture_collects_only_the_reading_thread_and_restores_loggers():
    import logging
    import threading
    import warnings

    from matsight.io._quiet import capture

    tiff_log = logging.getLogger("tifffile")
    before = (tiff_log.propagate, list(tiff_log.handlers), warnings.showwarning)
    seen = []

    class Keep(logging.Handler):
        def emit(self, record):
            seen.append(record.getMessage())

    keep = Keep()
    logging.getLogger().addHandler(keep)
    try:
        with capture() as noise:
            logging.getLogger("tifffile.sub").warning("<tifffile.TiffPages @8> invalid page offset 9")
            warnings.warn("odd tag", RuntimeWarning, stacklevel=1)
            # another thread, not reading, logs as usual meanwhile
            t = threading.Thread(target=lambda: tiff_log.warning("from another thread"))
            t.start()
            t.join()
            with capture() as inner:  # nested: shares the outer messages from its start on
                assert inner.messages == []
            assert noise.messages == ["invalid page offset 9", "RuntimeWarning: odd tag"]
            with pytest.raises(InputError, match=r"^f.tif is damaged or truncated \(invalid page offset 9\)"):
                noise.raise_if_damaged("f.tif")
    finally:
        logging.getLogger().removeHandler(keep)
    assert seen == ["from another thread"]
    assert (tiff_log.propagate, list(tiff_log.handlers), warnings.showwarning) == before


def test_png_claims(tmp_path, monkeypatch):
    """A png is always loaded: its header's size is checked against memory; Pillow refuses bombs itself."""
    import zlib

    import imageio.v3 as iio

    iio.imwrite(tmp_path / "s.png", np.zeros((16, 16), np.uint8))
    raw = bytearray((tmp_path / "s.png").read_bytes())
    struct.pack_into(">II", raw, 16, HUGE, HUGE)  # IHDR width, height (and its CRC below)
    struct.pack_into(">I", raw, 29, zlib.crc32(bytes(raw[12:29])))
    (tmp_path / "huge.png").write_bytes(bytes(raw))
    msg, seconds = timed(read_volume, tmp_path / "huge.png")
    assert "10000000000 pixels" in str(msg) and "\n" not in str(msg) and seconds < 2
    monkeypatch.setattr("matsight.io._limits.available_memory", lambda: 100)
    msg = str(timed(read_volume, tmp_path / "s.png")[0])
    assert msg.startswith("s.png holds 16×16 uint8 (256 B), more than the 100 B of memory available"), msg
