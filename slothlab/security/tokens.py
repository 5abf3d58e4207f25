"""Bearer tokens: generated once, kept hashed by servers, compared in constant time.

The cluster token is shared by the master, its agents and the people who drive them. It lives in
``<home>/token`` (mode 0600), created on first start; servers keep only its SHA-256 hash in
memory and compare presented tokens with :func:`hmac.compare_digest`.

>>> token = generate_token()
>>> verifier = TokenVerifier([hash_token(token)])
>>> verifier.check(token), verifier.check("wrong"), verifier.check(None)
(True, False, False)
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path

from slothlab.config import home_dir
from slothlab.errors import ConfigError

__all__ = [
    "TOKEN_ENV",
    "TokenVerifier",
    "generate_token",
    "hash_token",
    "load_or_create_token",
    "read_token",
    "token_path",
]

TOKEN_ENV = "SLOTHLAB_TOKEN"
"""The environment variable that overrides the token file."""


def generate_token() -> str:
    """A new random token (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """The SHA-256 hex digest servers keep instead of the token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def token_path(environ: Mapping[str, str] | None = None) -> Path:
    """Where the cluster token is kept (``<home>/token``)."""
    return home_dir(environ) / "token"


def read_token(environ: Mapping[str, str] | None = None) -> str | None:
    """The token from ``$SLOTHLAB_TOKEN`` or the token file, or None when there is none."""
    env = os.environ if environ is None else environ
    if env.get(TOKEN_ENV):
        return env[TOKEN_ENV]
    path = token_path(env)
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"cannot read the token file {path}: {exc.strerror}") from None
    return text or None


def load_or_create_token(environ: Mapping[str, str] | None = None) -> str:
    """The cluster token; on first use a new one is written to the token file (mode 0600)."""
    existing = read_token(environ)
    if existing:
        return existing
    path = token_path(environ)
    path.parent.mkdir(parents=True, exist_ok=True)
    token = generate_token()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first: use theirs
        return read_token(environ) or token
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(token + "\n")
    return token


class TokenVerifier:
    """Checks presented tokens against stored hashes, in constant time.

    Args:
        hashes: SHA-256 hex digests of the accepted tokens (:func:`hash_token`).
    """

    def __init__(self, hashes: Iterable[str]) -> None:
        self._hashes = [bytes.fromhex(h) for h in hashes]
        self._last_header: bytes | None = None

    @classmethod
    def for_token(cls, token: str) -> TokenVerifier:
        """A verifier accepting exactly ``token``."""
        return cls([hash_token(token)])

    def check(self, presented: str | None) -> bool:
        """True when ``presented`` is one of the accepted tokens."""
        if not presented:
            return False
        digest = hashlib.sha256(presented.encode("utf-8", "surrogatepass")).digest()
        found = False
        for stored in self._hashes:  # no early exit: the time does not tell which one matched
            found |= hmac.compare_digest(digest, stored)
        return found

    def check_header(self, header: bytes | None) -> bool:
        """True when an ``Authorization: Bearer <token>`` header value holds an accepted token.

        The last accepted header is remembered, so the hot paths (heartbeats, submissions) pay a
        constant-time compare instead of a SHA-256 per request.

        >>> v = TokenVerifier.for_token("t")
        >>> v.check_header(b"Bearer t"), v.check_header(b"Bearer t"), v.check_header(b"Basic t")
        (True, True, False)
        """
        if header is None:
            return False
        last = self._last_header
        if last is not None and hmac.compare_digest(header, last):
            return True
        scheme, _, token = header.decode("latin-1").partition(" ")
        if scheme.lower() == "bearer" and self.check(token.strip()):
            self._last_header = header
            return True
        return False
