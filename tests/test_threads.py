"""The CPU budget (spiker.threads): one policy for cores per job, applied to torch, OpenMP and BLAS."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from spiker import threads


def test_cores_and_budget_follow_the_environment(monkeypatch) -> None:
    monkeypatch.setenv(threads.CORES_ENV, "6")
    monkeypatch.delenv(threads.THREADS_ENV, raising=False)
    assert threads.cores() == 6 and threads.budget() == 6
    monkeypatch.setenv(threads.THREADS_ENV, "4")
    assert threads.budget() == 4
    monkeypatch.setenv(threads.THREADS_ENV, "64")  # never more than the cores
    assert threads.budget() == 6
    monkeypatch.setenv(threads.THREADS_ENV, "zero")  # ignored with a warning
    assert threads.budget() == 6
    monkeypatch.delenv(threads.CORES_ENV)
    assert threads.cores() == len(os.sched_getaffinity(0))


def test_share_and_workers_never_exceed_the_budget(monkeypatch) -> None:
    assert [threads.share(j, 8) for j in (1, 2, 3, 8, 20)] == [8, 4, 2, 1, 1]
    monkeypatch.setenv(threads.CORES_ENV, "8")
    monkeypatch.setenv(threads.THREADS_ENV, "3")
    assert threads.workers(16) == 3 and threads.workers(2) == 2 and threads.workers(0) == 1
    assert threads.workers(16, limit_to=5) == 5
    assert threads.train_threads() == threads.TRAIN_THREADS == 1


def test_job_counter_splits_the_cores_between_running_jobs() -> None:
    jobs = threads.JobCounter(total=8)
    a, b = object(), object()
    jobs.hold(a)
    assert jobs.start(a, 1) == 8  # alone: every core
    jobs.hold(b)  # a call that holds a slot counts before its jobs start
    assert jobs.start(b, 2) == 2  # 1 (a) + 2 new jobs share 8 cores
    assert jobs.running == 3
    jobs.finish(b)
    assert jobs.running == 2
    jobs.release(a)
    jobs.release(b)
    assert jobs.running == 0


def test_limit_restores_torch_threads() -> None:
    before = torch.get_num_threads()
    with threads.limit(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_apply_sizes_torch_openmp_and_blas_and_child_processes() -> None:
    code = ("import os, torch, numpy, threadpoolctl; from spiker import threads; threads.apply(1); "
            "print(torch.get_num_threads(), os.environ['OMP_NUM_THREADS'], os.environ['OPENBLAS_NUM_THREADS'], "
            "threads.budget(), max(p['num_threads'] for p in threadpoolctl.threadpool_info()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, threads.CORES_ENV: "4"}).stdout.split()
    assert out == ["1", "1", "1", "1", "1"]


def report_budget(workdir: str) -> dict:
    """A job function (run in a job process): the budget it was given."""
    return {"budget": threads.budget(), "cores": threads.cores(), "torch": torch.get_num_threads(),
            "omp": os.environ.get("OMP_NUM_THREADS")}


class _Context:
    def add_callback(self, callback) -> bool:
        return True

    def is_active(self) -> bool:
        return True


def test_service_jobs_get_cores_divided_by_running_jobs(tmp_path) -> None:
    from spiker.store import LocalStore
    from spiker_services.common.runtime import Call, Runtime, drain

    runtime = Runtime(LocalStore(tmp_path / "store"), max_jobs=2, work_root=tmp_path / "work")
    runtime.jobs = threads.JobCounter(total=4)
    call, other = Call(_Context(), "test", runtime), Call(_Context(), "test", runtime)
    try:
        drain(call.wait_turn())
        (alone,) = drain(call.run_jobs(report_budget, [{}]))
        assert alone["budget"] == min(4, alone["cores"]) and alone["omp"] == str(alone["budget"])
        drain(other.wait_turn())  # a second call holds a slot: 1 + 3 jobs share 4 cores
        shared = drain(call.run_jobs(report_budget, [{}, {}, {}]))
        assert [(r["budget"], r["torch"], r["omp"]) for r in shared] == [(1, 1, "1")] * 3
        assert runtime.jobs.running == 2
    finally:
        call.close()
        other.close()
    assert runtime.jobs.running == 0


@pytest.mark.slow
def test_training_runs_at_the_fixed_thread_count() -> None:
    import spiker

    seen = []
    train, test = spiker.data.load("digits", n_cycles=5, batch_size=256, seed=0)
    spec = {"n_cycles": 5, "n_inputs": 64, "layer_0": {"neuron_model": "lif", "n_neurons": 10, "beta": 0.5}}
    snn = spiker.NetBuilder(spec).build(seed=0)
    before = torch.get_num_threads()
    spiker.Trainer(snn, epochs=1, progress=False,
                   on_epoch=lambda h: seen.append(torch.get_num_threads())).train(train, test)
    assert seen == [threads.TRAIN_THREADS] and torch.get_num_threads() == before
