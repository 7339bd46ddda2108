"""Issue 35, classes 1, 3, 4 and 5: inputs never replaced, disk errors as one line with the call's outputs
removed, file names that are not UTF-8, damaged run folders. Uses the ``work`` folder of test_bad_inputs.
"""

import errno
import json
import os
import shutil

import pytest
from typer.testing import CliRunner

from matsight._atomic import Created, atomic_path, disk_error, printable, read_json, require
from matsight._errors import InputError
from matsight.cli import app

from .conftest import fingerprint

runner = CliRunner()


def _run(*args):
    return runner.invoke(app, [str(a) for a in args])


# ------------------------------------------------------------------------------------------ the helpers
def test_printable_shows_undecodable_bytes_and_keeps_other_text():
    name = os.fsdecode(b"scan \xff.tif")
    assert printable(name) == "scan \\xff.tif"
    assert printable("Ångström ok") == "Ångström ok"
    printable("\ud800 lone").encode("utf-8")  # not a file-name surrogate either: still encodable


def test_disk_error_names_the_output_the_cause_and_the_fix(tmp_path):
    out = tmp_path / "run"
    full = OSError(errno.ENOSPC, "No space left on device", str(out / "a.json"))
    line = disk_error(full, [(out, "--out")])
    cause = "No space left on device (disk full); free space or choose another --out"
    assert line == f"cannot write {out / 'a.json'}: {cause}"
    # a library's own error raised from it, and a write that names no file (f.write)
    try:
        try:
            raise OSError(errno.EROFS, "Read-only file system")
        except OSError as exc:
            raise RuntimeError("zarr could not store a chunk") from exc
    except RuntimeError as wrapped:
        assert disk_error(wrapped, [(out, "--out")]).startswith(f"cannot write {out}: Read-only file system")
    rust = Exception("Error while serializing: I/O error: No space left on device (os error 28)")
    assert "disk full" in disk_error(rust, [out])
    assert disk_error(ValueError("a bug"), [out]) is None
    assert disk_error(OSError(errno.EBADF, "Bad file descriptor"), [out]) is None  # a bug, not the disk
    denied = OSError(errno.EACCES, "Permission denied", str(tmp_path / "in.tif"))
    assert disk_error(denied, [out]).startswith("cannot read")


def test_atomic_path_names_the_output_not_its_temporary_file(tmp_path):
    target = tmp_path / "x.tif"
    with pytest.raises(OSError) as info, atomic_path(target) as tmp:
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp))
    assert info.value.filename == str(target) and os.listdir(tmp_path) == []


def test_created_removes_only_what_the_call_made(tmp_path):
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "mine.txt").write_text("mine")
    (tmp_path / "kept.tif").write_text("old")
    created = Created()
    created.add(tmp_path / "old")
    created.add(tmp_path / "new" / "deep" / "run")
    created.add(tmp_path / "kept.tif")
    created.add(tmp_path / "sr.tif")
    (tmp_path / "old" / "fig.png").write_text("new")
    (tmp_path / "old" / "sub").mkdir()
    (tmp_path / "new" / "deep" / "run").mkdir(parents=True)
    (tmp_path / "kept.tif").write_text("replaced atomically")
    for name in ("sr.tif", "sr_entropy.tif", ".sr.abc.tmp.tif", "other.txt"):
        (tmp_path / name).write_text("new")
    created.undo()
    assert fingerprint(tmp_path).keys() == {"old", "old/mine.txt", "kept.tif", "other.txt"}
    # a resumable run that reached its checkpoint is kept
    run = Created()
    run.add(tmp_path / "run", keep_if="last.safetensors")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "last.safetensors").write_text("w")
    run.undo()
    assert (tmp_path / "run" / "last.safetensors").is_file()


@pytest.mark.parametrize(
    "text, needle",
    [
        ("", "is empty"),
        ('{"files": {"lq"', "not valid JSON"),
        ("[1, 2]", "holds a list"),
        ("\xff\xfe", "not"),
    ],
    ids=["empty", "truncated", "wrong type", "not text"],
)
def test_read_json_is_one_line_naming_file_and_fix(tmp_path, text, needle):
    path = tmp_path / "pair.json"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(InputError) as info:
        read_json(path, what="pair description", fix="rerun it")
    msg = str(info.value)
    assert needle in msg and str(path) in msg and msg.endswith("; rerun it") and "\n" not in msg


def test_require_names_a_missing_or_mistyped_field(tmp_path):
    with pytest.raises(InputError, match=r"no field 'files.lq'"):
        require({"files": {}}, {"files.lq": str}, path=tmp_path, what="w", fix="f")
    with pytest.raises(InputError, match=r"'stats.lo' is a str, not a int or float"):
        require({"stats": {"lo": "0"}}, {"stats.lo": (int, float)}, path=tmp_path, what="w", fix="f")
    with pytest.raises(InputError, match=r"is a bool"):
        require({"n": True}, {"n": int}, path=tmp_path, what="w", fix="f")


# ------------------------------------------------------------------------- 1. an input replaced by an output
def test_register_and_apply_refuse_an_output_folder_that_holds_their_input(work, tmp_path, one_error_line):
    pair = tmp_path / "pair"
    pair.mkdir()
    shutil.copy(work / "lq.tif", pair / "lq.tif")
    before = fingerprint(tmp_path)
    r = _run("restore", "register", pair / "lq.tif", work / "hq.tif", "--out", pair, "--scale", "2")
    one_error_line(r, "holds the input", "lq.tif")
    enh = tmp_path / "enh"
    shutil.copytree(work / "enh", enh)
    before = fingerprint(tmp_path)
    r = _run("restore", "apply", work / "model", enh / "enhanced.tif", "--out", enh, "--steps", "1")
    one_error_line(r, "holds the input", "enhanced.tif")
    assert fingerprint(tmp_path) == before


def test_a_resumed_run_folder_may_hold_its_inputs(work, tmp_path, monkeypatch):
    run = tmp_path / "run"
    run.mkdir()
    for name in ("lr.tif", "hr.tif"):
        shutil.copy(work / name, run / name)
    r = _run("fuse", "train", "--lr", run / "lr.tif", "--hr", run / "hr.tif", "--out", run, "--steps", "0")
    assert r.exit_code == 0, r.output
    assert (run / "last.safetensors").is_file() and (run / "lr.tif").read_bytes() == (
        work / "lr.tif"
    ).read_bytes()
    # the InDI model folder too: the check lets the pair inside it through to the training
    model = tmp_path / "model"
    shutil.copytree(work / "pair", model / "pair")

    def reached(*a, **k):
        raise InputError("reached the training")

    monkeypatch.setattr("matsight.restore.train", reached)  # the package face; the CLI calls it
    r = _run("restore", "train", model / "pair", "--out", model, "--max-steps", "1")
    assert r.exit_code == 2 and "reached the training" in r.output, r.output


# --------------------------------------------------------------------------------------- 3. a failed write
def test_a_full_disk_during_fuse_train_leaves_no_run_folder(work, broken_disk):
    disk = broken_disk("full")
    r = _run("fuse", "train", "--lr", work / "lr.tif", "--hr", work / "hr.tif", "--out", disk / "run")
    assert r.exit_code == 2 and r.stderr.startswith("error: cannot write") and "Traceback" not in r.output
    assert not (disk / "run").exists() and not [n for n in os.listdir(disk) if n != ".filler"]


def test_a_bug_keeps_its_traceback_and_its_outputs_are_removed(work, tmp_path, monkeypatch):
    def bug(*a, **k):
        (tmp_path / "out").mkdir(exist_ok=True)
        (tmp_path / "out" / "half.csv").write_text("1,")
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr("matsight.tem.report.write_analysis", bug)
    r = _run(
        "tem", "analyze", work / "frame.tif", "--pixel-size", "0.02", "--out", tmp_path / "out", "--no-maps"
    )
    assert r.exit_code == 1 and isinstance(r.exception, ZeroDivisionError)
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------ 4. names that are not UTF-8
def _odd(tmp_path):
    """A folder whose name holds a space and the byte 0xff."""
    folder = tmp_path / os.fsdecode(b"my data \xff")
    folder.mkdir(exist_ok=True)
    return folder


ODD = {  # command -> (the input copied under an odd name, argv: {in} that copy, {dir} the odd folder)
    "metrics": (
        "hr.tif",
        [
            "metrics",
            "{in}",
            "--json",
            "{dir}/m \udcff.json",
            "--plot",
            "{dir}/plots \udcff",
            "--no-tortuosity",
        ],
    ),
    "tem analyze": (
        "frame.tif",
        ["tem", "analyze", "{in}", "--pixel-size", "0.02", "--out", "{dir}/t \udcff"],
    ),
    "tem series": ("movie.tif", ["tem", "series", "{in}", "--pixel-size", "0.02", "--out", "{dir}/s \udcff"]),
    "restore register": (
        "lq.tif",
        ["restore", "register", "{in}", "{w}/hq.tif", "--out", "{dir}/pair \udcff", "--no-mask"],
    ),
    "segment apply": ("img.tif", ["segment", "apply", "{w}/seg", "{in}", "--out", "{dir}/l \udcff.tif"]),
    "fuse degrade": ("gt.tif", ["fuse", "degrade", "{in}", "--out", "{dir}/lr \udcff.tif"]),
}


@pytest.mark.parametrize("command", sorted(ODD))
def test_file_names_that_are_not_utf8_or_hold_spaces_work(work, tmp_path, command):
    name, argv = ODD[command]
    folder = _odd(tmp_path)
    src = folder / os.fsdecode(b"in \xff" + os.fsencode(name))
    shutil.copy(work / name, src)
    r = _run(
        *(a.replace("{in}", str(src)).replace("{dir}", str(folder)).replace("{w}", str(work)) for a in argv)
    )
    assert r.exit_code == 0, r.output
    assert "\\xff" in r.output  # the names print, their odd byte shown
    texts = [p for p in folder.rglob("*") if p.suffix in (".html", ".csv", ".json")]
    for p in texts:
        p.read_text(encoding="utf-8")  # every text output is valid UTF-8
    if command == "metrics":
        assert json.loads((folder / "m \udcff.json").read_text())["file"] == str(src)  # JSON keeps the name
        assert "\\xff" in (folder / "plots \udcff" / "index.html").read_text()


# ------------------------------------------------------------------------------------ 5. damaged run files
DAMAGE = {
    "empty": ("", "is empty"),
    "truncated": ('{"files": {"lq": "lq.t', "not valid JSON"),
    "not json": ("<html>", "not valid JSON"),
    "wrong type": ("[1, 2, 3]", "holds a list"),
}


def _damaged(work, tmp_path, what):
    """A copy of the run folder holding ``what`` and the command that reads it back."""
    if what == "pair.json":
        d = shutil.copytree(work / "pair", tmp_path / "pair")
        return (
            d / "pair.json",
            ["restore", "train", d, "--out", tmp_path / "m", "--max-steps", "1"],
            "restore register",
        )
    if what == "enhance.json":
        d = shutil.copytree(work / "enh", tmp_path / "enh")
        cmd = ["restore", "evaluate", d, "--hq", work / "hq.tif", "--out", tmp_path / "rep", "--no-sift"]
        return d / "enhance.json", cmd, "restore apply"
    if what == "model.json":
        d = shutil.copytree(work / "seg", tmp_path / "seg")
        return (
            d / "model.json",
            ["segment", "apply", d, work / "img.tif", "--out", tmp_path / "l.tif"],
            "segment",
        )
    d = shutil.copytree(work / "run", tmp_path / "run")
    cmd = ["fuse", "evaluate", work / "sr.tif", "--run", d, "--out", tmp_path / "ev", "--subvolumes", "2",
           "--subvolume-size", "8", "--transport", "0"]  # fmt: skip
    return d / "config.json", cmd, "--run"


@pytest.mark.parametrize("damage", sorted(DAMAGE))
@pytest.mark.parametrize("what", ["pair.json", "enhance.json", "model.json", "config.json"])
def test_a_damaged_run_file_is_one_error_line_naming_it_and_the_fix(
    work, tmp_path, what, damage, one_error_line
):
    path, cmd, fix = _damaged(work, tmp_path, what)
    text, needle = DAMAGE[damage]
    path.write_text(text)
    before = fingerprint(tmp_path)
    one_error_line(_run(*cmd), str(path), needle, fix)
    assert fingerprint(tmp_path) == before


@pytest.mark.parametrize(
    "what, edit, needle",
    [
        ("pair.json", lambda m: m["files"].pop("lq"), "no field 'files.lq'"),
        ("pair.json", lambda m: m["stats"]["hq"].update(lo="low"), "'stats.hq.lo' is a str"),
        ("enhance.json", lambda m: m.update(stats=[1]), "'stats' is a list"),
        ("model.json", lambda m: m.update(format="other"), "not a segmentation model description"),
        ("config.json", lambda m: m.update(scale="big"), "scale"),
    ],
    ids=["pair missing key", "pair wrong type", "enhance wrong type", "model foreign", "config invalid"],
)
def test_a_run_file_with_a_missing_or_mistyped_field_is_one_error_line(
    work, tmp_path, what, edit, needle, one_error_line
):
    path, cmd, _ = _damaged(work, tmp_path, what)
    meta = json.loads(path.read_text())
    edit(meta)
    path.write_text(json.dumps(meta))
    one_error_line(_run(*cmd), str(path), needle)


def test_a_checkpoint_with_damaged_metadata_is_one_error_line(tmp_path):
    import torch
    from safetensors.torch import save_file

    from matsight.nn.checkpoint import load_checkpoint

    path = tmp_path / "w.safetensors"
    save_file({"a/b": torch.zeros(2)}, str(path), metadata={"matsight": '{"config": '})
    with pytest.raises(InputError, match="damaged matsight metadata"):
        load_checkpoint(path)
