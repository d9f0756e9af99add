"""Per-server runtime (store, concurrency gate, work folders) and per-call plumbing.

A streaming RPC method is written as a generator over :class:`Call` that yields
``ProgressEvent`` messages and finally one result message; :func:`streaming` wraps it into a
gRPC handler that wraps each item in the stage's response message, maps errors to status codes
(:mod:`spiker_api.errors`), and always removes the call's work folder.

Cancellation and deadlines: the call registers ``context.add_callback``; when the RPC ends early
every child process of the call is killed (its whole process group) at once, and the generator
stops at its next poll with :class:`~spiker_api.errors.Cancelled`.
"""

from __future__ import annotations

import functools
import logging
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import grpc

from spiker.store import ArtifactRef, ArtifactStore, LocalStore, S3Store, StoreConfigError
from spiker.threads import JobCounter
from spiker_api import convert
from spiker_api.errors import Cancelled, ErrorInfo, RemoteError, abort, describe_error
from spiker_api.v1 import common_pb2
from spiker_services.common.jobserver import job_context

log = logging.getLogger(__name__)

POLL_S = 0.1
#: prefix of the one stderr line a sweep worker writes on failure (an ErrorInfo as JSON)
WORKER_ERROR_PREFIX = "spiker-error: "
_REPO_ROOT = Path(__file__).resolve().parents[2]
#: the kwargs key that carries a job process's thread budget to :func:`_child_entry`
_THREADS_KEY = "__spiker_threads__"

def store_env(store: ArtifactStore) -> dict[str, str]:
    """Environment variables that make ``open_store()`` in a worker process open ``store``.

    A :class:`LocalStore` is passed by directory. An :class:`S3Store` is passed through this
    process's ``SPIKER_S3_*`` variables, which must describe the same endpoint and bucket.
    """
    if isinstance(store, LocalStore):
        return {"SPIKER_STORE_DIR": str(store.root), "SPIKER_S3_ENDPOINT": ""}
    if isinstance(store, S3Store):
        env = {k: v for k, v in os.environ.items() if k.startswith("SPIKER_S3_")}
        endpoint = env.get("SPIKER_S3_ENDPOINT", "")
        if store.endpoint not in endpoint or env.get("SPIKER_S3_BUCKET", "spiker") != store.bucket:
            raise StoreConfigError("SPIKER_S3_ENDPOINT", f"workers cannot open {store!r}: set "
                                   "SPIKER_S3_* to it or pass worker_env")
        return env
    raise StoreConfigError("store", f"cannot pass {type(store).__name__} to worker processes; "
                           "pass worker_env")


class Runtime:
    """What every call of a server shares: the store, a concurrency gate and a work root.

    ``max_jobs`` calls run at once; further calls wait in a queue (reporting ``queued``) until a
    slot is free or they are cancelled. ``work_root`` holds one temporary folder per call.
    ``worker_env`` is how worker processes open the store (default: :func:`store_env`).
    ``jobs`` counts the jobs running at once: each job process gets ``cores // jobs`` threads
    (:mod:`spiker.threads`), so the calls and their processes never hold more threads than cores.
    """

    def __init__(self, store: ArtifactStore, max_jobs: int = 1, work_root: str | Path | None = None,
                 worker_env: Mapping[str, str] | None = None, job_memory: int | None = None) -> None:
        from spiker_services.common.child import job_memory_limit

        #: address-space cap of each job process in bytes (0: none; default from $SPIKER_JOB_MEMORY)
        self.job_memory = job_memory_limit() if job_memory is None else job_memory
        if max_jobs < 1:
            raise ValueError(f"max_jobs must be >= 1, got {max_jobs}")
        self.store = store
        self.max_jobs = max_jobs
        self._gate = threading.BoundedSemaphore(max_jobs)
        self._waiting = 0
        self._lock = threading.Lock()
        self.work_root = Path(work_root) if work_root else Path(tempfile.gettempdir()) / "spiker-services"
        self.work_root.mkdir(parents=True, exist_ok=True)
        self._worker_env = dict(worker_env) if worker_env is not None else None
        self.active_pids: set[int] = set()
        #: the CPU budget: jobs running at once over this runtime's calls
        self.jobs = JobCounter()

    @property
    def worker_env(self) -> dict[str, str]:
        """Environment for sweep worker processes: store settings and ``PYTHONPATH``."""
        env = dict(self._worker_env) if self._worker_env is not None else store_env(self.store)
        path = os.environ.get("PYTHONPATH", "")
        env["PYTHONPATH"] = str(_REPO_ROOT) + (os.pathsep + path if path else "")
        return env

    @property
    def queued(self) -> int:
        return self._waiting


class Call:
    """One RPC in progress: cancellation flag, work folder, concurrency slot, child processes."""

    def __init__(self, context: grpc.ServicerContext, stage: str, runtime: Runtime) -> None:
        self.context = context
        self.stage = stage
        self.runtime = runtime
        self.store = runtime.store
        self.started = time.monotonic()
        self.cancelled = threading.Event()
        self._pids: set[int] = set()
        self._pid_lock = threading.Lock()
        self._slot = False
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{stage}-", dir=runtime.work_root))
        if not context.add_callback(self._on_done):
            self.cancelled.set()

    # -- lifecycle ------------------------------------------------------------------------
    def _on_done(self) -> None:
        """gRPC calls this when the RPC ends; if it ended early, stop the work now."""
        if self.context.is_active():  # normal completion callbacks may fire while still active
            return
        self.cancelled.set()
        with self._pid_lock:
            pids = list(self._pids)
        for pid in pids:
            _kill_group(pid)

    def check(self) -> None:
        """Raise :class:`Cancelled` if the client cancelled or the deadline passed."""
        if self.cancelled.is_set() or not self.context.is_active():
            self.cancelled.set()
            raise Cancelled(f"{self.stage}: call cancelled or deadline exceeded")

    def close(self) -> None:
        """Release the slot and remove the work folder."""
        with self._pid_lock:
            pids = list(self._pids)
        for pid in pids:
            _kill_group(pid)
        self.runtime.jobs.release(self)
        if self._slot:
            self._slot = False
            self.runtime._gate.release()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _track(self, pid: int) -> None:
        with self._pid_lock:
            self._pids.add(pid)
        self.runtime.active_pids.add(pid)
        if self.cancelled.is_set():
            _kill_group(pid)

    def _untrack(self, pid: int) -> None:
        with self._pid_lock:
            self._pids.discard(pid)
        self.runtime.active_pids.discard(pid)

    # -- progress -------------------------------------------------------------------------
    def progress(self, phase: str, message: str = "", current: int = 0, total: int = 0,
                 metrics: Mapping[str, float] | None = None) -> common_pb2.ProgressEvent:
        """A progress event of this call."""
        return common_pb2.ProgressEvent(stage=self.stage, phase=phase, message=message, current=current,
                                        total=total, metrics=dict(metrics or {}),
                                        elapsed_seconds=time.monotonic() - self.started)

    def wait_turn(self) -> Iterator[common_pb2.ProgressEvent]:
        """Wait for a concurrency slot, reporting ``queued`` once if the call has to wait."""
        rt = self.runtime
        if rt._gate.acquire(blocking=False):
            self._slot = True
            rt.jobs.hold(self)
            return
        with rt._lock:
            rt._waiting += 1
            position = rt._waiting
        try:
            yield self.progress("queued", f"waiting for a free slot ({rt.max_jobs} running, "
                                          f"position {position} in queue)", position, 0)
            while not rt._gate.acquire(timeout=POLL_S):
                self.check()
            self._slot = True
            rt.jobs.hold(self)
        finally:
            with rt._lock:
                rt._waiting -= 1
        self.check()

    # -- store ----------------------------------------------------------------------------
    def fetch(self, ref: ArtifactRef, name: str, field: str) -> Path:
        """Download ``ref`` into the work folder as ``name``; errors name ``field``."""
        self.check()
        try:
            return self.store.get_file(ref, self.workdir / name)
        except Exception as exc:
            exc.spiker_field = field  # type: ignore[attr-defined]
            raise

    def require(self, ref: ArtifactRef, field: str) -> None:
        """Fail fast with NOT_FOUND (naming ``field``) if ``ref`` is not in the store."""
        try:
            if not self.store.exists(ref.key):
                from spiker.store import ArtifactNotFound

                raise ArtifactNotFound(ref.key, ref.bucket)
        except Exception as exc:
            exc.spiker_field = field  # type: ignore[attr-defined]
            raise

    def put(self, path: str | Path, kind: str, content_type: str = "application/octet-stream",
            ) -> common_pb2.ArtifactRef:
        """Upload a file of the work folder as a content-addressed artifact."""
        self.check()
        return convert.ref_to_proto(self.store.put_file(path, kind=kind, content_type=content_type))

    # -- work -----------------------------------------------------------------------------
    def _job_kwargs(self, kwargs: Mapping[str, Any], threads: int) -> dict[str, Any]:
        return {"workdir": str(self.workdir), **kwargs, _THREADS_KEY: threads}

    def run_job(self, fn: Callable[..., Any], **kwargs: Any) -> Iterator[common_pb2.ProgressEvent]:
        """Run ``fn(workdir=..., **kwargs)`` in a child process; yields its progress, returns its result.

        Use as ``result = yield from call.run_job(fn, ...)``. Cancellation kills the child's
        process group; an error in the child is re-raised here as :class:`RemoteError`.
        """
        results = yield from self.run_jobs(fn, [kwargs])
        return results[0]

    def run_jobs(self, fn: Callable[..., Any], kwargs_list: Sequence[Mapping[str, Any]],
                 phase: str | None = None) -> Iterator[common_pb2.ProgressEvent]:
        """Run ``fn(workdir=..., **kwargs)`` for each kwargs in parallel child processes; returns the results.

        The children fork from the preloaded job server (:func:`job_context`), so they start with
        torch and spiker imported. Each child counts as one job of the CPU budget and runs with
        ``cores // jobs running`` threads (torch, OpenMP, BLAS; ``spiker.threads.budget()`` in it).
        Yields the children's progress and, if ``phase`` is given, one ``phase`` event per finished child.
        The first failure kills the others and is re-raised.
        """
        self.check()
        ctx = job_context()
        target = f"{fn.__module__}:{fn.__qualname__}"
        total = len(kwargs_list)
        procs: list[Any] = []
        conns: dict[Any, int] = {}
        results: list[Any] = [None] * total
        done: set[int] = set()
        threads = self.runtime.jobs.start(self, total)
        try:
            for i, kwargs in enumerate(kwargs_list):
                recv, send = ctx.Pipe(duplex=False)
                proc = ctx.Process(target=_child_entry,
                                   args=(send, target, self._job_kwargs(kwargs, threads), str(self.workdir),
                                         self.runtime.job_memory),
                                   name=f"spiker-{self.stage}-{i}")
                proc.start()
                send.close()
                assert proc.pid is not None
                procs.append(proc)
                conns[recv] = i
                self._track(proc.pid)
                log.info("%s: job %s in process %d (%d thread(s))", self.stage, target, proc.pid, threads)
            while conns:
                self.check()
                ready = multiprocessing.connection.wait(list(conns), timeout=POLL_S)
                for conn in [c for c in conns if c not in ready and not procs[conns[c]].is_alive()]:
                    if not conn.poll(0):  # dead, and a grandchild may hold the pipe open: no EOF
                        del conns[conn]
                        conn.close()
                for conn in ready:
                    i = conns[conn]
                    try:
                        kind, payload = conn.recv()
                    except EOFError:
                        del conns[conn]
                        conn.close()
                        continue
                    if kind == "progress":
                        yield self.progress(**payload)
                    elif kind == "result":
                        results[i] = payload
                        done.add(i)
                        if phase is not None:
                            yield self.progress(phase, f"job {i} done ({len(done)}/{total})", len(done), total)
                    elif kind == "error":
                        raise RemoteError(ErrorInfo.from_dict(payload))
            for proc in procs:
                proc.join(10)
            self.check()
            for i, proc in enumerate(procs):
                if i not in done:
                    raise RuntimeError(f"{self.stage} job process {proc.pid} died (exit code {proc.exitcode})")
            return results
        finally:
            self.runtime.jobs.finish(self)
            for proc in procs:
                _kill_group(proc.pid)
                proc.join(5)
                self._untrack(proc.pid)
            for conn in conns:
                conn.close()


def _child_entry(conn: Any, target: str, kwargs: dict[str, Any], workdir: str, memory_limit: int = 0) -> None:
    from spiker.threads import apply

    apply(kwargs.pop(_THREADS_KEY, 1))  # before the job's first torch/BLAS work
    from spiker_services.common.child import child_main

    child_main(conn, target, kwargs, workdir, memory_limit)


def _kill_group(pid: int) -> None:
    """SIGKILL the process group led by ``pid`` (our own child), or the process if it has none.

    The group is killed even when its leader has already exited: leftover grandchildren
    (GHDL, forked helpers) must not outlive the call.
    """
    try:
        os.killpg(pid, signal.SIGKILL)
        return
    except (ProcessLookupError, PermissionError):
        pass
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def streaming(stage: str, response_cls: type, field_map: Mapping[str, str]) -> Callable:
    """Turn ``method(self, request, call)`` (a generator of ProgressEvents and one result) into a
    server-streaming gRPC handler; ``field_map`` maps library keys to request fields in errors."""

    def decorate(method: Callable[..., Iterator[Any]]) -> Callable:
        @functools.wraps(method)
        def handler(self: Any, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            call = Call(context, stage, self.runtime)
            try:
                for item in method(self, request, call):
                    if isinstance(item, common_pb2.ProgressEvent):
                        yield response_cls(progress=item)
                    else:
                        yield response_cls(result=item)
            except Cancelled:
                log.info("%s: cancelled after %.1fs; work stopped", stage, time.monotonic() - call.started)
            except Exception as exc:  # noqa: BLE001 - mapped to a status below
                if call.cancelled.is_set() or not context.is_active():
                    log.info("%s: cancelled (%s)", stage, type(exc).__name__)
                    return
                info = describe_error(exc).remapped(field_map)
                log.warning("%s failed: %s %s [%s]", stage, info.code, info.message, info.field)
                abort(context, info)
            finally:
                call.close()

        return handler

    return decorate


def unary(stage: str, field_map: Mapping[str, str]) -> Callable:
    """Like :func:`streaming` for a unary method ``method(self, request, call) -> response``."""

    def decorate(method: Callable[..., Any]) -> Callable:
        @functools.wraps(method)
        def handler(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
            call = Call(context, stage, self.runtime)
            try:
                return method(self, request, call)
            except Exception as exc:  # noqa: BLE001 - mapped to a status below
                info = describe_error(exc).remapped(field_map)
                log.warning("%s failed: %s %s [%s]", stage, info.code, info.message, info.field)
                abort(context, info)
            finally:
                call.close()

        return handler

    return decorate


def drain(gen: Iterator[Any]) -> Any:
    """Run a generator to its end, dropping what it yields; return its return value."""
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value


__all__ = ["Call", "Runtime", "drain", "store_env", "streaming", "unary"]
