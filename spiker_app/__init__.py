"""The composition root: where the library, the stage services and the gateway meet.

Nothing else imports this package. It owns the ``spiker`` console script (:mod:`spiker_app.cli`),
the list of stage servicers (:mod:`spiker_app.services`), ``spiker serve`` / ``spiker worker``
(:mod:`spiker_app.serve`) and the one-machine stack of ``spiker run`` / ``spiker up``
(:mod:`spiker_app.local`). See docs/architecture.md.
"""
