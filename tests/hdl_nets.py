"""Small random networks for the HDL tests (helpers, not tests)."""

from __future__ import annotations

import numpy as np

from spiker.golden import QuantizedNet
from spiker.net.spec import parse_net_dict


def layer(model: str, n: int, reset: str = "subtract", beta: float | None = 0.875,
          alpha: float | None = 0.75, threshold: float = 1.0) -> dict:
    return {"neuron_model": model, "n_neurons": n, "alpha": alpha if model == "syn" else None,
            "learn_alpha": False, "beta": None if model == "if" else beta, "learn_beta": False,
            "threshold": threshold, "learn_threshold": False, "reset_mechanism": reset}


def random_net(seed: int, max_layers: int = 3, max_width: int = 10, n_cycles: int = 12) -> QuantizedNet:
    """A random feasible net: 1-3 layers, random model/reset/leaks/bit-widths, weights that saturate."""
    rng = np.random.default_rng(seed)
    nb = int(rng.integers(3, 13))
    wb = int(rng.integers(2, nb + 1))
    fp = int(rng.integers(0, nb))
    cfg = {"weights_bw": wb, "neurons_bw": nb, "fp_dec": fp}
    n_layers = int(rng.integers(1, max_layers + 1))
    sizes = [int(rng.integers(1, max_width + 1)) for _ in range(n_layers + 1)]
    net = {"n_cycles": n_cycles, "n_inputs": sizes[0]}
    thresholds = []
    for i in range(n_layers):
        model = str(rng.choice(["lif", "syn", "if"]))
        reset = str(rng.choice(["subtract", "zero", "none"]))
        thr_int = int(rng.integers(1, max(2, (1 << (nb - 1)) // 3)))
        thr = thr_int / (1 << fp)
        thresholds.append(thr)
        net[f"layer_{i}"] = layer(model, sizes[i + 1], reset, beta=1 - 2.0 ** -int(rng.integers(0, 6)),
                                  alpha=1 - 2.0 ** -int(rng.integers(0, 6)), threshold=thr)
    spec = parse_net_dict(net)
    scale = (1 << (wb - 1)) / (1 << fp)
    weights = [rng.normal(0.3 * scale, 0.7 * scale, (sizes[i + 1], sizes[i])) for i in range(n_layers)]
    return QuantizedNet.from_arrays(spec, weights, thresholds, cfg)


def random_spikes(seed: int, steps: int, batch: int, n: int, p: float | None = None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.1, 0.8) if p is None else p
    x = (rng.random((steps, batch, n)) < p).astype(np.uint8)
    x[min(2, steps - 1), 0] = 0  # a step without any spike
    return x


def layer_wrapper(entity: str, q: QuantizedNet, **generics: int | str) -> str:
    """VHDL of ``layer_wrap``: layer 0 of ``q`` as ``entity`` (snn_layer or snn_layer_tm, the same
    port list) with the net package's constants and the given extra generics (EVENTS_PER_CYCLE, ...)."""
    lay = q.layers[0]
    spec, n_in, n_out, nb = lay.spec, lay.n_inputs, lay.n_neurons, q.config.neurons_bw
    extra = "".join(f", {name} => {value}" for name, value in generics.items())
    return f"""library ieee; use ieee.std_logic_1164.all;
use work.spiker_pkg.all; use work.spiker_net_pkg.all;
entity layer_wrap is port (clk, rst, in_valid, in_last, out_ready : in std_logic;
  in_spikes : in std_logic_vector({n_in} - 1 downto 0);
  in_ready, out_valid, out_last, dbg_upd : out std_logic;
  out_spikes : out std_logic_vector({n_out} - 1 downto 0);
  dbg_v, dbg_s : out std_logic_vector({n_out * nb} - 1 downto 0)); end entity;
architecture rtl of layer_wrap is begin
  u : entity work.{entity} generic map (N_IN => {n_in}, N_OUT => {n_out}, WB => WEIGHTS_BW,
      NB => NEURONS_BW, ACC => L0_ACC, MODEL => MODEL_{spec.neuron_model.upper()},
      RESET => RESET_{spec.reset_mechanism.upper()},
      BETA_SHIFT => L0_BETA, ALPHA_SHIFT => L0_ALPHA, THRESHOLD => L0_THRESHOLD, WEIGHTS => L0_WEIGHTS,
      BANK_BITS => 16{extra})
    port map (clk, rst, in_valid, in_ready, in_spikes, in_last, out_valid, out_ready, out_spikes, out_last,
              dbg_upd, dbg_v, dbg_s);
end architecture;
"""
