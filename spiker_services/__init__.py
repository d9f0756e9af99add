"""gRPC stage services over the ``spiker`` library: trainer, optimizer, hdlgen, simulator.

Each is a thin adapter: it reads inputs from the artifact store, calls the library (in a child
process, so cancellation really stops the work), writes outputs and streams progress. Start one
with ``spiker serve <name> --port P`` (see docs/services.md and :mod:`spiker_app.serve`).
"""
