"""The golden integer model: the only arithmetic of the quantized network."""

from spiker.golden.fixed_point import FixedPointConfig, accumulator_bits
from spiker.golden.model import (
    GoldenResult,
    IntegerArithmetic,
    LayerTrace,
    QuantizedLayer,
    QuantizedNet,
    layer_dynamics,
    quantize,
    run_float,
)

__all__ = ["FixedPointConfig", "GoldenResult", "IntegerArithmetic", "LayerTrace", "QuantizedLayer", "QuantizedNet",
           "accumulator_bits", "layer_dynamics", "quantize", "run_float"]
