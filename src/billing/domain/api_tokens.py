"""API tokens: who may call the rating service, for what, and how often.

A token's secret is 32 random bytes (256 bits), shown once and stored only as its SHA-256
digest. A plain, unsalted, fast hash is the right tool for a secret of that entropy: salts and
slow hashes (bcrypt, Argon2) protect *guessable* passwords from brute force, and nobody can
enumerate 2^256 candidates at any speed. A deterministic digest is also what lets the server
find a token with one dictionary lookup per call instead of one slow hash per stored token.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from billing.domain.errors import Violations

# Recognisable in a leaked log or a repository, as GitHub's ghp_ and Stripe's sk_ are.
SECRET_PREFIX = "bt_"  # noqa: S105 (a prefix, not a secret)
NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")


class Scope(StrEnum):
    QUOTE = "quote"  # Quote only: what a checkout page may hold
    USAGE_WRITE = "usage:write"
    CATALOG_WRITE = "catalog:write"
    BILLING_READ = "billing:read"
    BILLING_ADMIN = "billing:admin"  # every scope


@dataclass(frozen=True, slots=True)
class TokenLimits:
    """Per-token limits; ``None`` takes the server's default."""

    rate_per_second: int | None = None
    burst: int | None = None
    max_streams: int | None = None


SERVER_DEFAULTS = TokenLimits()


@dataclass(frozen=True, slots=True)
class ApiToken:
    id: str
    name: str
    scopes: frozenset[Scope]
    limits: TokenLimits
    created_at: datetime
    revoked_at: datetime | None = None
    # Everything this token may do: admin expands to every scope, so a call checks one set.
    granted: frozenset[Scope] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        granted = frozenset(Scope) if Scope.BILLING_ADMIN in self.scopes else self.scopes
        object.__setattr__(self, "granted", granted)

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True, slots=True)
class TokenSnapshot:
    """Every stored token (revoked ones too, to say so) by digest, at one version."""

    version: int
    by_digest: Mapping[bytes, ApiToken]


def digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def parse_scopes(values: Iterable[str], field_name: str = "scopes") -> frozenset[Scope]:
    errors = Violations()
    scopes: set[Scope] = set()
    for value in values:
        try:
            scopes.add(Scope(value))
        except ValueError:
            errors.add(field_name, f"unknown scope {value!r}; one of {', '.join(Scope)}")
    if not scopes and not errors:
        errors.add(field_name, "give at least one scope")
    errors.raise_if_any()
    return frozenset(scopes)


def validate_token(name: str, limits: TokenLimits) -> None:
    errors = Violations()
    if not NAME.match(name):
        errors.add("name", "1-63 characters: lower-case letters, digits, '.', '_' or '-'")
    for label, value in (
        ("rate_per_second", limits.rate_per_second),
        ("burst", limits.burst),
        ("max_streams", limits.max_streams),
    ):
        if value is not None and not 0 < value <= 1_000_000:
            errors.add(label, "must be between 1 and 1,000,000")
    errors.raise_if_any()
