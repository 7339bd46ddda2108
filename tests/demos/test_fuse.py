from matsight.demos import fuse as demo


def test_demo_trains_generates_and_reports(tmp_path):
    summary = demo.run(tmp_path / "fuse", seed=2, size=64, budget=4.0)
    out = tmp_path / "fuse"
    for name in ("index.html", "sr.tif", "lr.tif", "truth.tif", "metrics.json", "run/best.safetensors"):
        assert (out / name).is_file(), name
    assert summary["truth / LR / SR"].startswith("64³ / 16³ / 56³")
    assert 0 <= summary["max |ΔVF| vs truth"] <= 1
    assert summary["LR consistency"].endswith("%")
    assert isinstance(demo.TITLE, str) and demo.TITLE
