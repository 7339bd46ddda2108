"""napari tests run headless: under the display that is there, else under an Xvfb started for them.

They skip (never fail) where napari, pytest-qt or a display with OpenGL cannot be had: napari draws with
OpenGL, which Qt's ``offscreen`` platform does not give, so an X server (Xvfb, with Mesa's software GL) is
needed. A viewer is first started in a child process, so a Qt that aborts cannot take pytest down with it.
Screenshots go to ``$MATSIGHT_TEST_ARTIFACTS/napari`` and, with ``MATSIGHT_NAPARI_SCREENSHOTS=1``, to
``docs/images/napari`` (the docs' pictures).
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DOCS_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images" / "napari"

# napari keeps no settings file in the tests (read when napari.settings is first imported): the user's stays
os.environ["NAPARI_CONFIG"] = ""

PROBE = """
import numpy as np, napari
v = napari.Viewer(show=False)
v.add_image(np.zeros((8, 8)))
assert v.screenshot(canvas_only=True).size > 0
v.close()
"""


def _start_xvfb():
    """Start Xvfb on a free display: ``(process, ":N")``, or ``(None, None)`` when it cannot run.

    A shell watches this process and ends the Xvfb once it is gone: the session's QApplication stays connected
    to the display until the very end, and a display closed under it makes Qt exit with an error.
    """
    if shutil.which("Xvfb") is None:
        return None, None
    read, write = os.pipe()
    watch = (
        f"Xvfb -displayfd {write} -screen 0 1600x1200x24 -nolisten tcp >/dev/null 2>&1 & x=$!; "
        f"exec {write}>&-; while kill -0 {os.getpid()} 2>/dev/null && kill -0 $x 2>/dev/null; "
        "do sleep 1; done; kill $x 2>/dev/null"
    )
    proc = subprocess.Popen(["bash", "-c", watch], pass_fds=(write,), start_new_session=True)
    os.close(write)
    with os.fdopen(read) as f:
        number = f.readline().strip()  # Xvfb writes the display number once it accepts clients
    if not number:
        return None, None
    return proc, f":{number}"


def _probe(env):
    try:
        run = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, timeout=120)
    except subprocess.TimeoutExpired:
        return "starting a napari viewer took over 2 minutes"
    if run.returncode != 0:
        tail = (run.stderr.decode(errors="replace").strip().splitlines() or ["no output"])[-1]
        return f"a napari viewer could not start ({tail[:200]})"
    return None


@pytest.fixture
def make_napari_viewer(qtbot, napari_display):
    """``make_napari_viewer(**kwargs)``: a hidden napari viewer, closed after the test.

    napari's own fixture comes with its pytest plugin, which the suite leaves off (``-p no:napari``): the
    plugin changes every test's logging.
    """
    import napari

    viewers = []

    def make(**kwargs):
        kwargs.setdefault("show", False)
        viewer = napari.Viewer(**kwargs)
        viewers.append(viewer)
        return viewer

    yield make
    for viewer in viewers:
        viewer.close()


@pytest.fixture(scope="session")
def qapp_cls(napari_display):
    """pytest-qt's QApplication class, made only once a display is there (tests without Qt need none)."""
    from qtpy.QtWidgets import QApplication

    return QApplication


@pytest.fixture(scope="session")
def napari_display():
    """A display napari can draw on, for this session's napari tests (skipped without one)."""
    pytest.importorskip("napari")
    pytest.importorskip("pytestqt")
    import matplotlib

    matplotlib.use("Agg")  # the other tests' figures stay off the display this sets
    saved = {k: os.environ.get(k) for k in ("DISPLAY", "QT_QPA_PLATFORM")}
    proc = None
    if not os.environ.get("DISPLAY"):
        proc, display = _start_xvfb()
        if proc is None:
            pytest.skip("no display and no Xvfb (apt-get install xvfb) for the napari tests")
        os.environ["DISPLAY"] = display
    os.environ.pop("QT_QPA_PLATFORM", None)  # offscreen has no OpenGL: napari needs the X display
    problem = _probe(dict(os.environ))
    if problem:
        pytest.skip(problem)
    yield os.environ["DISPLAY"]
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    # the Xvfb stays until pytest exits: the session's QApplication is connected to it


@pytest.fixture
def screenshot():
    """``screenshot(widget_or_viewer, name)``: a PNG for the docs / the test artifacts; returns the paths."""

    def save(target, name, *, view=None):
        """``view``: called once the window has its size (default: the viewer's ``reset_view``)."""
        from qtpy.QtWidgets import QApplication, QWidget

        if isinstance(target, QWidget):
            widget = target
        else:  # a viewer: its whole window, at a size where canvas and dock widgets both show
            widget = target.window._qt_window
            widget.resize(1500, 860)
            QApplication.processEvents()
            (view or target.reset_view)()
        QApplication.processEvents()
        image = widget.grab()
        folders = []
        if os.environ.get("MATSIGHT_TEST_ARTIFACTS"):
            folders.append(Path(os.environ["MATSIGHT_TEST_ARTIFACTS"]) / "napari")
        if os.environ.get("MATSIGHT_NAPARI_SCREENSHOTS") == "1":
            folders.append(DOCS_IMAGES)
        paths = []
        for folder in folders:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{name}.png"
            assert image.save(str(path), "PNG"), path
            paths.append(path)
        assert image.width() > 100 and image.height() > 100
        return paths

    return save
