import os

import pytest

from matsight._errors import InputError
from matsight.gui.paths import RUNS_DIR, DataRoot


@pytest.fixture
def root(tmp_path):
    d = tmp_path / "data"
    (d / "sub").mkdir(parents=True)
    (d / "sub" / "a.tif").write_bytes(b"x")
    (d / ".hidden").write_text("h")
    (tmp_path / "secret.txt").write_text("s")
    return DataRoot(d)


@pytest.mark.parametrize(
    "bad",
    ["..", "../secret.txt", "sub/../../secret.txt", "sub/../../data/../secret.txt", "/etc/passwd", "/", "~"],
)
def test_traversal_refused(root, bad):
    with pytest.raises(InputError, match="outside the data folder|does not exist"):
        root.resolve(bad)


def test_traversal_message_names_the_folder(root):
    with pytest.raises(InputError, match="outside the data folder"):
        root.resolve("../secret.txt")
    with pytest.raises(InputError, match="outside the data folder"):
        root.resolve(str(root.root.parent / "secret.txt"))


def test_inside_paths(root):
    assert root.resolve("sub/a.tif") == root.root / "sub" / "a.tif"
    assert root.resolve("sub/../sub/a.tif", kind="file") == root.root / "sub" / "a.tif"
    assert root.resolve(str(root.root / "sub")) == root.root / "sub"  # absolute inside: fine
    assert root.resolve("") == root.root
    assert root.relative(root.root / "sub" / "a.tif") == "sub/a.tif"
    assert root.relative(root.root) == "."
    with pytest.raises(InputError, match="is a folder"):
        root.resolve("sub", kind="file")
    with pytest.raises(InputError, match="does not exist"):
        root.resolve("nope.tif")
    with pytest.raises(InputError, match="NUL"):
        root.resolve("sub/a.tif\x00.png")


def test_symlink_out_of_root_refused_and_hidden(root):
    os.symlink(root.root.parent / "secret.txt", root.root / "link.txt")
    os.symlink(root.root.parent, root.root / "up")
    with pytest.raises(InputError, match="outside"):
        root.resolve("link.txt")
    with pytest.raises(InputError, match="outside"):
        root.resolve("up/secret.txt")
    names = [e["name"] for e in root.listdir(".")]
    assert names == ["sub"]  # symlinks out and hidden files are not offered
    assert root.listdir("sub") == [
        {"name": "a.tif", "path": "sub/a.tif", "dir": False, "size": 1, "suffix": ".tif"}
    ]


def test_run_dir(root):
    auto = root.run_dir(None, default_prefix="fuse")
    assert auto.parent == root.root / RUNS_DIR and auto.name.startswith("fuse-")
    assert root.run_dir("runs/mine") == root.root / "runs" / "mine"
    with pytest.raises(InputError, match="outside"):
        root.run_dir("../elsewhere")
    with pytest.raises(InputError, match="data folder itself"):
        root.run_dir(".")
    with pytest.raises(InputError, match="is a file"):
        root.run_dir("sub/a.tif")


def test_missing_root(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        DataRoot(tmp_path / "nope")


def test_unusable_paths_are_messages(root):
    for bad in (5, ["sub"], {"a": 1}):
        with pytest.raises(InputError, match="must be text"):
            root.resolve(bad)
    with pytest.raises(InputError, match="not a usable path"):
        root.resolve("x" * 5000)
    with pytest.raises(InputError, match="no file chosen"):
        root.resolve("", kind="file")


def test_output_checks(root):
    a = root.root / "sub" / "a.tif"
    assert root.output("sub/b.tif", kind="file", inputs=[a]) == root.root / "sub" / "b.tif"
    with pytest.raises(InputError, match="sub/a.tif is also an input"):
        root.output("sub/a.tif", kind="file", inputs=[a])
    with pytest.raises(InputError, match="holds the input sub/a.tif"):
        root.output("sub", kind="dir", inputs=[a], replaced=True)
    with pytest.raises(InputError, match="sub is a folder; give a file name"):
        root.output("sub", kind="file")
    with pytest.raises(InputError, match="sub/a.tif is a file, not a folder"):
        root.output("sub/a.tif/out", kind="dir")
    with pytest.raises(InputError, match="must end in .tif"):
        root.output("out.txt", kind="file", suffixes=(".tif",))
    with pytest.raises(InputError, match="also an input"):
        root.run_dir("sub", inputs=[root.root / "sub"])
