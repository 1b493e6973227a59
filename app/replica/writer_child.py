"""The writer child of ``nodeauthz run``: it lives only as long as the webhook process that started it.

A writer without its webhook is worse than none: it keeps the lease, so no
replica with a webhook takes over, and nothing restarts it (the kubelet
restarts the container only when its main process, the webhook, exits). So when
the parent dies, however it dies (SIGKILL and the OOM killer leave it no say),
the child stops as if it had been sent SIGTERM: it stops its informers and
releases the lease, and a peer takes over at once.

Two mechanisms, because neither is enough alone:

- Linux's ``prctl(PR_SET_PDEATHSIG, SIGTERM)``, set first thing: the kernel
  signals the child the moment the parent exits. It fires when the *thread*
  that forked the child exits; ``run_replica`` starts the child from its main
  thread, which lives as long as the process.
- a watchdog thread that notices the child was re-parented (``os.getppid()``
  changed): portable, and covers a parent that died before ``prctl`` ran
  (the child spends about a second importing before it gets there).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import sys
import threading

from app.ha.elected_writer import WriterOptions, writer_main

LOG = logging.getLogger("nodeauthz.replica")
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
WATCH_INTERVAL_S = 0.5


def writer_child_main(options: WriterOptions, parent_pid: int) -> None:
    """Entry point of the spawned writer process; ``parent_pid`` is the webhook's pid."""
    _signal_on_parent_death(signal.SIGTERM)
    if os.getppid() != parent_pid:
        sys.exit(1)  # the parent died before prctl took effect: nothing to release yet
    threading.Thread(target=_watch_parent, args=(parent_pid,), name="parent-watch", daemon=True).start()
    writer_main(options)  # its SIGTERM handler stops the informers and releases the lease


def _signal_on_parent_death(signum: int) -> None:
    if not sys.platform.startswith("linux"):
        return  # the watchdog covers other systems
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0) != 0:
        LOG.warning("prctl(PR_SET_PDEATHSIG) failed (errno %d); relying on the watchdog", ctypes.get_errno())


def _watch_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        threading.Event().wait(WATCH_INTERVAL_S)
    LOG.error("the webhook process %d is gone; stopping the writer", parent_pid)
    os.kill(os.getpid(), signal.SIGTERM)  # the same path as a SIGTERM from the parent or the kubelet
