from matsight.demos import tem as demo


def test_demo_two_phase_report(tmp_path):
    s = demo.run(
        tmp_path, seed=0
    )  # 512² (LiF is the matrix at the frame edges: smaller frames under-weight it)
    assert isinstance(demo.TITLE, str) and demo.TITLE
    assert set(s["phases found"].split(", ")) == {"LiF", "Li2O"}
    assert s["IoU LiF"] >= 0.7 and s["IoU Li2O"] >= 0.7
    assert s["mean |d error| (%)"] < 0.5
    assert (tmp_path / "index.html").is_file() and (tmp_path / "phase_map.png").is_file()
    html = (tmp_path / "index.html").read_text()
    assert "Ground truth" in html and "unet" in html
