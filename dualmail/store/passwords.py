"""Password hashing with argon2id (argon2-cffi), verified in constant time.

argon2-cffi is the maintained binding of the Password Hashing Competition winner; its
``PasswordHasher`` picks RFC 9106 parameters and verifies in constant time.  For unknown
users a dummy hash is verified, so a failed login takes the same time either way.
"""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

# Memory-hard but quick enough for an interactive login on a small server (~30 ms).
_hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
_DUMMY = _hasher.hash("dualmail-dummy-password")


def new_secret(nbytes: int) -> str:
    """A random URL-safe secret (a bearer token, a first password) that never starts with
    ``-``: an admin passes it as an argument (``dualmail token revoke ADDRESS TOKEN``), where
    a leading dash reads as an option."""
    while (secret := secrets.token_urlsafe(nbytes)).startswith("-"):
        pass
    return secret


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    try:
        return _hasher.verify(stored or _DUMMY, password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    try:
        return _hasher.check_needs_rehash(stored)
    except InvalidHashError:
        return False
