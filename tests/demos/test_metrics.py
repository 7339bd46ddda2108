from matsight.demos import metrics as demo


def test_demo_writes_report(tmp_path):
    out = demo.run(tmp_path / "m", seed=3, size=32, subvolume_size=16, n_subvolumes=8, solve_tau=False)
    assert demo.TITLE and (tmp_path / "m" / "index.html").is_file()
    assert out["VF pore / active / binder"] == "0.400 / 0.500 / 0.100"
    assert {"slices.png", "two_point_correlation.png", "subvolume_violins.png"} <= {
        p.name for p in (tmp_path / "m").glob("*.png")
    }
