"""The lean neuron datapath's order of operations (neuron_unit.vhd) equals the golden model.

The RTL keeps one wide register per neuron (two for syn) holding ``leak(v) - r*thr`` between
steps, adds the step's weights into it one event at a time, then saturates, tests the
threshold and leaks/resets through the same adder (docs/hardware.md, "Neuron datapath").
This property test runs exactly that sequence on integers and compares every step's spike,
membrane and synaptic current with :func:`spiker.golden.layer_dynamics`; it also checks that
no intermediate value leaves the register width ``register_bits`` derived from the neuron's
weights (the register never wraps), which is at most the golden ``accumulator_bits``.
"""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from spiker.golden import IntegerArithmetic, accumulator_bits, layer_dynamics
from spiker.golden.fixed_point import FixedPointConfig
from spiker.hdl.generator import register_bits
from spiker.net.spec import LayerSpec


def _leak(v: int, k: int | None) -> int:
    return v if k is None else v - (v >> k)


class UnitModel:
    """Integer model of one neuron_unit (the RTL's registers and phases, nothing else)."""

    def __init__(self, model: str, reset: str, nb: int, acc: int, thr: int, k: int | None, ka: int | None):
        self.model, self.reset, self.thr, self.k, self.ka = model, reset, thr, k, ka
        self.hi, self.lo = (1 << (nb - 1)) - 1, -(1 << (nb - 1))
        self.lim = 1 << (acc - 1)
        self.x = self.y = 0
        self.spk = self.fsat = self.fhi = self.ysat = self.yhi = 0
        self.fresh = True
        self.values: list[int] = []  # every register value, for the width check

    def _sat(self, v: int) -> tuple[int, int]:
        """(saturated value, 1 high / -1 low / 0 none)"""
        return (self.hi, 1) if v > self.hi else (self.lo, -1) if v < self.lo else (v, 0)

    def _set(self, name: str, value: int) -> None:
        self.values.append(value)
        setattr(self, name, value)

    def add(self, w: int) -> None:
        reg = "y" if self.model == "syn" else "x"
        self._set(reg, getattr(self, reg) + w)

    def update(self, clear: bool) -> tuple[int, int, int]:
        k, ka = (None if self.model == "if" else self.k), self.ka
        one = 0 if k is None else 1
        c = 0
        if self.model == "syn":  # U1
            c, _ = self._sat(self.y)
            r = self.spk and not self.fresh
            self._set("x", 0 if (self.reset == "zero" and r) else self.x + c)
            _, yd = self._sat(self.y)
            self.ysat, self.yhi = int(yd != 0), int(yd > 0)
            self._set("y", 0 if yd else (self.y if ka is None else self.y + ~(self.y >> ka)))
        # VA: v = sat(x), spike = v > thr, then x - (x >> k) - 1, or 0
        v, d = self._sat(self.x)
        s = int(v > self.thr)
        znow = self.reset == "zero" and self.model != "syn"
        self.spk, self.fsat, self.fhi = s, int(d != 0), int(d > 0)
        if d or (znow and s):
            self._set("x", 0)
        elif k is not None:
            self._set("x", self.x + ~(self.x >> k))
        # syn U2 (in parallel with VA): y's constant
        if self.model == "syn":
            a_one = 0 if ka is None else 1
            kay = _leak(self.hi, ka) if self.yhi else _leak(self.lo, ka)
            self._set("y", self.y + (kay if self.ysat else a_one))
        # VB: a constant through the same adder
        sub = self.reset == "subtract"
        hi_spikes = self.hi > self.thr
        up = self.spk if hi_spikes else self.fhi
        if self.fsat and up:
            const = 0 if (znow and hi_spikes) else _leak(self.hi, k) - (self.thr if sub and hi_spikes else 0)
        elif self.fsat:
            const = _leak(self.lo, k)
        elif self.spk:
            const = 0 if znow else one - (self.thr if sub else 0)
        else:
            const = one
        self._set("x", self.x + const)
        if clear:
            self._set("x", 0)
            self._set("y", 0)
        self.fresh = clear
        return s, v, c


@st.composite
def layers(draw):
    nb = draw(st.integers(3, 12))
    wb = draw(st.integers(2, nb))
    n_in = draw(st.integers(1, 40))
    model = draw(st.sampled_from(["lif", "syn", "if"]))
    reset = draw(st.sampled_from(["subtract", "zero", "none"]))
    k = None if model == "if" else draw(st.integers(0, 6))
    ka = draw(st.integers(0, 6)) if model == "syn" else None
    thr = draw(st.integers(1, (1 << (nb - 1)) - 1))
    steps = draw(st.integers(1, 14))
    lo_w, hi_w = -(1 << (wb - 1)), (1 << (wb - 1)) - 1
    bias = draw(st.sampled_from([lo_w, 0, hi_w]))  # drive towards either saturation
    weights = [draw(st.integers(lo_w, hi_w)) if draw(st.booleans()) else bias for _ in range(n_in)]
    # each step: the weights of a random subset of the inputs, in a random order
    events = [draw(st.permutations(weights))[:draw(st.integers(0, n_in))] for _ in range(steps)]
    return nb, wb, n_in, model, reset, k, ka, thr, weights, events


@settings(max_examples=400, deadline=None)
@given(layers())
def test_reordered_update_equals_golden(case):
    nb, wb, n_in, model, reset, k, ka, thr, weights, events = case
    acc = register_bits(np.array([weights]), nb, thr, model)
    assert acc <= accumulator_bits(n_in, wb, nb)
    spec = LayerSpec(index=0, neuron_model=model, n_inputs=n_in, n_neurons=1, threshold=1.0,
                     reset_mechanism=reset, beta_shift=k, alpha_shift=ka)
    currents = torch.tensor([[[sum(ev)]] for ev in events], dtype=torch.int64)
    spk, mem, syn = layer_dynamics(spec, currents, thr, IntegerArithmetic(FixedPointConfig(wb, nb, 0)))
    unit = UnitModel(model, reset, nb, acc, thr, k, ka)
    for sample in range(2):  # a second sample after `clear` must start from zero again
        for t, ev in enumerate(events):
            for w in ev:
                unit.add(w)
            s, v, c = unit.update(clear=t == len(events) - 1)
            assert (s, v) == (int(spk[t, 0, 0]), int(mem[t, 0, 0])), (sample, t)
            if syn is not None:
                assert c == int(syn[t, 0, 0]), (sample, t)
    assert all(-unit.lim <= v < unit.lim for v in unit.values), (acc, min(unit.values), max(unit.values))

