"""API authentication and roles (orchestrator's `AuthenticationMethod`, `PowerAuthUsers` spirit).

- `""` (default): no authentication; everyone is admin. Meant for loopback (a warning is logged when
  the API listens elsewhere without auth).
- `basic`: HTTP basic with HTTPAuthUser/HTTPAuthPassword; admin when the user is in PowerAuthUsers
  (`*` = every authenticated user), else read-only.
- `multi`: as basic, plus user `readonly` with any password gets read-only access.
- `proxy`: the user named in the `AuthUserHeader` header (set by a trusted reverse proxy); admin when
  listed in PowerAuthUsers.
- With basic, multi and proxy, a user is also admin when it is a Unix user (of this host: `getpwnam`)
  member of one of the PowerAuthGroups (orchestrator's `UserInGroups`); an unknown user is in none.
- `token`: bearer tokens from BatonAuthTokens, each with its role. With basic/multi, bearer tokens are
  accepted too when BatonAuthTokens is not empty.

`ReadOnly: true` refuses every mutating route whoever asks. Missing or wrong credentials → 401 (with
`WWW-Authenticate`), a read-only principal on a mutating route → 403. Comparisons are constant-time;
credentials and tokens never appear in logs or responses.
"""

from __future__ import annotations

import base64
import binascii
import grp
import hmac
import logging
import os
import pwd
from dataclasses import dataclass
from typing import Literal

from fastapi import Request

from libs.config import Settings
from services.api.envelope import ApiError

log = logging.getLogger(__name__)

Role = Literal["read-only", "admin"]


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role

    @property
    def admin(self) -> bool:
        return self.role == "admin"


ANONYMOUS_ADMIN = Principal("anonymous", "admin")


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def _unauthorized(method: str, why: str) -> ApiError:
    scheme = "Bearer" if method == "token" else 'Basic realm="baton"'
    return ApiError(401, f"unauthorized: {why}", headers={"WWW-Authenticate": scheme})


def user_in_groups(user: str, groups: list[str]) -> bool:
    """PowerAuthGroups: is `user` (a Unix user of this host) a member of one of `groups` (by name)?
    Primary and supplementary groups count; an unknown user, or no groups, is False."""
    if not user or not groups:
        return False
    try:
        entry = pwd.getpwnam(user)
        gids = os.getgrouplist(entry.pw_name, entry.pw_gid)
    except (KeyError, OSError):
        return False
    wanted = set(groups)
    for gid in gids:
        try:
            if grp.getgrgid(gid).gr_name in wanted:
                return True
        except KeyError:
            continue
    return False


class Authenticator:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.method = settings.AuthenticationMethod

    def _power(self, user: str) -> Role:
        users = self.settings.PowerAuthUsers
        if "*" in users or user in users or user_in_groups(user, self.settings.PowerAuthGroups):
            return "admin"
        return "read-only"

    def _bearer(self, token: str) -> Principal | None:
        found: Principal | None = None
        for entry in self.settings.BatonAuthTokens:
            if _same(token, entry.Token.get_secret_value()):
                found = Principal(entry.Name, entry.Role)
        return found

    def _basic(self, encoded: str) -> Principal | None:
        try:
            user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return None
        expected = self.settings.HTTPAuthPassword.get_secret_value()
        user_ok = _same(user, self.settings.HTTPAuthUser)
        password_ok = _same(password, expected)
        if user_ok and password_ok:
            return Principal(user, self._power(user))
        if self.method == "multi" and user == "readonly":
            return Principal(user, "read-only")
        return None

    def authenticate(self, request: Request) -> Principal:
        """Who is asking; raises the 401 ApiError when they must authenticate and did not."""
        method = self.method
        if method == "":
            return ANONYMOUS_ADMIN
        if method == "proxy":
            user = request.headers.get(self.settings.AuthUserHeader, "").strip()
            if not user:
                raise _unauthorized(method, f"missing {self.settings.AuthUserHeader} header")
            return Principal(user, self._power(user))
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        scheme = scheme.lower()
        if not header:
            raise _unauthorized(method, "credentials required")
        if scheme == "bearer" and (method == "token" or self.settings.BatonAuthTokens):
            principal = self._bearer(value.strip())
            if principal is None:
                raise _unauthorized(method, "unknown token")
            return principal
        if scheme == "basic" and method in ("basic", "multi"):
            principal = self._basic(value.strip())
            if principal is None:
                raise _unauthorized(method, "wrong user or password")
            return principal
        raise _unauthorized(method, f"{scheme or 'this'} authentication is not accepted here")


async def reader(request: Request) -> Principal:
    """Dependency of read routes: any authenticated principal."""
    auth: Authenticator = request.app.state.auth
    principal = auth.authenticate(request)
    request.state.principal = principal
    return principal


async def admin(request: Request) -> Principal:
    """Dependency of mutating routes: an admin principal, and the API not in ReadOnly mode."""
    auth: Authenticator = request.app.state.auth
    principal = auth.authenticate(request)
    request.state.principal = principal
    if auth.settings.ReadOnly:
        raise ApiError(403, "forbidden: this API is read-only (ReadOnly: true)")
    if not principal.admin:
        raise ApiError(403, f"forbidden: {principal.name} is read-only; this command needs admin")
    return principal
