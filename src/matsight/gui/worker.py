"""Worker process for long GUI jobs: ``python -m matsight.gui.worker`` with ``{"task", "kwargs"}`` on stdin.

Events go to the original stdout as ``@@matsight-gui {json}`` lines (progress, message, result, error);
anything else the libraries print, and all logs and tracebacks, go to stderr, which the server points at the
run folder's ``gui-job.log``. SIGTERM stops the task (a fuse/restore run resumes from its last checkpoint).
"""

import importlib
import json
import logging
import os
import signal
import sys
import traceback

from .messages import EVENT_PREFIX, USER_ERRORS, jsonable, user_message

# Only names listed here can be started from the browser; each is ``fn(emit, **kwargs) -> dict``.
TASKS = {
    "selftest": "matsight.gui.tasks:selftest",
    "fuse.train": "matsight.gui.tasks:fuse_train",
    "fuse.generate": "matsight.gui.tasks:fuse_generate",
    "fuse.evaluate": "matsight.gui.tasks:fuse_evaluate",
    "restore.register": "matsight.gui.tasks:restore_register",
    "restore.train": "matsight.gui.tasks:restore_train",
    "restore.apply": "matsight.gui.tasks:restore_apply",
    "restore.evaluate": "matsight.gui.tasks:restore_evaluate",
}


class Stopped(KeyboardInterrupt):  # noqa: N818
    """Raised in the worker when the server asks it to stop.

    A ``KeyboardInterrupt`` so that library ``except Exception`` cannot swallow it and trainings save their
    state on a stop exactly as they do on Ctrl-C.
    """


def main():
    """Run one task; exit 0 on success, 2 on a user error, 3 when stopped, 1 on a bug."""
    events = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)  # stray prints must not corrupt the event channel
    sys.stdout = sys.stderr
    # this process is an application entry point (like the CLI), so it may configure logging
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")

    def emit(**event):
        events.write(EVENT_PREFIX + json.dumps(jsonable(event)) + "\n")
        events.flush()

    def on_term(signum, frame):
        raise Stopped()

    signal.signal(signal.SIGTERM, on_term)
    try:
        spec = json.loads(sys.stdin.read())
        module, _, name = TASKS[spec["task"]].partition(":")
        fn = getattr(importlib.import_module(module), name)
        result = fn(emit, **spec.get("kwargs", {}))
        emit(result=result or {})
        return 0
    except Stopped:
        emit(message="stopped; start again with resume to continue from the last checkpoint")
        return 3
    except USER_ERRORS as exc:
        emit(error=user_message(exc))
        return 2
    except Exception as exc:  # noqa: BLE001 - one line for the page, traceback for the log
        traceback.print_exc()
        emit(error=user_message(exc) + " (details in gui-job.log in the run folder)")
        return 1
    finally:
        events.flush()


if __name__ == "__main__":
    sys.exit(main())
