"""The one parser of flow-spec text (YAML or JSON), used by ``spiker train`` and the gateway alike.

YAML 1.1 (PyYAML's default) reads ``1e-05`` (what ``json.dumps`` writes for 0.00001) as a
string; this loader resolves numbers as YAML 1.2 and JSON do. It also refuses what can turn a
small text into a large or ambiguous document: anchors/aliases ("billion laughs"), duplicate
mapping keys (which would silently keep the last value) and nesting deeper than
``MAX_DEPTH`` levels.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from spiker.errors import SpecError

MAX_DEPTH = 32

#: YAML 1.2 core-schema / JSON floats: ``1e-05``, ``-2.5E+3``, ``.5``, ``1.``, plus .inf/.nan
_FLOAT_RE = re.compile(r"""^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?
                        |[-+]?\.(?:inf|Inf|INF)
                        |\.(?:nan|NaN|NAN))$""", re.X)


class SpecLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 floats, and no aliases, duplicate keys or deep nesting."""

    def compose_node(self, parent: Any, index: Any) -> Any:  # noqa: D102
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise SpecError("spec", f"YAML aliases (*name) are not accepted (line {event.start_mark.line + 1})")
        self._depth = getattr(self, "_depth", 0) + 1
        try:
            if self._depth > MAX_DEPTH:
                raise SpecError("spec", f"nested more than {MAX_DEPTH} levels deep")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:  # noqa: D102
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # an unhashable key: SafeLoader reports it below
                continue
            if duplicate:
                raise SpecError(str(key), f"duplicate key {key!r} (line {key_node.start_mark.line + 1})")
        return super().construct_mapping(node, deep)


# the float resolver of YAML 1.2: replace SafeLoader's YAML 1.1 one (which needs a '.')
SpecLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:float"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
SpecLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_RE, list("-+0123456789."))


def parse_spec_text(text: str, source: str = "spec") -> Any:
    """The document of a YAML/JSON spec text; raises :class:`SpecError` (key ``spec``) if unreadable."""
    try:
        return yaml.load(text, Loader=SpecLoader)  # noqa: S506 - a SafeLoader subclass
    except SpecError:
        raise
    except yaml.YAMLError as exc:
        raise SpecError("spec", f"{source} is not valid YAML/JSON: {exc}") from None
    except (ValueError, TypeError, RecursionError) as exc:
        raise SpecError("spec", f"{source} is not valid YAML/JSON: {exc}") from None
