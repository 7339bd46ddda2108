import json
import os
import subprocess
import sys
import time

import pytest

from matsight._errors import InputError
from matsight.gui.jobs import JobRunner, RunLock, user_message


def test_run_lock_is_exclusive(tmp_path):
    run = tmp_path / "run"
    a = RunLock(run, owner="job 1").acquire()
    with pytest.raises(InputError, match="in use by job 1"):
        RunLock(run, owner="job 2").acquire()
    a.release()
    b = RunLock(run, owner="job 2").acquire()  # free again
    assert b.holder()["owner"] == "job 2"
    b.release()
    assert not (run / RunLock.NAME).exists()


def test_stale_lock_of_dead_process_is_reclaimed(tmp_path):
    import socket

    run = tmp_path / "run"
    run.mkdir()
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    pid = int(dead.stdout)
    (run / RunLock.NAME).write_text(json.dumps({"pid": pid, "host": socket.gethostname(), "owner": "old"}))
    lock = RunLock(run, owner="new").acquire()
    assert lock.holder()["pid"] == os.getpid()
    lock.release()


def test_two_jobs_cannot_share_a_run_folder(tmp_path):
    runner = JobRunner(threads=2)
    run = tmp_path / "run"
    gate = __import__("threading").Event()
    j1 = runner.submit("t", lambda job: gate.wait(10) and {"ok": 1}, run_dir=run, title="first")
    with pytest.raises(InputError, match="in use by job 1"):
        runner.submit("t", lambda job: {}, run_dir=run, title="second")
    assert len(runner.list()) == 1  # the refused job is not listed
    other = runner.submit("t", lambda job: {"ok": 2}, run_dir=tmp_path / "other")  # another folder is fine
    assert runner.wait(other.id, timeout=10).result == {"ok": 2}
    gate.set()
    assert runner.wait(j1.id, timeout=10).state == "done"
    j3 = runner.submit("t", lambda job: {"ok": 3}, run_dir=run)  # released after the first finished
    assert runner.wait(j3.id, timeout=10).result == {"ok": 3}
    runner.shutdown()


def test_thread_job_errors_are_one_line_messages():
    runner = JobRunner()

    def user(job):
        raise InputError("labels must be integers; segment first")

    def bug(job):
        return {}["missing"]

    j1, j2 = runner.submit("t", user), runner.submit("t", bug)
    runner.wait(j1.id, timeout=10)
    runner.wait(j2.id, timeout=10)
    assert (j1.state, j1.error) == ("failed", "labels must be integers; segment first")
    assert j2.state == "failed" and j2.error == "unexpected error (KeyError): 'missing'"
    assert "Traceback" not in json.dumps(j2.to_dict())
    assert (
        user_message(FileNotFoundError(2, "No such file or directory", "x.tif"))
        == "No such file or directory: x.tif"
    )
    with pytest.raises(InputError, match="no job"):
        runner.get("99")
    runner.shutdown()


def test_thread_job_progress_and_stop():
    runner = JobRunner()

    def work(job):
        for i in range(200):
            if job.should_stop():
                return {"steps": i}
            job.update((i + 1) / 200, f"step {i}")
            time.sleep(0.01)
        return {"steps": 200}

    job = runner.submit("t", work, stoppable=True)
    while job.progress is None or job.progress < 0.05:
        time.sleep(0.01)
    runner.stop(job.id)
    runner.wait(job.id, timeout=10)
    assert job.state == "stopped" and job.result["steps"] < 200
    plain = runner.submit("t", lambda job: {})
    runner.wait(plain.id, timeout=10)
    with pytest.raises(InputError, match="cannot be stopped"):
        runner.stop(runner.submit("t", lambda job: time.sleep(0.3)).id)
    runner.shutdown()


def test_process_job_progress_result_and_lock(tmp_path):
    runner = JobRunner()
    run = tmp_path / "run"
    job = runner.submit_process("selftest", "selftest", {"steps": 4, "delay": 0.05}, run_dir=run)
    assert (run / RunLock.NAME).exists()
    with pytest.raises(InputError, match="in use"):
        runner.submit_process("selftest", "selftest", {}, run_dir=run)
    runner.wait(job.id, timeout=60)
    assert job.state == "done" and job.progress == 1.0 and job.result == {"steps": 4}
    assert job.message == "step 4 of 4"
    assert not (run / RunLock.NAME).exists()
    runner.shutdown()


def test_process_job_errors_and_stop(tmp_path):
    runner = JobRunner()
    user = runner.submit_process(
        "s", "selftest", {"steps": 1, "delay": 0, "fail": "input"}, run_dir=tmp_path / "a"
    )
    bug = runner.submit_process(
        "s", "selftest", {"steps": 1, "delay": 0, "fail": "bug"}, run_dir=tmp_path / "b"
    )
    runner.wait(user.id, timeout=60)
    runner.wait(bug.id, timeout=60)
    assert user.state == "failed" and user.error == "selftest asked to fail; this is the user-error path"
    assert bug.state == "failed" and bug.error.startswith(
        "unexpected error (RuntimeError): selftest asked to crash"
    )
    assert "Traceback" in (tmp_path / "b" / "gui-job.log").read_text()  # the traceback is logged, not shown
    long = runner.submit_process("s", "selftest", {"steps": 300, "delay": 0.05}, run_dir=tmp_path / "c")
    while long.progress is None:
        time.sleep(0.05)
    runner.stop(long.id)
    runner.wait(long.id, timeout=30)
    assert long.state == "stopped" and long.progress < 1
    assert not (tmp_path / "c" / RunLock.NAME).exists()
    with pytest.raises(InputError, match="unknown task"):
        runner.submit_process("s", "os.system", {}, run_dir=tmp_path / "d")
    runner.shutdown()


def test_lock_below_a_file_is_a_message(tmp_path):
    (tmp_path / "f.tif").write_text("x")
    with pytest.raises(InputError, match="f.tif is a file"):
        RunLock(tmp_path / "f.tif" / "run").acquire()
    with pytest.raises(InputError, match="is a file"):
        RunLock(tmp_path / "f.tif").acquire()


def test_job_stopped_while_queued_is_stopped_not_failed():
    import threading

    runner = JobRunner(threads=1)
    gate = threading.Event()
    first = runner.submit("t", lambda job: gate.wait(10) and {})
    ran = []
    queued = runner.submit("t", lambda job: ran.append(1) or {}, stoppable=True)
    runner.stop(queued.id)
    gate.set()
    runner.wait(first.id, timeout=10)
    runner.wait(queued.id, timeout=10)
    assert queued.state == "stopped" and queued.error is None and not ran

    def refuses_after_stop(job):
        job._stop.set()
        raise InputError("stopped before the first frame was analysed")

    j = runner.wait(runner.submit("t", refuses_after_stop, stoppable=True).id, timeout=10)
    assert j.state == "stopped"
    runner.shutdown()
