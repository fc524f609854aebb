"""Secrets at rest: password hashes, API tokens, DSN public keys.

- Passwords: argon2id (argon2-cffi's defaults, RFC 9106 "low memory" profile). The hash string
  carries its own salt and parameters, so stronger settings later still verify old hashes.
- API tokens: random, shown to the user once; only their SHA-256 is stored. A plain hash is
  enough here (unlike passwords) because the token has 256 random bits: nothing to brute-force.
- DSN public keys: not secret (they ship inside browser bundles), only unguessable; `dsn_for`
  writes the DSN an SDK is given.
"""

from __future__ import annotations

import hashlib
import secrets
from urllib.parse import urlsplit

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

API_TOKEN_PREFIX = "ptk_"  # recognisable in logs and by secret scanners

_hasher = PasswordHasher()  # argon2id


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """True when `password` matches; False for a wrong password or a malformed hash."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):  # VerifyMismatchError is a VerificationError
        return False


def password_needs_rehash(password_hash: str) -> bool:
    """True when the hash was made with weaker parameters than today's; re-hash at next login."""
    return _hasher.check_needs_rehash(password_hash)


def hash_api_token(plaintext: str) -> str:
    """The SHA-256 hex digest stored in ApiToken.token_hash; look tokens up by it."""
    return hashlib.sha256(plaintext.encode()).hexdigest()


def new_api_token() -> tuple[str, str]:
    """A fresh token as (plaintext to show once, hash to store)."""
    plaintext = API_TOKEN_PREFIX + secrets.token_urlsafe(32)
    return plaintext, hash_api_token(plaintext)


def new_public_key() -> str:
    """A DSN public key: 32 lower-case hex characters (128 random bits)."""
    return secrets.token_hex(16)


def dsn_for(public_url: str, public_key: str, project_id: int) -> str:
    """Sentry's DSN shape, so every Sentry SDK accepts it: scheme://key@host[:port]/project."""
    parts = urlsplit(public_url)
    path = parts.path.rstrip("/")
    return f"{parts.scheme}://{public_key}@{parts.netloc}{path}/{project_id}"
