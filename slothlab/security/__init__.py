"""Security: bearer tokens now; RBAC, audit log, secrets and TLS come with the security issue."""

from __future__ import annotations

from slothlab.security.tokens import (
    TOKEN_ENV,
    TokenVerifier,
    generate_token,
    hash_token,
    load_or_create_token,
    read_token,
    token_path,
)

__all__ = [
    "TOKEN_ENV",
    "TokenVerifier",
    "generate_token",
    "hash_token",
    "load_or_create_token",
    "read_token",
    "token_path",
]
