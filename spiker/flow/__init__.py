"""Flow specs and the stages that run them on an output folder."""

from spiker.flow.spec import FlowSpec, load_flow_spec, parse_flow_spec

__all__ = ["FlowSpec", "load_flow_spec", "parse_flow_spec"]
