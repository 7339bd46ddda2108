import pytest


@pytest.mark.slow
def test_restore_demo_runs(tmp_path):
    from matsight.demos import restore as demo

    summary = demo.run(tmp_path, seed=0, budget_s=10, shape=(16, 96, 96))
    assert (tmp_path / "index.html").is_file()
    assert summary["train steps"] > 0
    assert summary["PSNR one-step (dB)"] > summary["PSNR bicubic (dB)"]
