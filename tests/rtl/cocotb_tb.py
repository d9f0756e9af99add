"""cocotb testbench scaffolding of the RTL tests (imported by the cocotb_*.py test modules).

:func:`vectors` reads the stimuli and golden expectations the pytest side wrote (the JSON file
named by ``SPIKER_VECTORS``). :class:`ClockedTB` binds a DUT's clock and active-high reset once,
with a seeded random source whose seed it logs (and every failure message of the pytest side
names), so a failing run replays; :class:`StreamTB` adds the valid/ready driving of a block with
one input and one output stream: input tokens offered with random gaps (held until accepted, the
AXI4-Stream rule), the output back-pressured at random, every transfer recorded.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge, Timer


def vectors() -> dict:
    """The test's vectors (JSON written by the pytest side, file named by ``SPIKER_VECTORS``)."""
    with open(os.environ["SPIKER_VECTORS"]) as f:
        return json.load(f)


def as_int(sig) -> int:
    return int(sig.value)


def unsigned_slices(value: int, width: int, count: int) -> list[int]:
    """``count`` unsigned fields of ``width`` bits, field 0 in the low bits."""
    return [(value >> (j * width)) & ((1 << width) - 1) for j in range(count)]


def signed_slices(value: int, width: int, count: int) -> list[int]:
    """``count`` two's-complement fields of ``width`` bits, field 0 in the low bits."""
    return [v - (1 << width) if v >> (width - 1) else v for v in unsigned_slices(value, width, count)]


class ClockedTB:
    """A DUT with ``clk`` and an active-high synchronous ``rst``; ``seed`` seeds :attr:`rng` (logged)."""

    def __init__(self, dut, seed: int = 1, period_ns: int = 10) -> None:
        self.dut = dut
        self.seed = int(seed)
        self.rng = random.Random(self.seed)
        self.period_ns = period_ns
        dut._log.info("random seed %d", self.seed)

    def start_clock(self) -> None:
        cocotb.start_soon(Clock(self.dut.clk, self.period_ns, unit="ns").start())

    async def reset(self, idle: dict[str, int] | None = None, cycles: int = 2) -> None:
        """Drive ``idle`` (signal -> value) with ``rst`` high, start the clock, release ``rst`` after
        ``cycles`` rising edges."""
        self.dut.rst.value = 1
        for name, value in (idle or {}).items():
            getattr(self.dut, name).value = value
        self.start_clock()
        for _ in range(cycles):
            await RisingEdge(self.dut.clk)
        self.dut.rst.value = 0


@dataclass(frozen=True)
class Channel:
    """One valid/ready stream of a DUT: the handshake signals' names and its payload signals'."""

    valid: str
    ready: str
    data: tuple[str, ...]

    @classmethod
    def axis(cls, prefix: str, data: Sequence[str] = ("tdata", "tlast")) -> Channel:
        """An AXI4-Stream channel ``<prefix>_tvalid``, ``<prefix>_tready``, ``<prefix>_<data>...``."""
        return cls(f"{prefix}_tvalid", f"{prefix}_tready", tuple(f"{prefix}_{d}" for d in data))


@dataclass
class Run:
    """What :meth:`StreamTB.stream` saw: output payloads, cycle of the first input transfer."""

    outputs: list[tuple[int, ...]] = field(default_factory=list)
    cycles: int = 0
    first_accept: int | None = None


class StreamTB(ClockedTB):
    """A block with one input stream ``inp`` and one output stream ``out`` (see :class:`Channel`)."""

    def __init__(self, dut, inp: Channel, out: Channel, seed: int = 1) -> None:
        super().__init__(dut, seed)
        self.inp, self.out = inp, out

    async def reset(self, idle: dict[str, int] | None = None, cycles: int = 2) -> None:
        """Reset with the input idle (valid and payload 0) and the output ready."""
        quiet = {self.inp.valid: 0, self.out.ready: 1, **{name: 0 for name in self.inp.data}}
        await super().reset({**quiet, **(idle or {})}, cycles)

    def _sig(self, name: str):
        return getattr(self.dut, name)

    async def stream(self, tokens: Sequence[Sequence[int]], n_outputs: int, gap: float = 0.0, stall: float = 0.0,
                     after_edge: Callable[[int], None] | None = None, max_cycles: int = 200_000) -> Run:
        """Offer ``tokens`` (one payload tuple each, in ``inp.data`` order) until ``n_outputs`` outputs
        have been taken. A token is offered with probability ``1 - gap`` per cycle and then held
        until accepted; the output is ready with probability ``1 - stall``. ``after_edge(cycle)``
        runs in the read-only phase after each rising edge (to sample debug ports)."""
        dut, run, k, offering = self.dut, Run(), 0, False
        while len(run.outputs) < n_outputs:
            await Timer(1, "ns")
            offering = offering or (k < len(tokens) and not (gap and self.rng.random() < gap))
            ready = not (stall and self.rng.random() < stall)
            self._sig(self.inp.valid).value = int(offering)
            if k < len(tokens):
                for name, value in zip(self.inp.data, tokens[k]):
                    self._sig(name).value = value
            self._sig(self.out.ready).value = int(ready)
            await ReadOnly()
            fire_in = offering and as_int(self._sig(self.inp.ready)) == 1
            if as_int(self._sig(self.out.valid)) and ready:
                run.outputs.append(tuple(as_int(self._sig(name)) for name in self.out.data))
            await RisingEdge(dut.clk)
            run.cycles += 1
            if fire_in:
                if run.first_accept is None:
                    run.first_accept = run.cycles
                k += 1
                offering = False
            if after_edge is not None:
                await ReadOnly()
                after_edge(run.cycles)
            assert run.cycles < max_cycles, f"no end after {max_cycles} cycles (seed {self.seed})"
        return run


class LayerTB(StreamTB):
    """``layer_wrap`` (snn_layer or snn_layer_tm): spikes in, spikes out, ``dbg_upd``/``dbg_v``/``dbg_s``."""

    def __init__(self, dut, seed: int = 1) -> None:
        super().__init__(dut, Channel("in_valid", "in_ready", ("in_spikes", "in_last")),
                         Channel("out_valid", "out_ready", ("out_spikes", "out_last")), seed)

    async def run(self, vec: dict, gap: float, stall: float, max_cycles: int) -> tuple[Run, list, int | None]:
        """Stream the vectors' tokens; returns the run, each update's ``(spikes, membranes, synapses)``
        and the cycle of the last update."""
        nb, n_out = vec["nb"], vec["n_out"]
        updates, last = [], []

        def sample(cycle: int) -> None:
            if as_int(self.dut.dbg_upd):
                updates.append((as_int(self.dut.out_spikes), signed_slices(as_int(self.dut.dbg_v), nb, n_out),
                                signed_slices(as_int(self.dut.dbg_s), nb, n_out)))
                last[:] = [cycle]

        await self.reset()
        tokens = vec["tokens"]
        run = await self.stream(tokens, len(tokens), gap if vec["stall"] else 0.0, stall if vec["stall"] else 0.0,
                                after_edge=sample, max_cycles=max_cycles)
        return run, updates, last[0] if last else None

    @staticmethod
    def check(vec: dict, run: Run, updates: list) -> None:
        """Every update and every output token equals the golden model's."""
        expected = vec["expected"]
        assert len(updates) == len(expected), (len(updates), len(expected))
        for n, (got, want) in enumerate(zip(updates, expected)):
            assert got[0] == want[0], f"token {n}: spikes {got[0]:b} != {want[0]:b}"
            assert got[1] == want[1], f"token {n}: membranes {got[1]} != {want[1]}"
            if vec["syn"]:
                assert got[2] == want[2], f"token {n}: synapses {got[2]} != {want[2]}"
        assert [o[0] for o in run.outputs] == [w[0] for w in expected]
        assert [o[1] for o in run.outputs] == [t[1] for t in vec["tokens"]]
