"""Face preparation in a helper process, beside rendering in this one.

Why a process and not a thread: the warp renderer's ``prepare`` (landmarks, triangulation,
bases) and its ``render`` are both numpy code that holds the GIL in many short calls. In two
threads of one process they take turns (every release lets the other thread in for up to the
interpreter's 5 ms switch interval), so on 2 cores they ran no faster than one thread; measured,
a busy Python thread cut ``prepare`` from 36 to 5 calls/s. In a second process they run side by
side.

Protocol on two pipes, length-prefixed pickles. Parent to child: ``("renderer", key, (name,
options))`` once per renderer configuration, then ``("prepare" | "screen", task, key, candidate)``; an
empty read (closed pipe) ends the child. Child to parent: ``("built", key)`` once a renderer is
built and warmed up, then per task ``("done", task, prepared or None)``, ``("rejected", task,
reason, message)`` (screening found the photo unusable: the parent raises ``FaceRejected``) or
``("failed", task, message)``.

Only two tasks are sent ahead; the rest wait here and can be taken back (:meth:`steal`) so
the parent prepares an identity itself instead of waiting, e.g. while the child is still
starting or building its renderer. A task that fails in the child, or that is open when the child dies, raises
:class:`HelperUnavailable` and the caller prepares it itself: ``prepare`` is a pure function of
the photo and the renderer options, so the data are the same whichever process made them, and
a real error is raised by the caller's own ``prepare`` with its own traceback.
"""

from __future__ import annotations

import atexit
import logging
import os
import pickle
import struct
import subprocess
import sys
import threading
from collections import deque
from concurrent.futures import Future
from pathlib import Path
from typing import Any

log = logging.getLogger("miex_gen.prepare_process")

IN_FLIGHT = 2  # tasks sent ahead, so the child never idles between two of them
PIPE_BYTES = 1 << 20  # a prepared face pickles to ~150 kB: the child's write never waits on the parent
_HEADER = struct.Struct("<Q")


class HelperUnavailable(RuntimeError):
    """The helper could not prepare this identity (it failed there, or the process is gone)."""


def send(fd: int, message: Any) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    view = memoryview(_HEADER.pack(len(data)) + data)
    while view:
        view = view[os.write(fd, view):]


def receive(fd: int) -> Any | None:
    """The next message, or None when the other end closed the pipe."""
    header = _read_exactly(fd, _HEADER.size)
    if header is None:
        return None
    body = _read_exactly(fd, _HEADER.unpack(header)[0])
    return None if body is None else pickle.loads(body)


def _read_exactly(fd: int, size: int) -> bytes | None:
    buffer = bytearray(size)
    view, got = memoryview(buffer), 0
    while got < size:
        n = os.readv(fd, [view[got:]])
        if n == 0:
            return None
        got += n
    return bytes(buffer)


def _widen(fd: int) -> None:
    """Best effort (Linux): a pipe buffer that holds a whole prepared face."""
    try:
        import fcntl

        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), PIPE_BYTES)
    except (ImportError, OSError):
        pass


class PrepareHelper:
    """The parent's end: a child process that prepares identities, fed a few tasks ahead."""

    def __init__(self) -> None:
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()
        for fd in (self._to_child, from_child_w):
            _widen(fd)
        package_root = str(Path(__file__).resolve().parents[1])  # importable even if only via sys.path here
        python_path = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)
        env = {**os.environ, "PYTHONPATH": python_path,
               "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        self._process = subprocess.Popen(
            [sys.executable, "-m", "miex_gen.prepare_process", str(to_child_r), str(from_child_w)],
            pass_fds=(to_child_r, from_child_w), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, env=env,
        )
        os.close(to_child_r)
        os.close(from_child_w)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # a renderer was built, or the child died
        self._alive = True
        self._waiting: deque[tuple[int, str, tuple[str, dict[str, Any]], tuple[str, Any], Future]] = deque()
        self._sent: dict[int, Future] = {}
        self._requested: set[str] = set()  # renderer configurations sent to the child
        self._built: set[str] = set()  # ... and built there
        self._next_task = 0
        self._reader = threading.Thread(target=self._read_loop, name="miex-prepare-reader", daemon=True)
        self._reader.start()

    @property
    def alive(self) -> bool:
        return self._alive

    @property
    def pid(self) -> int:
        return self._process.pid

    def built(self, key: str) -> bool:
        """Whether the child has built (and warmed up) the renderer named ``key``."""
        return key in self._built

    def request(self, key: str, renderer: tuple[str, dict[str, Any]]) -> None:
        """Have the child build ``renderer`` (named by ``key``) now, ahead of its first task."""
        with self._lock:
            self._request(key, renderer)

    def warm_up(self, key: str, renderer: tuple[str, dict[str, Any]], timeout: float = 120.0) -> bool:
        """:meth:`request`, then wait until the child has built it (for code that times runs)."""
        with self._changed:
            self._request(key, renderer)
            return self._changed.wait_for(lambda: key in self._built or not self._alive, timeout) and self._alive

    def _request(self, key: str, renderer: tuple[str, dict[str, Any]]) -> None:
        if key in self._requested or not self._alive:
            return
        try:
            send(self._to_child, ("renderer", key, renderer))
        except OSError:  # the child is gone; the reader hands everything back
            self._alive = False
            return
        self._requested.add(key)

    def submit(self, key: str, renderer: tuple[str, dict[str, Any]], candidate: Any, kind: str = "prepare") -> Future:
        """Queue ``candidate`` for ``prepare`` (its result: a ``Prepared``) or ``screen`` (None, or
        ``FaceRejected``) with ``get_renderer(name, **options)``, named by ``key``."""
        if kind not in ("prepare", "screen"):
            raise ValueError(f"unknown task kind {kind!r}")
        future: Future = Future()
        with self._lock:
            if not self._alive:
                future.set_exception(HelperUnavailable("the prepare helper has exited"))
                return future
            self._waiting.append((self._next_task, key, renderer, (kind, candidate), future))
            self._next_task += 1
            self._dispatch()
        return future

    def steal(self, future: Future) -> bool:
        """Take back a task not yet sent to the child (its future is cancelled); True if the
        caller should prepare it."""
        with self._lock:
            for entry in self._waiting:
                if entry[4] is future:
                    self._waiting.remove(entry)
                    future.cancel()
                    return True
        return False

    def _dispatch(self) -> None:
        """Send waiting tasks while fewer than IN_FLIGHT are out (lock held). A task waits until
        the child has built and warmed up its renderer, so meanwhile the parent can take it back."""
        try:
            for _, key, renderer, _, _ in self._waiting:
                self._request(key, renderer)
            while self._alive and self._waiting and len(self._sent) < IN_FLIGHT:
                task, key, _, (kind, candidate), future = self._waiting[0]
                if key not in self._built:
                    break
                self._waiting.popleft()
                send(self._to_child, (kind, task, key, candidate))
                self._sent[task] = future
        except OSError:  # the child is gone; the reader hands everything back
            self._alive = False

    def _read_loop(self) -> None:
        try:
            while True:
                message = receive(self._from_child)
                if message is None:
                    break
                with self._lock:
                    if message[0] == "built":
                        self._built.add(message[1])
                        self._changed.notify_all()
                    else:
                        future = self._sent.pop(message[1])
                        if message[0] == "done":
                            future.set_result(message[2])
                        elif message[0] == "rejected":
                            from .faces import FaceRejected

                            future.set_exception(FaceRejected(message[3], reason=message[2]))
                        else:
                            log.debug("prepare helper: %s", message[2])
                            future.set_exception(HelperUnavailable(message[2]))
                    self._dispatch()
        except Exception as exc:  # noqa: BLE001 - whatever breaks the exchange, callers must not hang
            log.debug("prepare helper: reading failed: %r", exc)
        self._give_up()

    def _give_up(self) -> None:
        """The child is gone: every open task goes back to its caller."""
        with self._lock:
            self._alive = False
            self._changed.notify_all()
            open_futures = list(self._sent.values()) + [entry[4] for entry in self._waiting]
            self._sent.clear()
            self._waiting.clear()
        for future in open_futures:
            future.set_exception(HelperUnavailable("the prepare helper has exited"))
        code = self._process.poll()
        if code not in (None, 0):
            log.warning("the face-preparing helper process exited with code %s; preparing in this process", code)

    def close(self) -> None:
        """End the child (it exits when its pipe closes) and wait for it."""
        with self._lock:
            self._alive = False
            try:
                os.close(self._to_child)
            except OSError:
                pass
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._reader.join(timeout=10)
        try:
            os.close(self._from_child)
        except OSError:
            pass


_HELPER: dict[int, PrepareHelper] = {}  # per process: started once, reused by every generate call


def shared_helper() -> PrepareHelper | None:
    """This process's helper (started on first use, restarted if it died), or None where a
    second process cannot run beside this one (a single usable core, or not POSIX): generation
    then prepares in threads."""
    if usable_cores() < 2 or os.name != "posix":  # pipes handed over with pass_fds: POSIX only
        return None
    helper = _HELPER.get(os.getpid())
    if helper is None or not helper.alive:
        if helper is not None:
            helper.close()
        try:
            helper = _HELPER[os.getpid()] = PrepareHelper()
        except OSError as exc:  # no process could be started: prepare in this process
            log.warning("could not start the face-preparing helper process (%s); preparing in this process", exc)
            _HELPER.pop(os.getpid(), None)
            return None
        if len(_HELPER) == 1:
            atexit.register(close_shared_helper)
    return helper


def close_shared_helper() -> None:
    helper = _HELPER.pop(os.getpid(), None)
    if helper is not None:
        helper.close()


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


# ---------------------------------------------------------------------------------------------
def child_main(read_fd: int, write_fd: int) -> None:
    """The helper process: build renderers on request, prepare faces until the pipe closes."""
    import signal

    import cv2

    from .faces import FaceRejected
    from .generate import single_threaded_blas
    from .identities import load_candidate
    from .render import get_renderer

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it closes our pipe
    cv2.setNumThreads(1)  # one core beside the parent's rendering
    renderers: dict[str, Any] = {}
    with single_threaded_blas():
        while True:
            message = receive(read_fd)
            if message is None:
                return
            if message[0] == "renderer":
                _, key, (name, options) = message
                try:
                    renderers[key] = get_renderer(name, **options)
                    renderers[key].warm_up()
                except Exception as exc:  # noqa: BLE001 - its tasks fail and the parent prepares them
                    renderers[key] = exc
                send(write_fd, ("built", key))
                continue
            kind, task, key, candidate = message
            try:
                renderer = renderers[key]
                if isinstance(renderer, Exception):
                    raise renderer
                if kind == "screen":
                    renderer.screen(load_candidate(candidate))
                    reply = ("done", task, None)
                else:
                    reply = ("done", task, renderer.prepare(load_candidate(candidate)))
            except FaceRejected as exc:
                reply = ("rejected", task, exc.reason, exc.message) if kind == "screen" else \
                    ("failed", task, f"{type(exc).__name__}: {exc}")
            except Exception as exc:  # noqa: BLE001 - reported; the parent does the task itself
                reply = ("failed", task, f"{type(exc).__name__}: {exc}")
            send(write_fd, reply)


if __name__ == "__main__":
    child_main(int(sys.argv[1]), int(sys.argv[2]))
