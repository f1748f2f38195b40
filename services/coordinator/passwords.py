"""The dashboard's optional operator password: hashed with scrypt (memory-hard) in a 0600 file.

Only the coordinator reads or writes the file; hashing runs in a worker thread, never on
the event loop. The password itself is never stored or logged.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from pathlib import Path

from ..hive import safefs

SCHEME = "scrypt"
N, R, P = 2**15, 8, 1
"""32 MiB and about a tenth of a second per check: cheap once, dear a million times."""
MAXMEM = 64 * 1024 * 1024
MIN_LENGTH = 12
MAX_BYTES = 1024


class PasswordError(ValueError):
    """A password that cannot be set; the message says what to do."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _kdf(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=MAXMEM, dklen=32)


def check_strength(password: str) -> None:
    if len(password) < MIN_LENGTH:
        raise PasswordError(f"the password must have at least {MIN_LENGTH} characters")
    if len(password.encode("utf-8", "replace")) > MAX_BYTES:
        raise PasswordError(f"the password must be at most {MAX_BYTES} bytes")


def hash_password(password: str) -> str:
    """`scrypt$N$r$p$salt$hash`, salt and hash base64."""
    salt = secrets.token_bytes(16)
    return f"{SCHEME}${N}${R}${P}${_b64(salt)}${_b64(_kdf(password, salt, N, R, P))}"


def verify(password: str, stored: str) -> bool:
    """True when `password` matches `stored`; a malformed `stored` matches nothing."""
    try:
        scheme, n, r, p, salt, expected = stored.strip().split("$")
        if scheme != SCHEME:
            return False
        got = _kdf(password, base64.b64decode(salt), int(n), int(r), int(p))
        return hmac.compare_digest(got, base64.b64decode(expected))
    except (ValueError, TypeError):
        return False


def read(path: Path) -> str | None:
    """The stored hash, or None when no password is set."""
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None


def write(path: Path, stored: str | None) -> None:
    """Store a hash (0600, replaced atomically, never through a link), or remove the file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with safefs.root(path.parent) as d:
        if stored is None:
            d.unlink(path.name)
        else:
            d.write_replace(path.name, (stored + "\n").encode(), 0o600)
