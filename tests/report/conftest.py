"""Report tests: reports written once per session, what their figures must carry, headless Chromium.

The ``browser`` fixture (``tests/conftest.py``, shared with the GUI tests) skips when Playwright's Python
package or a Chromium binary is absent.
"""

from html.parser import HTMLParser

import numpy as np
import pytest


class _Figures(HTMLParser):
    """Each ``<figure>``'s ``data-*`` attributes (as ints) and its image's ``src``."""

    def __init__(self):
        super().__init__()
        self.figures = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "figure":
            self.figures.append({k[5:]: int(v) for k, v in a.items() if k.startswith("data-")})
        elif tag == "img" and self.figures and "src" not in self.figures[-1]:
            self.figures[-1]["src"] = a["src"]


def page_figures(html_text):
    """``[{"src": "x.png", "scale-bar": n, "legend": n, "images": n, "labelled": n, ...}]`` of a report."""
    parser = _Figures()
    parser.feed(html_text)
    return parser.figures


def figure_problems(fig):
    """What a figure lacks by the house rules: a scale bar on every image, a legend wherever a panel holds
    two or more labelled lines or bars. ``fig``: one entry of :func:`page_figures` (or the DOM's dataset).
    """
    n = {k: int(fig.get(k, 0)) for k in ("images", "scale-bar", "legend", "labelled")}
    out = []
    if n["scale-bar"] < n["images"]:
        out.append(f"{fig.get('src')}: {n['images']} images, {n['scale-bar']} scale bars")
    if n["labelled"] >= 2 and n["legend"] < 1:
        out.append(f"{fig.get('src')}: {n['labelled']} labelled lines and no legend")
    return out


@pytest.fixture(scope="session")
def rules():
    """The checks as a fixture (conftest is no importable module): ``rules.page_figures``,
    ``rules.figure_problems``.
    """
    from types import SimpleNamespace

    return SimpleNamespace(page_figures=page_figures, figure_problems=figure_problems)


@pytest.fixture(scope="session")
def tem_report(tmp_path_factory):
    """A two-phase synthetic frame analysed with maps: ``(folder, result)``."""
    from matsight.tem import analyze, lattice
    from matsight.tem.report import write_analysis

    li = lattice.two_phase_image((192, 192), 0.02, phases=("LiF", "Li2O"), seed=1, dose=1500)
    res = analyze(li.image, 0.02, ["LiF", "Li2O"], maps=True)
    out = tmp_path_factory.mktemp("tem")
    write_analysis(res, li.image, out, source="two_phase_image(192², 0.02 nm/px)")
    return out, res


@pytest.fixture(scope="session")
def metrics_report(tmp_path_factory):
    """The metrics report of two small generated electrodes (slices with a 20 nm voxel, violins, curves)."""
    from matsight.data.microstructures import particle_electrode
    from matsight.metrics.microstructure import subvolume_statistics, summary
    from matsight.report import Report
    from matsight.report import microstructure as rm

    vols = {n: particle_electrode((20, 20, 20), radius=4, seed=s) for s, n in enumerate(["SR", "HR"])}
    sums = {k: summary(v, tortuosity=False, max_distance=6) for k, v in vols.items()}
    subs = {k: subvolume_statistics(v, size=10, n=8, seed=0) for k, v in vols.items()}
    names = {0: "pore", 1: "active", 2: "binder"}
    out = tmp_path_factory.mktemp("metrics")
    rep = Report(out, "metrics")
    rep.figure(rm.compare_slices(vols, phase_names=names, spacing=20.0), "slices", dpi=60)
    rm.summary_report(rep, sums, subvolumes=subs, phase_names=names)
    rep.write()
    return out


@pytest.fixture(scope="session")
def series_report(tmp_path_factory):
    """A tem series report from a made-up three-frame result (no analysis needed)."""
    from matsight.tem.series import SeriesResult, write_series

    rng = np.random.default_rng(0)
    names = ["LiF", "Li2O", "unknown"]
    res = SeriesResult(
        phases=names,
        frames=[0, 1, 2],
        time_s=np.arange(3.0),
        intensity={p: rng.random(3) + 0.1 for p in names},
        n_spots={p: np.array([2, 3, 4]) for p in names},
        seconds=1.0,
        per_frame_seconds=[0.3, 0.3, 0.4],
        families={"LiF {200}": rng.random(3), "Li2O {111}": rng.random(3)},
        time_source="index",
    )
    out = tmp_path_factory.mktemp("series")
    write_series(res, out)
    return out


@pytest.fixture(scope="session")
def fuse_report(tmp_path_factory):
    """``fuse evaluate``'s report of a small electrode against its truth, HR slice and LR (20 nm voxels)."""
    from matsight.data.microstructures import particle_electrode
    from matsight.fuse.evaluate import evaluate

    truth = particle_electrode((32, 32, 32), seed=0)
    lr = (truth[1::4, 1::4, 1::4] == 1).astype(np.uint8)  # binder merged into pore
    out = tmp_path_factory.mktemp("fuse")
    evaluate(
        truth[4:-4, 4:-4, 4:-4],
        hr=truth[16],
        lr=lr,
        truth=truth,
        out_dir=out,
        subvolume_size=12,
        n_subvolumes=8,
        n_transport=1,
        transport_axes=(0,),
        fft_slices=3,
        spacing=(20.0, 20.0, 20.0),
    )
    return out


@pytest.fixture(scope="session")
def restore_report(tmp_path_factory):
    """``restore evaluate``'s report of a made-up HQ slice and three noisy versions (0.5 µm pixels)."""
    from matsight.restore.evaluate import write_report

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:48, :48]
    hq = 1000.0 + 400.0 * ((yy // 12 + xx // 12) % 2)
    noise = {"LQ bicubic": 120, "InDI N=1": 40, "InDI": 30}
    imgs = {k: hq + rng.normal(0, s, hq.shape) for k, s in noise.items()}
    metrics = {k: {"psnr": 1.0} for k in ("HQ", *imgs)}
    out = tmp_path_factory.mktemp("restore")
    write_report(out, metrics, imgs, hq, consistency=hq[::2, ::2] - 1000, spacing=0.5, unit="µm")
    return out
