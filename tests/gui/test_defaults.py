"""The GUI's defaults are the CLI's: what the server assumes for a field a page leaves out, and what the
pages show before the user changes anything, equal the typer defaults of the matching ``matsight`` option.
"""

from html.parser import HTMLParser
from importlib import resources

import pytest

pytest.importorskip("starlette")

from matsight.cli import command  # noqa: E402
from matsight.gui.routes import fields, fuse, restore  # noqa: E402

CONFIG = (
    "config"  # tem: the defaults are TemConfig's (test_tem_settings_defaults_are_the_config_the_cli_builds)
)
# (cli group, command, CLI option) → (GUI default, page, form id or None, field name)
# A default of None is the preset's, or on resume the run's (as the CLI's None).
PAIRS = {
    ("restore", "register", "scale"): (restore.DEFAULTS["register"]["scale"], "restore", "register", "scale"),
    ("restore", "register", "mask"): (restore.DEFAULTS["register"]["mask"], "restore", "register", "mask"),
    ("restore", "register", "deformable"): (
        restore.DEFAULTS["register"]["deformable"],
        "restore",
        "register",
        "deformable",
    ),
    ("restore", "train", "preset"): (restore.DEFAULTS["train"]["preset"], "restore", "train", "preset"),
    ("restore", "train", "budget"): (restore.DEFAULTS["train"]["budget"], "restore", "train", "budget"),
    ("restore", "train", "steps"): (
        restore.DEFAULTS["train"]["iterations"],
        "restore",
        "train",
        "iterations",
    ),
    ("restore", "train", "resume"): (restore.DEFAULTS["train"]["resume"], None, None, None),
    ("restore", "train", "device"): (restore.DEFAULTS["train"]["device"], "restore", "train", "device"),
    ("restore", "apply", "indi_steps"): (restore.DEFAULTS["apply"]["steps"], "restore", "apply", "steps"),
    ("restore", "apply", "device"): (restore.DEFAULTS["apply"]["device"], None, None, None),
    ("restore", "evaluate", "spacing"): (
        restore.DEFAULTS["evaluate"]["spacing"],
        "restore",
        "evaluate",
        "spacing",
    ),
    ("restore", "evaluate", "sift"): (restore.DEFAULTS["evaluate"]["sift"], "restore", "evaluate", "sift"),
    ("fuse", "train", "preset"): (fuse.DEFAULTS["train"]["preset"], "fuse", "train", "preset"),
    ("fuse", "train", "scale"): (fuse.DEFAULTS["train"]["scale"], None, None, None),
    ("fuse", "train", "mode"): (fuse.DEFAULTS["train"]["mode"], None, None, None),
    ("fuse", "train", "anisotropic"): (fuse.DEFAULTS["train"]["anisotropic"], "fuse", "train", "anisotropic"),
    ("fuse", "train", "budget"): (fuse.DEFAULTS["train"]["budget"], "fuse", "train", "budget"),
    ("fuse", "train", "steps"): (fuse.DEFAULTS["train"]["iterations"], "fuse", "train", "iterations"),
    ("fuse", "train", "seed"): (fuse.DEFAULTS["train"]["seed"], None, None, None),
    ("fuse", "train", "metrics_every"): (
        fuse.DEFAULTS["train"]["metrics_every"],
        "fuse",
        "train",
        "metrics_every",
    ),
    ("fuse", "train", "resume"): (fuse.DEFAULTS["train"]["resume"], None, None, None),
    ("fuse", "train", "device"): (fuse.DEFAULTS["train"]["device"], "fuse", "train", "device"),
    ("fuse", "generate", "seed"): (fuse.DEFAULTS["generate"]["seed"], "fuse", "generate", "seed"),
    ("fuse", "generate", "samples"): (fuse.DEFAULTS["generate"]["samples"], "fuse", "generate", "samples"),
    ("fuse", "generate", "device"): (fuse.DEFAULTS["generate"]["device"], None, None, None),
    ("tem", "analyze", "tolerance"): (CONFIG, "tem", None, "tolerance"),
    ("tem", "analyze", "angle_tolerance"): (CONFIG, "tem", None, "angle_tolerance"),
    ("tem", "analyze", "min_intensity"): (CONFIG, "tem", None, "min_intensity"),
    ("tem", "analyze", "d_min"): (CONFIG, "tem", None, "d_min"),
    ("tem", "analyze", "d_max"): (CONFIG, "tem", None, "d_max"),
    ("tem", "analyze", "detector"): (CONFIG, "tem", None, "detector"),
}
# page fields whose value the CLI's default stands for in another form (the page's empty field = None)
PAGE_SAME = {
    ("fuse", "train", "scale"): "4",
    ("fuse", "train", "mode"): "resolve",
    ("fuse", "train", "preset"): "cpu",
}
CONFIG = (
    "config"  # tem: the defaults are TemConfig's (test_tem_settings_defaults_are_the_config_the_cli_builds)
)


def cli_default(group, name, option):
    cmd = command().commands[group].commands[name]
    return next(p.default for p in cmd.params if p.name == option)


class _Fields(HTMLParser):
    """``{(form id or None, field name or id): shown value}`` of a page: inputs, checkboxes, selects."""

    def __init__(self):
        super().__init__()
        self.values, self.form, self.select = {}, None, None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        key = a.get("name") or a.get("id")
        if tag == "form":
            self.form = a.get("id")
        elif tag == "input" and key:
            if a.get("type") == "checkbox":
                self.values[(self.form, key)] = "checked" in a
            else:
                self.values[(self.form, key)] = a.get("value")
        elif tag == "select" and key:
            self.select = (self.form, key)
        elif tag == "option" and self.select:
            self.values.setdefault(self.select, a.get("value"))  # the first option is shown

    def handle_endtag(self, tag):
        if tag == "form":
            self.form = None
        elif tag == "select":
            self.select = None


def page_values(page):
    parser = _Fields()
    parser.feed((resources.files("matsight.gui") / "static" / f"{page}.html").read_text())
    return parser.values


def _same(page_value, default):
    """A page's text equals the CLI default (``"0.02"`` is 0.02; an empty field is None)."""
    if isinstance(default, bool) or page_value is None or isinstance(page_value, bool):
        return page_value == default
    if isinstance(default, int | float):
        return float(page_value) == float(default)
    return page_value == str(default)


@pytest.mark.parametrize("key", sorted(PAIRS), ids=lambda k: " ".join(k))
def test_server_and_page_defaults_equal_the_cli(key):
    gui, page, form, field = PAIRS[key]
    cli = cli_default(*key)
    if gui != CONFIG:
        assert gui == cli, f"the server's default of {key} is {gui!r}, the CLI's {cli!r}"
    if page is not None:
        shown = page_values(page)[(form, field)]
        expect = PAGE_SAME.get(key, cli)
        assert _same(shown, expect), (
            f"the {page} page shows {shown!r} for {key}, the CLI's default is {cli!r}"
        )


def test_tem_settings_defaults_are_the_config_the_cli_builds():
    from matsight.gui.routes.tem import SETTINGS
    from matsight.tem.config import FLAT, make_config

    config = make_config()
    for name in SETTINGS:
        assert getattr(getattr(config, FLAT[name]), name) == cli_default("tem", "analyze", name)


def test_every_device_default_is_the_clis():
    devices = {
        cli_default(g, c, "device")
        for g, c in [("restore", "train"), ("restore", "apply"), ("fuse", "train"), ("fuse", "generate")]
    }
    assert devices == {fields.DEVICE} == {fields.device(None)}
    for page in ("fuse", "restore"):
        for (form, field), value in page_values(page).items():
            if field == "device":
                assert value == fields.DEVICE, (page, form)


def test_restore_steps_auto_and_counts_by_the_library_rule():
    assert restore.indi_steps(None) == restore.indi_steps("") == "auto" == restore.indi_steps(" AUTO ")
    assert restore.indi_steps("3") == 3 and restore.indi_steps(5.0) == 5
