"""The FFT figure's labels: one per Friedel pair, none overlapping, all inside the figure (issue #36)."""

import json

import numpy as np
import pytest

from matsight.tem import analyze, lattice
from matsight.tem.report import _friedel_pairs, fft_figure, write_analysis


@pytest.fixture(scope="module")
def result():
    li = lattice.two_phase_image((192, 192), 0.02, seed=1, dose=1500)
    return analyze(li.image, 0.02, ["Li", "LiF"]), li.image


def _labels(fig):
    ax = fig.axes[0]
    return [t for t in ax.texts if t.get_text()]


def test_one_label_per_friedel_pair_without_overlap_inside_the_figure(result):
    import matplotlib.pyplot as plt

    res, _ = result
    fig = fft_figure(res)
    try:
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        labels = _labels(fig)
        pairs = _friedel_pairs(res.spots)
        assert len(res.spots) >= 4 and len(pairs) >= 4
        left_out = 0
        title = fig.axes[0].get_title()
        if "left out" in title:
            left_out = int(title.split("\n")[1].split()[0])
        assert len(labels) + left_out == len(pairs)
        assert len(labels) >= len(pairs) // 2  # crowding leaves few out
        boxes = [t.get_window_extent(renderer) for t in labels]
        for i, a in enumerate(boxes):
            for b in boxes[i + 1 :]:
                assert not a.overlaps(b), (a, b)
        inside = fig.axes[0].get_window_extent(renderer)
        page = fig.bbox
        for t, bb in zip(labels, boxes, strict=True):
            for box in (inside, page):
                assert box.x0 <= bb.x0 and bb.x1 <= box.x1 and box.y0 <= bb.y0 and bb.y1 <= box.y1, (
                    t.get_text()
                )
        # a spot and its mate share one label: the mates' positions carry none of their own
        texts = [t.get_text() for t in labels]
        assert len(set(texts)) == len(texts) or len(texts) == len(pairs)
    finally:
        plt.close(fig)


def test_a_pair_found_twice_is_labelled_once(result):
    """A spot table holding k and −k as two rows: one pair, one label."""
    from types import SimpleNamespace

    sp = result[0].spots
    swap = {"row": "mate_row", "col": "mate_col", "mate_row": "row", "mate_col": "col", "size": "size"}
    twice = SimpleNamespace(
        **{f: np.concatenate([getattr(sp, f), getattr(sp, m)[:1]]) for f, m in swap.items()}
    )
    assert _friedel_pairs(_Table(twice)) == _friedel_pairs(sp)


class _Table:
    def __init__(self, ns):
        self.__dict__.update(vars(ns))

    def __len__(self):
        return len(self.row)


def test_saved_folder_records_the_settings(result, tmp_path):
    res, img = result
    write_analysis(
        res, img, tmp_path, source="synthetic", settings={"tolerance": 0.02, "angle_tolerance": 2.0}
    )
    meta = json.loads((tmp_path / "spots.json").read_text())
    st = meta["settings"]
    assert st["tolerance"] == 0.02 and st["angle_tolerance"] == 2.0 and st["detector"] == "classical"
    assert st["calibration"]["pixel_size_nm"] == {"y": 0.02, "x": 0.02} and st["calibration"]["source"]
    assert [p["name"] for p in st["phases"]] == ["Li", "LiF"] and all("source" in p for p in st["phases"])
    html = (tmp_path / "index.html").read_text()
    assert "Settings" in html and "angle_tolerance" in html
