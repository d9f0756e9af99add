"""The contract between the gateway and the stage services (package ``spiker.v1``, see proto/spiker/v1).

``v1``: the generated gRPC stubs (regenerate with ``python scripts/gen_protos.py``;
tests/services/test_protos.py fails when the committed modules are stale). Beside them, what
both sides of a call share: :mod:`~spiker_api.convert` (messages <-> library dicts),
:mod:`~spiker_api.errors` (exceptions <-> status codes and rich error details),
:mod:`~spiker_api.limits` (request and spec size limits) and :mod:`~spiker_api.service_token`
(the services' shared secret). Imports only the ``spiker`` library (docs/architecture.md).
"""
