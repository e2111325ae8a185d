"""Dependencies shared by every router: settings and bearer-token scopes.

Routers declare ``dependencies=[READ]`` or ``[WRITE]``; with no tokens configured auth is off, which
``curate serve`` only allows on loopback.
"""

from __future__ import annotations

import hmac
from functools import lru_cache

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from curate.config import Settings
from curate.errors import CurateError, InputError

SCOPES = ("read", "write")


class AuthError(CurateError):
    """401: no or unknown token."""

    exit_code = 2
    code = "unauthorized"


class ScopeError(CurateError):
    """403: a valid token without the scope this route needs."""

    exit_code = 2
    code = "forbidden"


@lru_cache(maxsize=8)
def parse_tokens(spec: str) -> tuple[tuple[str, frozenset[str]], ...]:
    """``'tok1:read,write;tok2:read'`` → ((token, scopes), ...); a bad spec fails at startup, loudly."""
    out = []
    for item in spec.replace("\n", ";").split(";"):
        item = item.strip()
        if not item:
            continue
        token, sep, scopes = item.rpartition(":")
        if not sep or not token:
            raise InputError("each CURATE_API_TOKENS entry is token:scope[,scope]", field="api_tokens")
        wanted = frozenset(s.strip() for s in scopes.split(",") if s.strip())
        unknown = wanted - set(SCOPES)
        if not wanted or unknown:
            raise InputError(f"unknown scope(s) {sorted(unknown) or '(none)'}; use read, write", field="api_tokens")
        out.append((token, wanted))
    return tuple(out)


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


_bearer = HTTPBearer(auto_error=False, description="A token from CURATE_API_TOKENS.")


def require(scope: str):
    def check(request: Request, creds: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> str | None:
        tokens = parse_tokens(request.app.state.settings.api_tokens)
        if not tokens:
            return None
        if creds is None or creds.scheme.lower() != "bearer":
            raise AuthError("missing bearer token (Authorization: Bearer <token>)")
        given = creds.credentials.encode()
        scopes = None
        for token, granted in tokens:  # compare with every token so timing does not reveal which matched
            if hmac.compare_digest(token.encode(), given):
                scopes = granted
        if scopes is None:
            raise AuthError("unknown token")
        if scope not in scopes:
            raise ScopeError(f"this token lacks the '{scope}' scope")
        return creds.credentials

    return Depends(check)


READ = require("read")
WRITE = require("write")
