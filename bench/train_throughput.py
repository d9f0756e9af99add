"""Training throughput: spiker's Trainer vs. a plain snnTorch tutorial training loop.

Same network (digits 64-128-10 LIF, 25 steps, no bias), same data and batch size, same
epochs, each followed by a test pass per epoch. The reference is written the way the
snnTorch tutorials write it (step loop, ``snn.Leaky`` per step, ``SF.ce_rate_loss``,
Adam). Prints samples/s of both and the ratio (target >= 1.0).
"""

from __future__ import annotations

import argparse
import time

import snntorch as snn
import torch
from snntorch import functional as SF
from torch import nn

import spiker
from spiker.flow import load_flow_spec


class TutorialNet(nn.Module):
    def __init__(self, beta: float) -> None:
        super().__init__()
        self.fc1 = nn.Linear(64, 128, bias=False)
        self.lif1 = snn.Leaky(beta=beta)
        self.fc2 = nn.Linear(128, 10, bias=False)
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


def tutorial_training(train_loader, test_loader, epochs: int, lr: float, seed: int) -> tuple[float, float]:
    torch.manual_seed(seed)
    net = TutorialNet(beta=0.9375)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    spec = load_flow_spec("examples/digits.yaml")
    train_loader, test_loader = spiker.data.load("digits", n_cycles=25, batch_size=64, seed=0)
    n_train = len(train_loader.dataset) * args.epochs

    torch.set_flush_denormal(False)  # the tutorial as written
    ref_s, ref_acc = tutorial_training(train_loader, test_loader, args.epochs, 2e-3, 0)
    torch.set_flush_denormal(True)
    ref_ftz_s, ref_ftz_acc = tutorial_training(train_loader, test_loader, args.epochs, 2e-3, 0)

    snn_model = spiker.NetBuilder(spec.net).build(seed=0)
    started = time.perf_counter()
    history = spiker.Trainer(snn_model, epochs=args.epochs, lr=2e-3, progress=False).train(
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
