"""Training throughput: spiker's Trainer vs. a plain snnTorch tutorial training loop.

Same network (digits 64-128-10 LIF, 25 steps, no bias), same data and batch size, same
epochs, each followed by a test pass per epoch. The reference is written the way the
snnTorch tutorials write it (step loop, ``snn.Leaky`` per step, ``SF.ce_rate_loss``,
Adam). Prints samples/s of both and the ratio (target >= 1.0).

A second part trains the issue's 40-128-10 net over 73 steps (MNIST-1D, 40 inputs, rate coded;
``--p2-epochs`` epochs) with the Trainer and with the tutorial loop at the same thread count
(:data:`spiker.threads.TRAIN_THREADS`, the Trainer's fixed count), once on the machine as it is
and once beside a busy process (a 2-thread torch matmul loop): the thread policy holds the ratio.
The tutorial loop at torch's default thread count (every core) beside the busy process shows
what oversubscription costs.

    .venv/bin/python bench/train_throughput.py [--epochs 3] [--p2-epochs 1] [--no-digits]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

import snntorch as snn
import torch
from snntorch import functional as SF
from torch import nn

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


def p2_net_dict() -> dict:
    layer = {"neuron_model": "lif", "beta": 0.9375, "threshold": 1.0}
    return {"n_cycles": 73, "n_inputs": 40, "layer_0": {**layer, "n_neurons": 128, "reset_mechanism": "subtract"},
            "layer_1": {**layer, "n_neurons": 10, "reset_mechanism": "none"}}


def p2_pair(train_loader, test_loader, epochs: int, tutorial_threads: int) -> tuple[float, float, float, float]:
    """Wall seconds of the Trainer and of the tutorial loop (at ``tutorial_threads``) on the 40-128-10
    net, then the CPU seconds of each (this process)."""
    snn_model = spiker.NetBuilder(p2_net_dict()).build(seed=0)
    started, cpu = time.perf_counter(), time.process_time()
    spiker.Trainer(snn_model, epochs=epochs, lr=2e-3, progress=False).train(train_loader, test_loader)
    ours, ours_cpu = time.perf_counter() - started, time.process_time() - cpu
    previous = torch.get_num_threads()
    torch.set_num_threads(tutorial_threads)
    torch.set_flush_denormal(True)
    try:
        cpu = time.process_time()
        ref, _ = tutorial_training(train_loader, test_loader, epochs, 2e-3, 0, sizes=(40, 128, 10))
        ref_cpu = time.process_time() - cpu
    finally:
        torch.set_num_threads(previous)
    return ours, ref, ours_cpu, ref_cpu


def p2_rows(epochs: int) -> None:
    train_loader, test_loader = spiker.data.load("mnist1d", n_cycles=73, batch_size=64, seed=0)
    n = len(train_loader.dataset) * epochs
    same = threads.TRAIN_THREADS
    print(f"\n40-128-10, 73 steps (MNIST-1D, {n} training samples); tutorial loop at {same} thread(s) = the "
          f"Trainer's fixed count")
    print(f"{'':44}{'Trainer s':>10}{'tutorial s':>11}{'ratio':>8}{'CPU s ours/tut':>16}{'CPU ratio':>10}")

    def row(label: str, r: tuple[float, float, float, float]) -> tuple[float, float]:
        ours, ref, ours_cpu, ref_cpu = r
        print(f"{label:44}{ours:>10.1f}{ref:>11.1f}{ref / ours:>7.2f}x{f'{ours_cpu:.1f}/{ref_cpu:.1f}':>16}"
              f"{ref_cpu / ours_cpu:>9.2f}x")
        return ref / ours, ref_cpu / ours_cpu

    # warm-up: the first training in a process pays one-off costs (kernel and allocator set-up: ~1.5 CPU s
    # here), which would land on whichever side runs first
    from torch.utils.data import DataLoader, Subset

    def few(loader: DataLoader, n: int = 128) -> DataLoader:
        return DataLoader(Subset(loader.dataset, range(n)), batch_size=64, collate_fn=loader.collate_fn)

    p2_pair(few(train_loader), few(test_loader), 1, same)
    ratio, ratio_cpu = row("machine as it is", p2_pair(train_loader, test_loader, epochs, same))
    busy = subprocess.Popen([sys.executable, "-c", BUSY], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(2)
        ours_b = p2_pair(train_loader, test_loader, epochs, same)
        ratio_b, ratio_b_cpu = row("beside a busy 2-thread process", ours_b)
        # a tenth of the data: oversubscribed threads are slow enough to dominate the bench otherwise
        part = len(train_loader.dataset) // 10
        ours_p, ref_all, _, ref_all_cpu = p2_pair(few(train_loader, part), few(test_loader, part // 4), epochs,
                                                 threads.cores())
        print(f"{f'  1/10 of it, tutorial at {threads.cores()} threads (torch default)':44}{ours_p:>10.1f}"
              f"{ref_all:>11.1f}{ours_p / ref_all:>7.2f}x{f'-/{ref_all_cpu:.1f}':>16}   (oversubscribed)")
    finally:
        busy.kill()
        busy.wait()
    print(f"ratio Trainer / tutorial at the same thread count: {ratio:.2f}x wall ({ratio_cpu:.2f}x CPU), beside a "
          f"busy process {ratio_b:.2f}x wall ({ratio_b_cpu:.2f}x CPU) (target >= 1.0)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--p2-epochs", type=int, default=1, help="epochs of the 40-128-10 rows (0: skip them)")
    parser.add_argument("--no-digits", action="store_true", help="only the 40-128-10 rows")
    args = parser.parse_args()
    if not args.no_digits:
        digits_rows(args.epochs)
    if args.p2_epochs > 0:
        p2_rows(args.p2_epochs)


def digits_rows(epochs: int) -> None:
    """The digits 64-128-10 rows: the tutorial loop (as written and with flush-to-zero) vs the Trainer."""
    spec = load_flow_spec("examples/digits.yaml")
    train_loader, test_loader = spiker.data.load("digits", n_cycles=25, batch_size=64, seed=0)
    n_train = len(train_loader.dataset) * epochs

    torch.set_flush_denormal(False)  # the tutorial as written
    ref_s, ref_acc = tutorial_training(train_loader, test_loader, epochs, 2e-3, 0)
    torch.set_flush_denormal(True)
    ref_ftz_s, ref_ftz_acc = tutorial_training(train_loader, test_loader, epochs, 2e-3, 0)

    snn_model = spiker.NetBuilder(spec.net).build(seed=0)
    started = time.perf_counter()
    history = spiker.Trainer(snn_model, epochs=epochs, lr=2e-3, progress=False).train(
        train_loader, test_loader)
    ours_s = time.perf_counter() - started

    print(f"{'':32}{'samples/s':>10}{'test acc':>10}")
    print(f"{'snnTorch tutorial loop':32}{n_train / ref_s:>10.0f}{ref_acc:>10.3f}")
    print(f"{'snnTorch tutorial loop + FTZ':32}{n_train / ref_ftz_s:>10.0f}{ref_ftz_acc:>10.3f}")
    print(f"{'spiker Trainer':32}{n_train / ours_s:>10.0f}{history.final_test_accuracy:>10.3f}")
    print(f"ratio spiker / tutorial: {ref_s / ours_s:.2f}x (target >= 1.0); "
          f"vs tutorial with flush-denormal: {ref_ftz_s / ours_s:.2f}x")


if __name__ == "__main__":
    main()
