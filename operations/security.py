"""The operator token: made once, shown once, kept only as a hash in an owner-only file.

A console bound to anything but localhost demands the token on every request. The file holds
the token's SHA-256, not the token, so reading it (a backup, a copied home folder) does not let
anyone in; the file must still be private (0600), and a group- or world-readable one is
refused the way ssh refuses a readable private key.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import stat
from datetime import datetime, timezone
from pathlib import Path

TOKEN_BYTES = 32
"""256 random bits, URL-safe base64: about 43 characters."""


class TokenError(ValueError):
    """The token file is missing, unreadable or not private; the message says what to do."""


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode('utf-8')).hexdigest()


def create_token(path: str | Path, *, replace: bool = False) -> str:
    """Generate a token, store its hash in ``path`` with mode 0600 and return the token.

    The caller shows it once; it cannot be read back from the file.
    """
    path = Path(path).expanduser()
    if path.exists() and not replace:
        raise TokenError(f'{path} exists already (use --replace to make a new token; the old '
                         f'one stops working)')
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    token = secrets.token_urlsafe(TOKEN_BYTES)
    record = {'sha256': token_digest(token),
              'created': datetime.now(timezone.utc).isoformat(timespec='seconds')}
    temporary = path.with_name(path.name + '.new')
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, 'w', encoding='utf-8') as stream:
        json.dump(record, stream)
    os.chmod(temporary, 0o600)  # the umask cannot widen it, but an existing file kept its mode
    temporary.replace(path)
    return token


def load_token_digest(path: str | Path) -> str:
    """The stored hash, after checking that the file exists and only its owner can read it."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise TokenError(f'no operator token at {path}: a console bound beyond localhost needs '
                         f'one; create it with `sidewalk-robot console-token --file {path}`')
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise TokenError(f'{path} is readable by others (mode {mode:o}); make it private with '
                         f'`chmod 600 {path}` or create a new token')
    try:
        digest = json.loads(path.read_text(encoding='utf-8'))['sha256']
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise TokenError(f'{path} is not an operator token file ({error}); create a new one '
                         f'with `sidewalk-robot console-token --replace`') from error
    if not isinstance(digest, str) or len(digest) != 64:
        raise TokenError(f'{path}: malformed token hash')
    return digest


def token_matches(presented: str | None, digest: str) -> bool:
    """Constant-time comparison of a presented token with the stored hash."""
    if not presented:
        return False
    return hmac.compare_digest(token_digest(presented), digest)


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, else None."""
    if not authorization:
        return None
    scheme, _, value = authorization.partition(' ')
    if scheme.lower() != 'bearer' or not value.strip():
        return None
    return value.strip()
