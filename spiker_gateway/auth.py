"""Bearer-token authentication: tokens from a file or ``SPIKER_GATEWAY_TOKENS``, each mapped to a user.

Tokens have at least :data:`MIN_TOKEN_LENGTH` characters. A :class:`TokenAuth` built with
:meth:`TokenAuth.from_sources` re-reads its file on :meth:`TokenAuth.reload` (the gateway calls it
on SIGHUP): a bad file keeps the previous table. Clients read their token from a file or
``$SPIKER_TOKEN`` (:func:`client_token`), never only from the command line, where ``ps`` shows it.
"""

from __future__ import annotations

import hmac
import logging
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

import grpc

log = logging.getLogger(__name__)

ENV_VAR = "SPIKER_GATEWAY_TOKENS"
#: a client's own token
CLIENT_ENV = "SPIKER_TOKEN"
#: shortest token accepted (``new_token`` makes 32-character ones)
MIN_TOKEN_LENGTH = 32
_USER_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-@")


class Unauthenticated(Exception):
    """The call carries no token, a malformed header or an unknown token."""


def parse_tokens(text: str, source: str) -> dict[str, str]:
    """``token -> user`` from lines ``TOKEN USER`` (``#`` comments, blank lines ignored).

    Entries may also be separated by commas (the environment variable form) and written
    ``TOKEN:USER``.
    """
    table: dict[str, str] = {}
    for n, raw in enumerate(text.replace(",", "\n").splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split() if " " in line or "\t" in line else line.rsplit(":", 1)
        if len(parts) != 2 or not parts[0] or not parts[1]:
            raise ValueError(f"{source}: entry {n}: expected 'TOKEN USER'")
        token, user = parts
        if not set(user) <= _USER_CHARS or not (user[0].isalnum() or user[0] == "_") or len(user) > 64:
            raise ValueError(f"{source}: entry {n}: user names are 1 to 64 letters, digits and . _ - @, "
                             "starting with a letter, digit or _")
        if len(token) < MIN_TOKEN_LENGTH:
            raise ValueError(f"{source}: entry {n}: token too short ({MIN_TOKEN_LENGTH} characters at least; "
                             "`python -c 'import secrets; print(secrets.token_urlsafe(24))'` makes one)")
        table[token] = user
    return table


def load_tokens(path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None,
                ) -> dict[str, str]:
    """Tokens from ``path`` (lines ``TOKEN USER``) plus ``$SPIKER_GATEWAY_TOKENS`` (``TOKEN:USER,...``)."""
    env = os.environ if env is None else env
    table: dict[str, str] = {}
    if path:
        table.update(parse_tokens(Path(path).read_text(), str(path)))
    if env.get(ENV_VAR):
        table.update(parse_tokens(env[ENV_VAR], ENV_VAR))
    return table


def new_token() -> str:
    """A fresh random token (for the one-process stack and ``spiker up`` without a token file)."""
    return secrets.token_urlsafe(24)


def client_token(path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None) -> str | None:
    """A client's token: the first line of ``path``, else ``$SPIKER_TOKEN`` (else None)."""
    env = os.environ if env is None else env
    if path:
        lines = [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]
        if not lines:
            raise ValueError(f"token file {path} is empty")
        return lines[0]
    return env.get(CLIENT_ENV) or None


class TokenAuth:
    """Maps the ``authorization: Bearer <token>`` metadata of a call to its user."""

    def __init__(self, tokens: Mapping[str, str], path: str | os.PathLike[str] | None = None,
                 env: Mapping[str, str] | None = None) -> None:
        if not tokens:
            raise ValueError("no tokens configured: give --tokens FILE or set SPIKER_GATEWAY_TOKENS")
        self._tokens = dict(tokens)
        self._path = path
        self._env = env

    @classmethod
    def from_sources(cls, path: str | os.PathLike[str] | None = None,
                     env: Mapping[str, str] | None = None) -> TokenAuth:
        """Tokens from ``path`` and ``$SPIKER_GATEWAY_TOKENS`` (see :func:`load_tokens`), reloadable."""
        return cls(load_tokens(path, env), path, env)

    def reload(self) -> bool:
        """Re-read the token file (and environment); on any error keep the current table. True if reloaded."""
        if self._path is None:
            return False
        try:
            table = load_tokens(self._path, self._env)
            if not table:
                raise ValueError("no tokens left")
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            log.error("token file %s not reloaded (the previous tokens stay valid): %s", self._path, exc)
            return False
        self._tokens = table  # one assignment: a concurrent check sees the old or the new table
        log.info("token file %s reloaded: %d token(s) for %d user(s)", self._path, len(table),
                 len(set(table.values())))
        return True

    @property
    def users(self) -> set[str]:
        return set(self._tokens.values())

    def user_of(self, metadata: tuple[tuple[str, str | bytes], ...] | None) -> str:
        """The user of a call's invocation metadata; raises :class:`Unauthenticated`."""
        header = None
        for key, value in metadata or ():
            if key.lower() == "authorization":
                header = value.decode() if isinstance(value, bytes) else value
        if header is None:
            raise Unauthenticated("missing 'authorization: Bearer <token>' metadata")
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("authorization metadata must be 'Bearer <token>'")
        token = token.strip()
        user = None
        for known, name in list(self._tokens.items()):  # constant time per entry
            if hmac.compare_digest(known.encode(), token.encode()):
                user = name
        if user is None:
            raise Unauthenticated("unknown token")
        return user

    def check(self, context: grpc.ServicerContext) -> str:
        """The caller's user, or abort the call with ``UNAUTHENTICATED``."""
        try:
            return self.user_of(context.invocation_metadata())
        except Unauthenticated as exc:
            log.info("rejected call from %s: %s", context.peer(), exc)
            context.abort(grpc.StatusCode.UNAUTHENTICATED, str(exc))
            raise  # abort raises; this line is for type checkers
