"""Worker processes that never outlive the molddl process that started them.

A ``molddl predict`` or ``molddl tune`` killed with SIGKILL cannot shut its pool down; its
workers would live on, orphaned, holding memory (a featurization worker: ~345 MB) or running
trials nobody waits for. :func:`die_with_parent`, called first thing in a worker, prevents it.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import sys
import threading
import time

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """End this process as soon as its parent ends, however the parent ends.

    On Linux the kernel sends SIGKILL when the parent ends (``PR_SET_PDEATHSIG``; strictly,
    when the parent *thread* that forked this process ends, so start pools from the main
    thread). Everywhere, a daemon thread also waits on the parent (its ``multiprocessing``
    sentinel, else a poll of ``os.getppid()`` every half second) and exits the process.
    """
    ppid = os.getppid()
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, 9, 0, 0, 0)  # SIGKILL
        except (OSError, AttributeError):  # no libc to call: the thread below still watches
            pass
    parent = multiprocessing.parent_process()
    if os.getppid() != ppid or (parent is not None and not parent.is_alive()):
        os._exit(1)  # the parent ended before the lines above

    def watch() -> None:
        if parent is not None:
            parent.join()
        else:
            while os.getppid() == ppid:
                time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="molddl-parent-watch", daemon=True).start()
