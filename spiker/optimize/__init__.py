"""Bit-width search scored by the golden integer model."""

from spiker.optimize.optimizer import Optimizer, parse_optim_config, score_config, shard
from spiker.optimize.sweep import SweepResult, SweepRow

__all__ = ["Optimizer", "SweepResult", "SweepRow", "parse_optim_config", "score_config", "shard"]
