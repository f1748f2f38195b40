"""The dashboard's optional operator password: hashed with scrypt (memory-hard) in a 0600 file.

Only the coordinator reads or writes the file; hashing runs in a worker thread, never on
the event loop. The password itself is never stored or logged.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import secrets
from pathlib import Path

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
    """Store a hash (0600, replaced atomically), or remove the file for None."""
    if stored is None:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(stored + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
