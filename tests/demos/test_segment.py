from matsight.demos import segment as demo


def test_demo_writes_report_and_beats_threshold(tmp_path):
    summary = demo.run(tmp_path / "seg", seed=1, shape=(8, 96, 96))
    assert (tmp_path / "seg" / "index.html").is_file() and (tmp_path / "seg" / "slice.png").is_file()
    assert summary["labelled voxels"] > 0
    assert summary["mean Dice forest"] > summary["mean Dice multi-Otsu"]
    assert isinstance(demo.TITLE, str) and demo.TITLE
