"""API keys: made, shown once, stored as a hash, checked on every request, revoked.

A key looks like ``sk_live_`` or ``sk_test_`` followed by 40 letters and digits (about 238
bits of randomness). Only its SHA-256 is stored, so a leaked database does not leak keys; a
slow password hash would add nothing against a secret that long. The first 16 characters are
kept in the clear as the key's *prefix*, to tell keys apart in lists and logs.

A key acts for its organisation on behalf of the member who created it: it stops working when
it is revoked or when that member leaves the organisation. Live keys (``sk_live_``) trade real
credits through the configured payment gateway; test keys (``sk_test_``) run the same code on the
test-mode data (``marketplace.modes``), which never touches live inventory or the journal.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import re
import secrets
import string
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledger.schema import utcnow

from ..models import Membership, Organisation, User
from ..models.api import ApiKey
from .problems import Problem

LIVE = "sk_live_"
TEST = "sk_test_"
RANDOM_LENGTH = 40
PREFIX_LENGTH = 16
_ALPHABET = string.ascii_letters + string.digits
KEY_PATTERN = re.compile(r"sk_(live|test)_[A-Za-z0-9]{40}")
TOUCH_EVERY = dt.timedelta(minutes=1)
"""``last_used_at`` is written at most this often, so reads stay reads."""


def generate(livemode: bool) -> str:
    return (LIVE if livemode else TEST) + "".join(secrets.choice(_ALPHABET)
                                                  for _ in range(RANDOM_LENGTH))


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def create_key(session: Session, *, organisation: Organisation, user: User, name: str,
               livemode: bool, scope: str = "write") -> tuple[ApiKey, str]:
    """A new key for the organisation, in the caller's transaction. Returns the stored key and
    the secret, which is never stored and must be shown to the user now."""
    if scope not in ("write", "read"):
        raise ValueError("scope is 'write' or 'read'")
    secret = generate(livemode)
    key = ApiKey(organisation_id=organisation.id, created_by=user.id,
                 name=name.strip()[:100] or "API key", prefix=secret[:PREFIX_LENGTH],
                 key_hash=hash_key(secret), livemode=livemode, scope=scope)
    session.add(key)
    session.flush()
    return key, secret


def revoke_key(key: ApiKey, user: User) -> bool:
    """Revoke for good; False if it already was."""
    if key.revoked_at is not None:
        return False
    key.revoked_at = utcnow()
    key.revoked_by = user.id
    return True


@dataclass(frozen=True)
class Caller:
    """Who is calling: the key, its organisation and the member it acts for."""

    key: ApiKey
    organisation: Organisation
    user: User

    @property
    def livemode(self) -> bool:
        return self.key.livemode

    @property
    def can_write(self) -> bool:
        return self.key.scope == "write"


def presented_key(authorization: str | None) -> str | None:
    """The key in ``Authorization: Bearer sk_...`` (or HTTP Basic with the key as the user
    name and no password, as ``curl -u sk_...:`` sends it); None if there is none."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer":
        return value or None
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode("ascii")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return ""
        return decoded.partition(":")[0]
    return ""


def key_mode(authorization: str | None) -> str:
    """The mode a presented key works in, from its prefix: test for ``sk_test_...``, else
    live (a malformed key is refused by :func:`authenticate` whatever the mode)."""
    from ..modes import LIVE, TEST as TEST_MODE

    secret = presented_key(authorization) or ""
    return TEST_MODE if secret.startswith(TEST) else LIVE


def _unauthorized(detail: str) -> Problem:
    return Problem(401, "Unauthorized", detail, slug="unauthorized",
                   headers={"WWW-Authenticate": 'Bearer realm="selva"'})


def authenticate(session: Session, authorization: str | None,
                 now: dt.datetime | None = None) -> Caller:
    """The caller, or a 401 problem: no key, a malformed or unknown key, a revoked key, or a
    key whose creator has left the organisation."""
    secret = presented_key(authorization)
    if secret is None:
        raise _unauthorized("Send your API key as 'Authorization: Bearer sk_...'.")
    if not KEY_PATTERN.fullmatch(secret):
        raise _unauthorized("That is not a valid API key.")
    row = session.execute(
        select(ApiKey, Organisation, User, Membership.id.label("membership_id"))
        .join(Organisation, Organisation.id == ApiKey.organisation_id)
        .join(User, User.id == ApiKey.created_by)
        .outerjoin(Membership, (Membership.organisation_id == ApiKey.organisation_id)
                   & (Membership.user_id == ApiKey.created_by))
        .where(ApiKey.key_hash == hash_key(secret))
    ).one_or_none()
    if row is None:
        raise _unauthorized("That is not a valid API key.")
    key = row.ApiKey
    if key.livemode != secret.startswith(LIVE):  # its prefix chose the mode this request runs in
        raise _unauthorized("That is not a valid API key.")
    if key.revoked_at is not None:
        raise _unauthorized("This API key was revoked.")
    if row.membership_id is None:
        raise _unauthorized("This API key's creator is no longer a member of the organisation; "
                            "ask an admin for a new key.")
    now = now or utcnow()
    last = key.last_used_at
    if last is not None and last.tzinfo is None:
        last = last.replace(tzinfo=dt.UTC)
    if last is None or now - last >= TOUCH_EVERY:
        key.last_used_at = now
    return Caller(key, row.Organisation, row.User)
