"""Parsing and deriving on a second core: a child process produces page rows, the writer writes them.

The writer's own work on the bulk path is little more than the database's; what
is left is parsing JSON and deriving edges, which a second process can do while
the writer writes. What crosses the pipe is ``PageRows`` (facts included) with plain tuples
(measured on 37,000 objects: 0.27 s to pickle and 0.19 s to unpickle, against
0.73 s / 1.01 s with NamedTuple keys; whole objects cost as much as deriving
them). The pipe's buffer is the only queue, so the child runs at most one page
ahead and memory stays bounded. A fresh interpreter (``python -m
app.sync.row_process``), not ``fork``: the writer may run threads, which ``fork``
would copy mid-lock; and not multiprocessing's ``spawn`` either, which imports
the parent's main module (the whole CLI: 85 MB before any page, against 44 MB
for what a producer needs).

The child never outlives its parent: a parent killed outright (SIGKILL, no
clean-up) is noticed by a watchdog thread in the child (its parent process id
changes), and a write to the closed pipe fails; either way the child exits.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import subprocess
import sys
import threading
from collections.abc import Callable, Generator, Iterator
from multiprocessing.connection import Connection
from typing import Any

from app.graph.bulk_rows import PageRows

Producer = Callable[..., Generator[Any, None, Any]]  # PageRows, or plain picklable values
ORPHAN_CHECK = 0.25  # seconds between the child's looks at its parent process id
POLL = 0.2  # seconds between the parent's looks at its stop event while waiting for a page


class ChildFailed(RuntimeError):
    """The child process died or raised something it could not send back."""


def _wire(page: Any) -> bytes:
    if not isinstance(page, PageRows):
        return pickle.dumps(("item", page), protocol=5)
    vertices = [(k[0], k[1], k[2]) for k in page.vertices]
    facts = [((k[0], k[1], k[2]), f) for k, f in page.facts]
    return pickle.dumps(("page", (page.objects, vertices, page.edges, page.anchors, facts)), protocol=5)


def _exit_with(parent: int) -> None:
    while True:
        threading.Event().wait(ORPHAN_CHECK)
        if os.getppid() != parent:
            os._exit(1)  # orphaned: the parent died without ending us


def _child(conn: Connection, producer: Producer, args: tuple[Any, ...], parent: int) -> None:
    threading.Thread(target=_exit_with, args=(parent,), name="orphan-check", daemon=True).start()
    if os.getppid() != parent:
        os._exit(1)
    try:
        pages = producer(*args)
        while True:
            try:
                page = next(pages)
            except StopIteration as stop:
                conn.send_bytes(pickle.dumps(("done", stop.value), protocol=5))
                return
            conn.send_bytes(_wire(page))
    except BrokenPipeError:
        os._exit(1)  # the pipe is gone: so is the parent
    except Exception as exc:  # noqa: BLE001 - handed to the parent, which raises it
        try:
            try:
                message = pickle.dumps(("error", exc), protocol=5)
            except Exception:  # noqa: BLE001 - an exception that does not pickle: its text then
                message = pickle.dumps(("error", ChildFailed(f"{type(exc).__name__}: {exc}")), protocol=5)
            conn.send_bytes(message)
        except BrokenPipeError:
            os._exit(1)
    finally:
        conn.close()


class ChildRows:
    """``for page in ChildRows(producer, *args)``: the producer's pages, produced in a child process.

    ``result`` holds the producer's return value once iteration ends; an exception raised
    in the child is raised here. Leaving early (an exception in the loop) ends the child.
    ``stop``: once set, iteration ends (``stopped`` true) without waiting for the next page.
    """

    def __init__(self, producer: Producer, *args: Any, stop: threading.Event | None = None) -> None:
        self.producer = producer
        self.args = args
        self.stop = stop
        self.stopped = False
        self.result: Any = None
        self.pid: int | None = None
        self._started: tuple[subprocess.Popen[bytes], Connection] | None = None  # (child, receiving end)

    def start(self) -> None:
        """Start the child now (it starts up while the caller does something else); else on iteration."""
        if self._started is not None:
            return
        receiver, sender = multiprocessing.Pipe(duplex=False)
        try:
            fd = sender.fileno()
            proc = subprocess.Popen(
                [sys.executable, "-m", "app.sync.row_process", str(fd), str(os.getpid())],
                stdin=subprocess.PIPE,
                pass_fds=(fd,),
            )
        except BaseException:
            receiver.close()
            raise
        finally:
            sender.close()
        self.pid = proc.pid
        self._started = (proc, receiver)
        assert proc.stdin is not None
        try:  # the job: small (a function's name and its arguments)
            proc.stdin.write(pickle.dumps((self.producer, self.args), protocol=5))
            proc.stdin.close()
        except BrokenPipeError:
            pass  # the child died at once: iteration reports it

    def close(self) -> None:
        """End the child (if still running) and release the pipe; iteration does it when it ends."""
        if self._started is None:
            return
        proc, receiver = self._started
        self._started = None
        receiver.close()
        if proc.poll() is None:
            proc.kill()
        proc.wait()

    def __iter__(self) -> Iterator[Any]:
        self.start()
        assert self._started is not None
        proc, receiver = self._started
        try:
            while True:
                if self.stop is not None:
                    while not receiver.poll(POLL):
                        if self.stop.is_set():
                            self.stopped = True
                            return
                try:
                    tag, body = pickle.loads(receiver.recv_bytes())
                except EOFError:
                    raise ChildFailed(
                        f"the parsing process ended without an answer (exit {_exit_code(proc)})"
                    ) from None
                if tag == "page":
                    objects, vertices, edges, anchors, facts = body
                    yield PageRows(objects, vertices, edges, anchors, facts)
                elif tag == "item":
                    yield body
                elif tag == "done":
                    self.result = body
                    return
                else:
                    raise body
        finally:
            self.close()


def _exit_code(proc: subprocess.Popen[bytes]) -> int | None:
    try:
        return proc.wait(timeout=2.0)
    except subprocess.TimeoutExpired:
        return None


def _main(argv: list[str]) -> None:
    """The child: ``python -m app.sync.row_process FD PARENT_PID``, the job (pickled) on stdin."""
    from app.sync import row_process  # this module by its name, so what it sends unpickles by name

    fd, parent = int(argv[0]), int(argv[1])
    producer, args = pickle.loads(sys.stdin.buffer.read())
    row_process._child(Connection(fd, readable=False), producer, args, parent)


if __name__ == "__main__":
    _main(sys.argv[1:])
