"""Training throughput: spiker's Trainer vs. a plain snnTorch tutorial training loop.

Both sides train the same network on the same data and batch size for the same epochs, each
epoch followed by a test pass. The reference is written the way the snnTorch tutorials write
it (step loop, ``snn.Leaky`` per step, ``SF.ce_rate_loss``, Adam).

* digits 64-128-10 LIF, 25 steps: the tutorial loop as written, with flush-to-zero, and the Trainer.
* the issue's 40-128-10 net over 73 steps (MNIST-1D, 40 inputs, rate coded): the Trainer and
  the tutorial loop at the same thread count (:data:`spiker.threads.TRAIN_THREADS`, the
  Trainer's fixed count), once on the machine as it is and once beside a busy process (a
  2-thread torch matmul loop): the thread policy holds the ratio. The tutorial loop at torch's
  default thread count (every core) beside the busy process shows what oversubscription costs.

On a shared machine one timing says little, so every row runs its sides ``--repeats`` times,
interleaved (A B, B A, A B, ...: a change of load lands on both), after one warm-up of each,
and prints the median and the spread (min-max) of the seconds and of the per-repeat ratio, wall
and CPU (this process's CPU seconds: what the other processes cannot inflate much), and the
load: the cores the other processes kept busy during the row (from /proc/stat) and the load
average. Run it niced on a shared machine: ``nice -n 5``.

    .venv/bin/python bench/train_throughput.py [--epochs 3] [--p2-epochs 1] [--repeats 5] [--no-digits]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import snntorch as snn
import torch
from snntorch import functional as SF
from timing import interleaved, measured_load, ratios, spread
from torch import nn
from torch.utils.data import DataLoader, Subset

import spiker
from spiker import threads
from spiker.flow import load_flow_spec


class TutorialNet(nn.Module):
    def __init__(self, beta: float, sizes: tuple[int, int, int] = (64, 128, 10)) -> None:
        super().__init__()
        self.fc1 = nn.Linear(sizes[0], sizes[1], bias=False)
        self.lif1 = snn.Leaky(beta=beta)
        self.fc2 = nn.Linear(sizes[1], sizes[2], bias=False)
        self.lif2 = snn.Leaky(beta=beta, reset_mechanism="none")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mem1 = self.lif1.init_leaky()
        mem2 = self.lif2.init_leaky()
        spk2_rec = []
        for step in range(x.shape[0]):
            cur1 = self.fc1(x[step])
            spk1, mem1 = self.lif1(cur1, mem1)
            cur2 = self.fc2(spk1)
            spk2, mem2 = self.lif2(cur2, mem2)
            spk2_rec.append(spk2)
        return torch.stack(spk2_rec)


def tutorial_training(train_loader, test_loader, epochs: int, lr: float, seed: int,
                      sizes: tuple[int, int, int] = (64, 128, 10)) -> tuple[float, float]:
    torch.manual_seed(seed)
    net = TutorialNet(beta=0.9375, sizes=sizes)
    loss_fn = SF.ce_rate_loss()
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    started = time.perf_counter()
    for _ in range(epochs):
        net.train()
        for data, targets in train_loader:
            spk_rec = net(data)
            loss = loss_fn(spk_rec, targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        net.eval()
        correct = total = 0
        with torch.no_grad():
            for data, targets in test_loader:
                correct += int((net(data).sum(0).argmax(1) == targets).sum())
                total += len(targets)
    return time.perf_counter() - started, correct / total


BUSY = "import torch\ntorch.set_num_threads(2)\na = torch.randn(768, 768)\nwhile True:\n    a @ a\n"


@contextmanager
def busy_process() -> Iterator[None]:
    """A second process keeping two cores busy (a 2-thread torch matmul loop) for the block."""
    busy = subprocess.Popen([sys.executable, "-c", BUSY], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(2)  # torch imported, the loop running
        yield
    finally:
        busy.kill()
        busy.wait()


def p2_net_dict() -> dict:
    layer = {"neuron_model": "lif", "beta": 0.9375, "threshold": 1.0}
    return {"n_cycles": 73, "n_inputs": 40, "layer_0": {**layer, "n_neurons": 128, "reset_mechanism": "subtract"},
            "layer_1": {**layer, "n_neurons": 10, "reset_mechanism": "none"}}


def trainer_run(net: dict, train_loader, test_loader, epochs: int) -> Callable[[], float]:
    """A run of the Trainer on a fresh ``net`` (seed 0); returns its final test accuracy."""
    def run() -> float:
        model = spiker.NetBuilder(net).build(seed=0)
        history = spiker.Trainer(model, epochs=epochs, lr=2e-3, progress=False).train(train_loader, test_loader)
        return history.final_test_accuracy
    return run


def tutorial_run(train_loader, test_loader, epochs: int, sizes: tuple[int, int, int], n_threads: int,
                 flush: bool = True) -> Callable[[], float]:
    """A run of the tutorial loop at ``n_threads`` torch threads (flush-to-zero unless ``flush=False``)."""
    def run() -> float:
        previous = torch.get_num_threads()
        torch.set_num_threads(n_threads)
        torch.set_flush_denormal(flush)
        try:
            return tutorial_training(train_loader, test_loader, epochs, 2e-3, 0, sizes=sizes)[1]
        finally:
            torch.set_flush_denormal(False)
            torch.set_num_threads(previous)
    return run


def few(loader: DataLoader, n: int) -> DataLoader:
    """The first ``n`` samples of a loader's dataset, unshuffled, same batch size and collation."""
    return DataLoader(Subset(loader.dataset, range(n)), batch_size=loader.batch_size, collate_fn=loader.collate_fn)


def p2_rows(epochs: int, repeats: int) -> None:
    train_loader, test_loader = spiker.data.load("mnist1d", n_cycles=73, batch_size=64, seed=0)
    n = len(train_loader.dataset) * epochs
    same = threads.TRAIN_THREADS
    sides = {"trainer": trainer_run(p2_net_dict(), train_loader, test_loader, epochs),
             "tutorial": tutorial_run(train_loader, test_loader, epochs, (40, 128, 10), same)}
    print(f"\n40-128-10, 73 steps (MNIST-1D, {n} training samples, {len(test_loader.dataset)} test), {repeats} "
          f"interleaved repeats after a warm-up (the oversubscribed row: 1 run); tutorial loop at {same} thread(s) = "
          "the Trainer's fixed count")
    print(f"{'':36}{'Trainer s':>22}{'tutorial s':>22}{'ratio wall':>24}{'ratio CPU':>22}  load")

    def row(label: str) -> tuple[float, float]:
        with measured_load() as load:
            runs = interleaved(sides, repeats)
        wall, cpu = ratios(runs["tutorial"], runs["trainer"])
        print(f"{label:36}{spread(runs['trainer'].wall):>22}{spread(runs['tutorial'].wall):>22}"
              f"{spread(wall, 'x'):>24}{spread(cpu, 'x'):>22}  {load}")
        return statistics.median(wall), statistics.median(cpu)

    ratio, ratio_cpu = row("machine as it is")
    with busy_process():
        ratio_b, ratio_b_cpu = row("beside a busy 2-thread process")
        # a tenth of the data: oversubscribed threads are slow enough to dominate the bench otherwise
        part = len(train_loader.dataset) // 10
        small_train, small_test = few(train_loader, part), few(test_loader, part // 4)
        over = {"trainer": trainer_run(p2_net_dict(), small_train, small_test, epochs),
                "tutorial": tutorial_run(small_train, small_test, epochs, (40, 128, 10), threads.cores())}
        with measured_load() as load:
            runs = interleaved(over, 1, warm_up=False)  # warm from the rows above
        print(f"{f'  1/10 of it, tutorial at {threads.cores()} threads':36}{spread(runs['trainer'].wall):>22}"
              f"{spread(runs['tutorial'].wall):>22}{spread(ratios(runs['tutorial'], runs['trainer'])[0], 'x'):>24}"
              f"{'(oversubscribed)':>22}  {load}")
    print(f"median ratio Trainer / tutorial at the same thread count: {ratio:.2f}x wall ({ratio_cpu:.2f}x CPU), "
          f"beside a busy process {ratio_b:.2f}x wall ({ratio_b_cpu:.2f}x CPU) (target >= 1.0)")


def digits_rows(epochs: int, repeats: int) -> None:
    """The digits 64-128-10 rows: the tutorial loop (as written and with flush-to-zero) vs the Trainer."""
    spec = load_flow_spec("examples/digits.yaml")
    train_loader, test_loader = spiker.data.load("digits", n_cycles=25, batch_size=64, seed=0)
    n_train = len(train_loader.dataset) * epochs
    sizes = (64, 128, 10)
    accuracy: dict[str, float] = {}

    def keep(name: str, run: Callable[[], float]) -> Callable[[], None]:
        def kept() -> None:
            accuracy[name] = run()
        return kept

    sides = {"tutorial": keep("tutorial", tutorial_run(train_loader, test_loader, epochs, sizes, 1, flush=False)),
             "tutorial_ftz": keep("tutorial_ftz", tutorial_run(train_loader, test_loader, epochs, sizes, 1)),
             "trainer": keep("trainer", trainer_run(spec.net, train_loader, test_loader, epochs))}
    with measured_load() as load:
        runs = interleaved(sides, repeats)
    print(f"digits 64-128-10, 25 steps, {epochs} epochs, 1 thread, {repeats} interleaved repeats; {load}")
    print(f"{'':32}{'samples/s':>22}{'test acc':>10}")
    labels = {"tutorial": "snnTorch tutorial loop", "tutorial_ftz": "snnTorch tutorial loop + FTZ",
              "trainer": "spiker Trainer"}
    for name, label in labels.items():
        rates = [n_train / wall for wall in runs[name].wall]
        print(f"{label:32}{spread(rates):>22}{accuracy[name]:>10.3f}")
    wall = ratios(runs["tutorial"], runs["trainer"])[0]
    wall_ftz, cpu_ftz = ratios(runs["tutorial_ftz"], runs["trainer"])
    print(f"ratio spiker / tutorial: {spread(wall, 'x')} wall (target >= 1.0); vs tutorial with flush-denormal: "
          f"{spread(wall_ftz, 'x')} wall, {spread(cpu_ftz, 'x')} CPU")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3, help="epochs of the digits rows")
    parser.add_argument("--p2-epochs", type=int, default=1, help="epochs of the 40-128-10 rows (0: skip them)")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved timed runs of each side per row")
    parser.add_argument("--no-digits", action="store_true", help="only the 40-128-10 rows")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if not args.no_digits:
        digits_rows(args.epochs, args.repeats)
    if args.p2_epochs > 0:
        p2_rows(args.p2_epochs, args.repeats)


if __name__ == "__main__":
    main()
