import pytest
import torch

from matsight import InputError
from matsight.nn.checkpoint import load_checkpoint, save_checkpoint
from matsight.nn.device import resolve_device


def test_checkpoint_round_trip(tmp_path):
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4))
    meta = {"config": {"scale": 4.0, "phases": [0, 1]}, "iteration": 17}
    path = save_checkpoint(tmp_path / "ck.safetensors", {"generator": net.state_dict()}, meta)
    groups, meta2 = load_checkpoint(path)
    assert meta2 == meta
    for key, value in net.state_dict().items():
        assert torch.equal(groups["generator"][key], value)
    fresh = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4))
    fresh.load_state_dict(groups["generator"])


def test_checkpoint_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_checkpoint(tmp_path / "missing.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="not a readable"):
        load_checkpoint(bad)


def test_resolve_device():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in {"cpu", "cuda", "mps"}
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="CUDA"):
            resolve_device("cuda")
