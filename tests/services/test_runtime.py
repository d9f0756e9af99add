"""Call.run_jobs: parallel job processes forked from the preloaded job server."""

import time

import pytest

from spiker.store import LocalStore
from spiker_api.errors import RemoteError
from spiker_services.common.runtime import Call, Runtime, drain
from tests.services import runtime_jobs


class _Context:
    """The two grpc.ServicerContext methods a Call uses, for a call that stays active."""

    def add_callback(self, callback) -> bool:
        return True

    def is_active(self) -> bool:
        return True


@pytest.fixture
def call(tmp_path):
    c = Call(_Context(), "test", Runtime(LocalStore(tmp_path / "store"), work_root=tmp_path / "work"))
    yield c
    c.close()


def _run(gen):
    events = []
    while True:
        try:
            events.append(next(gen))
        except StopIteration as stop:
            return stop.value, events


def test_results_in_order_with_one_event_per_finished_job(call):
    results, events = _run(call.run_jobs(runtime_jobs.echo, [{"value": v} for v in (3, 1, 2)], "part"))
    assert results == [6, 2, 4]
    assert sorted(e.current for e in events if e.phase == "part") == [1, 2, 3]
    assert drain(call.run_job(runtime_jobs.echo, value=5)) == 10
    assert not call.runtime.active_pids


def test_an_error_in_a_job_comes_back_as_remote_error(call):
    with pytest.raises(RemoteError, match="no good value"):
        _run(call.run_jobs(runtime_jobs.fail, [{}, {}]))
    assert not call.runtime.active_pids


@pytest.mark.timeout(120)
@pytest.mark.parametrize("hold_pipe", [False, True])
def test_a_job_that_dies_is_reported_even_if_a_grandchild_holds_its_pipe(call, hold_pipe):
    with pytest.raises(RuntimeError, match="died"):
        _run(call.run_jobs(runtime_jobs.die, [{"hold_pipe": hold_pipe}]))
    assert not call.runtime.active_pids
    if hold_pipe:  # the grandchild was killed with its group, though the job had exited
        pid = int((call.workdir / "grandchild.pid").read_text())
        deadline = time.monotonic() + 10
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(pid)


def _alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie awaiting its reaper counts as dead)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
