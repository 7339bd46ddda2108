"""One thread setting for every command: ``--threads`` / ``MATSIGHT_THREADS``, default from the free cores."""

import os

import pytest
import torch
from typer.testing import CliRunner

from matsight.cli import app
from matsight.nn import device


@pytest.fixture(autouse=True)
def _keep_threads(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.delenv("MATSIGHT_THREADS", raising=False)
    yield
    torch.set_num_threads(before)  # monkeypatch restores the variable


@pytest.mark.parametrize(("load", "want"), [(0.0, 4), (0.3, 4), (1.2, 3), (2.6, 1), (9.0, 1)])
def test_default_threads_leave_the_cores_other_processes_use(monkeypatch, load, want):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(4)), raising=False)
    monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))
    assert device.default_threads() == want


@pytest.mark.parametrize("bad", ["0", "-1", "two", "1.5"])
def test_bad_thread_counts_are_one_line(bad, one_error_line):
    result = CliRunner().invoke(app, ["--threads", bad, "info"])
    one_error_line(result, "threads must be a positive whole number or auto")


def test_the_option_and_the_variable_are_applied_by_torch_work(monkeypatch):
    result = CliRunner().invoke(app, ["--threads", "1", "info"])
    assert result.exit_code == 0 and "torch threads          1 (MATSIGHT_THREADS" in result.output
    assert os.environ["MATSIGHT_THREADS"] == "1"  # worker processes inherit it
    monkeypatch.setenv("MATSIGHT_THREADS", "2")
    monkeypatch.setattr(device, "_applied", False)
    device.resolve_device("cpu")  # what every torch workload calls first
    assert torch.get_num_threads() == 2
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    assert device.set_threads() == 2  # the variable wins over the free-core default


def test_a_library_user_keeps_torch_threads_unless_the_variable_is_set(monkeypatch):
    monkeypatch.setattr(device, "_applied", False)
    torch.set_num_threads(3)
    device.resolve_device("cpu")
    assert torch.get_num_threads() == 3
    monkeypatch.setenv("MATSIGHT_THREADS", "auto")
    monkeypatch.setattr(device, "default_threads", lambda: 1)
    device.resolve_device("cpu")
    assert torch.get_num_threads() == 1
