"""Every command against bad inputs and broken disks (issue 35): one `error:` line, exit code 2, no traceback,
the inputs byte-identical and nothing new written. Cases the per-group `test_cli_errors.py` modules cover
(bad option values, outputs in the way) are not repeated here; lying headers are in tests/io.
"""

import os

import pytest
from typer.testing import CliRunner

from matsight.cli import app

from .conftest import fingerprint

runner = CliRunner()


# every command with its good arguments; {X} is replaced by a bad input, OUT by the output path
COMMANDS = {
    "metrics": ["metrics", "{gt}", "--json", "OUT.json", "--no-tortuosity"],
    "fuse train --lr": ["fuse", "train", "--lr", "{lr}", "--hr", "{hr}", "--out", "OUT", "--steps", "0"],
    "fuse train --hr": ["fuse", "train", "--lr", "{lr}", "--hr", "{hr}", "--out", "OUT", "--steps", "0"],
    "fuse degrade": ["fuse", "degrade", "{gt}", "--out", "OUT.tif"],
    "fuse generate": ["fuse", "generate", "{run}", "--lr", "{lr}", "--out", "OUT.tif"],
    "fuse evaluate": [
        "fuse",
        "evaluate",
        "{sr}",
        "--out",
        "OUT",
        "--subvolumes",
        "2",
        "--subvolume-size",
        "8",
        "--transport",
        "0",
    ],
    "restore register": ["restore", "register", "{lq}", "{hq}", "--out", "OUT", "--no-mask"],
    "restore apply": ["restore", "apply", "{model}", "{lq}", "--steps", "1", "--out", "OUT"],
    "restore evaluate": ["restore", "evaluate", "{enh}", "--hq", "{hq}", "--out", "OUT", "--no-sift"],
    "segment train": ["segment", "train", "{img}", "{strokes}", "--out", "OUT", "--trees", "3"],
    "segment train labels": ["segment", "train", "{img}", "{strokes}", "--out", "OUT", "--trees", "3"],
    "segment apply": ["segment", "apply", "{seg}", "{img}", "--out", "OUT.tif"],
    "tem analyze": ["tem", "analyze", "{frame}", "--pixel-size", "0.02", "--out", "OUT", "--no-maps"],
    "tem series": ["tem", "series", "{movie}", "--pixel-size", "0.02", "--out", "OUT"],
}
# which argument of each command a bad input replaces
SLOT = {
    "metrics": "gt",
    "fuse train --lr": "lr",
    "fuse train --hr": "hr",
    "fuse degrade": "gt",
    "fuse generate": "lr",
    "fuse evaluate": "sr",
    "restore register": "lq",
    "restore apply": "lq",
    "restore evaluate": "hq",
    "segment train": "img",
    "segment train labels": "strokes",
    "segment apply": "img",
    "tem analyze": "frame",
    "tem series": "movie",
}
GOOD = {
    "gt": "gt.tif", "lr": "lr.tif", "hr": "hr.tif", "sr": "sr.tif", "run": "run", "lq": "lq.tif",
    "hq": "hq.tif", "model": "model", "enh": "enh", "img": "img.tif", "strokes": "strokes.tif", "seg": "seg",
    "frame": "frame.tif", "movie": "movie.tif",
}  # fmt: skip
LABELS = ("metrics", "fuse train --lr", "fuse train --hr", "fuse degrade", "fuse generate", "fuse evaluate",
          "segment train labels")  # fmt: skip
IMAGES = ("restore register", "restore apply", "restore evaluate", "segment train", "segment apply",
          "tem analyze", "tem series")  # fmt: skip
# bad file -> the commands it is given to
CASES = {
    "missing.tif": (*LABELS, *IMAGES),
    "empty.tif": (*LABELS, *IMAGES),
    "truncated.tif": (*LABELS, *IMAGES),
    "flipped.tif": (*LABELS, *IMAGES),
    "text.tif": ("metrics", "restore register", "tem analyze"),
    "float_labels.tif": ("metrics", "fuse train --hr", "fuse degrade", "segment train labels"),
    "complex.npy": ("metrics", "restore register", "segment train", "tem analyze"),
    # segment train/apply warn and go on (non-finite pixels as the extreme grey values), by design
    "nan.tif": ("restore register", "tem analyze"),
    "inf.tif": ("restore apply",),
    # metrics takes 0/255 as two phases numbered 0 and 255, by design
    "labels255.tif": ("fuse train --hr", "segment train labels"),
    "hr.tif": ("fuse train --lr", "fuse generate", "fuse degrade", "fuse evaluate"),  # 2D where 3D is needed
    "stack.tif": ("restore register", "tem analyze"),  # 3D where the other input is 2D / one frame is needed
}


def _argv(t, command, bad=None, out="out"):
    files = {k: str(t / v) for k, v in GOOD.items()}
    if bad is not None:
        files[SLOT[command]] = str(t / bad)
    argv = []
    for a in COMMANDS[command]:
        if a.startswith("{"):
            argv.append(files[a[1:-1]])
        elif a.startswith("OUT"):
            argv.append(str(out) + a[3:])
        else:
            argv.append(a)
    return argv


def _params():
    for bad, commands in CASES.items():
        for command in commands:
            yield pytest.param(bad, command, id=f"{command}-{bad}")


@pytest.mark.parametrize("bad, command", list(_params()))
def test_a_bad_input_is_one_error_line_and_changes_nothing(work, bad, command, one_error_line):
    before = fingerprint(work)
    r = runner.invoke(app, _argv(work, command, bad, out=work / "out"))
    one_error_line(r)
    assert fingerprint(work) == before  # inputs byte-identical, nothing new


# -------------------------------------------------------------------------------- outputs that hold an input
INSIDE = {  # command -> (its argument inside the output folder, the output folder)
    "restore register": "lq",
    "restore apply": "lq",
    "restore evaluate": "hq",
    "segment train": "img",
    "tem analyze": "frame",
    "fuse evaluate": "sr",
}


@pytest.mark.parametrize("command", sorted(INSIDE))
def test_an_output_folder_that_holds_an_input_is_refused(work, command, one_error_line):
    before = fingerprint(work)
    r = runner.invoke(app, _argv(work, command, bad=f"inside/{GOOD[INSIDE[command]]}", out=work / "inside"))
    one_error_line(r, "holds the input", "name a new folder")
    assert fingerprint(work) == before


@pytest.mark.parametrize(
    "argv",
    [
        ["metrics", "{t}/inside/gt.tif", "--plot", "{t}/inside", "--no-tortuosity"],
        ["segment", "train", "{t}/img.tif", "{t}/inside/strokes.tif", "--out", "{t}/inside"],
        ["tem", "series", "{t}/inside/frame.tif", "--pixel-size", "0.02", "--out", "{t}/inside"],
        ["fuse", "generate", "{t}/run", "--lr", "{t}/lr.tif", "--out", "{t}/lr.tif"],
        ["fuse", "degrade", "{t}/gt.tif", "--out", "{t}/gt.tif"],
    ],
    ids=["metrics --plot", "segment train labels", "tem series", "generate over input", "degrade over input"],
)
def test_an_output_that_is_or_holds_an_input_is_refused(work, argv, one_error_line):
    before = fingerprint(work)
    r = runner.invoke(app, [a.replace("{t}", str(work)) for a in argv])
    one_error_line(r, "input")
    assert fingerprint(work) == before


# ---------------------------------------------------------------------------------- a full or read-only disk
# the cheapest settings of each command that writes; a run folder's training is not needed to reach a write
DISK = {
    "metrics --json": (["metrics", "{gt}", "--json", "OUT.json", "--no-tortuosity"], ("full", "read-only")),
    "metrics --plot": (["metrics", "{hr}", "--plot", "OUT", "--no-tortuosity"], ("full", "read-only")),
    "fuse train": (COMMANDS["fuse train --lr"], ("full", "read-only")),
    "fuse degrade": (COMMANDS["fuse degrade"], ("full", "read-only")),
    "fuse generate": (COMMANDS["fuse generate"], ("full", "read-only")),
    "fuse generate zarr": (
        ["fuse", "generate", "{run}", "--lr", "{lr}", "--out", "OUT.zarr", "--samples", "2"],
        ("full", "read-only"),
    ),
    "fuse evaluate": (COMMANDS["fuse evaluate"], ("read-only",)),
    "restore register": (COMMANDS["restore register"], ("full", "read-only")),
    "restore train": (["restore", "train", "{pair}", "--out", "OUT", "--max-steps", "1"], ("read-only",)),
    "restore apply": (COMMANDS["restore apply"], ("full", "read-only")),
    "restore evaluate": (COMMANDS["restore evaluate"], ("full", "read-only")),
    "segment train": (COMMANDS["segment train"], ("full", "read-only")),
    "segment apply": (COMMANDS["segment apply"], ("full", "read-only")),
    "tem analyze": (COMMANDS["tem analyze"], ("full", "read-only")),
    "tem series": (COMMANDS["tem series"], ("full", "read-only")),
    "demo": (["demo", "--parts", "metrics", "--out", "OUT"], ("read-only",)),
}


def _disk_params():
    for name, (_, states) in DISK.items():
        for state in states:
            yield pytest.param(name, state, id=f"{name}-{state}")


@pytest.mark.parametrize("name, state", list(_disk_params()))
def test_a_full_or_read_only_disk_is_one_error_line_and_leaves_nothing(
    work, broken_disk, name, state, one_error_line
):
    disk = broken_disk(state)
    files = {k: str(work / v) for k, v in {**GOOD, "pair": "pair"}.items()}
    argv = [
        files[a[1:-1]] if a.startswith("{") else (str(disk / "out") + a[3:] if a.startswith("OUT") else a)
        for a in DISK[name][0]
    ]
    before, on_disk = fingerprint(work), sorted(os.listdir(disk))
    r = runner.invoke(app, argv)
    # what the command printed before the write failed is on stdout; stderr holds the one line
    err = type("R", (), {"exit_code": r.exit_code, "output": r.stderr})
    why = "No space left on device" if state == "full" else "Read-only file system"
    line = one_error_line(err, "cannot write", why, str(disk))
    assert line.endswith(("another --out", "another --json", "another --plot", "on a writable disk"))
    assert fingerprint(work) == before and sorted(os.listdir(disk)) == on_disk
