"""The Spiker gateway: runs whole flow specs through the four stage services (docs/gateway.md).

It orchestrates only: it validates specs, queues runs, calls the trainer, optimizer, hdlgen
and simulator services over gRPC, passes artifacts by reference, keeps run records and a
stage cache in the artifact store, and builds the run report from the services' results.
"""
