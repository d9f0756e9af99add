"""Generated gRPC contracts of the Spiker services (package ``spiker.v1``, see proto/spiker/v1).

Regenerate with ``python scripts/gen_protos.py``; tests/services/test_protos.py fails when the
committed modules are stale.
"""
