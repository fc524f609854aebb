"""Access tokens (JWT), rotating refresh tokens, and the cookies that carry them.

- An access token is a JWT (HS256) living `api_access_token_seconds`; it names its user (`sub`)
  and its sign-in session (`sid`), so revoking the session ends it before it expires.
- A refresh token is 256 random bits, stored as its SHA-256 in `refresh_tokens`; exchanging it
  marks it used and gives a new one in the same session. Presenting a used one means a copy
  is in someone else's hands: the whole session (every token of the family) is revoked.
- The signing key is derived from SECRET_KEY, never stored in the repository.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from flask import Response
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from core.models import AuthSession, RefreshToken, User
from core.security import hash_api_token
from core.settings import Settings
from dashboards.api.errors import ApiError, unauthenticated

ALGORITHM = "HS256"
ISSUER = "pulsetrace"
AUDIENCE = "pulsetrace-api"
REFRESH_PREFIX = "ptr_"  # recognisable, like the ptk_ API tokens

ACCESS_COOKIE = "pt_access"
REFRESH_COOKIE = "pt_refresh"
CSRF_COOKIE = "pt_csrf"
CSRF_HEADER = "X-CSRF-Token"
REFRESH_COOKIE_PATH = "/api/0/auth/"


def signing_key(settings: Settings) -> bytes:
    # A key of its own, derived from SECRET_KEY, so a JWT never doubles as another signature.
    return hmac.new(settings.secret_key.encode(), b"pulsetrace jwt v1", hashlib.sha256).digest()


def csrf_token_for(settings: Settings, session_id: int) -> str:
    """The CSRF token of a sign-in session: derived, so no server state is needed to check it."""
    message = f"csrf:{session_id}".encode()
    return hmac.new(settings.secret_key.encode(), message, hashlib.sha256).hexdigest()


def issue_access_token(
    settings: Settings, user_id: int, session_id: int, now: datetime | None = None
) -> str:
    now = now or datetime.now(UTC)
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": str(user_id),
        "sid": session_id,
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(seconds=settings.api_access_token_seconds)).timestamp()),
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, signing_key(settings), algorithm=ALGORITHM)


@dataclass(frozen=True)
class AccessClaims:
    user_id: int
    session_id: int


def verify_access_token(settings: Settings, token: str) -> AccessClaims:
    """The claims of a valid token; 401 for an expired, tampered or unsigned (alg=none) one."""
    try:
        # A fixed algorithm list: a token naming alg=none or another algorithm is refused.
        claims = jwt.decode(
            token,
            signing_key(settings),
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            issuer=ISSUER,
            options={"require": ["exp", "iat", "sub", "sid"]},
        )
    except jwt.ExpiredSignatureError:
        raise unauthenticated(
            "access token expired: get a new one at /api/0/auth/refresh"
        ) from None
    except jwt.InvalidTokenError as exc:
        raise unauthenticated(f"invalid access token ({exc})") from None
    try:
        return AccessClaims(int(claims["sub"]), int(claims["sid"]))
    except (TypeError, ValueError):
        raise unauthenticated("invalid access token (malformed claims)") from None


def _hash(token: str) -> str:
    return hash_api_token(token)  # SHA-256 hex, as for API tokens: 256 random bits


@dataclass(frozen=True)
class TokenPair:
    access: str
    refresh: str
    user_id: int
    session_id: int
    expires_in: int
    csrf: str


def open_session(
    session: Session, settings: Settings, user: User, ip: str | None, user_agent: str | None
) -> AuthSession:
    """A new sign-in session (for the API's token pair, or a dashboard login)."""
    auth = AuthSession(
        user_id=user.id,
        expires_at=datetime.now(UTC) + timedelta(seconds=settings.api_session_seconds),
        ip_address=(ip or None) and ip[:45],
        user_agent=(user_agent or None) and user_agent[:300],
    )
    session.add(auth)
    session.flush()
    return auth


def start_session(
    session: Session, settings: Settings, user: User, ip: str | None, user_agent: str | None
) -> TokenPair:
    auth = open_session(session, settings, user, ip, user_agent)
    return _new_pair(session, settings, auth, datetime.now(UTC))


def _new_pair(session: Session, settings: Settings, auth: AuthSession, now: datetime) -> TokenPair:
    refresh = REFRESH_PREFIX + secrets.token_urlsafe(32)
    session.add(RefreshToken(session_id=auth.id, token_hash=_hash(refresh),
                             expires_at=auth.expires_at))
    return TokenPair(
        access=issue_access_token(settings, auth.user_id, auth.id, now),
        refresh=refresh,
        user_id=auth.user_id,
        session_id=auth.id,
        expires_in=settings.api_access_token_seconds,
        csrf=csrf_token_for(settings, auth.id),
    )


def revoke_session(session: Session, session_id: int, reason: str) -> None:
    session.execute(
        update(AuthSession)
        .where(AuthSession.id == session_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC), revoked_reason=reason)
    )


def rotate(engine: Engine, settings: Settings, refresh: str) -> TokenPair:
    """Exchange a refresh token for a new pair; reuse of a used one revokes its family."""
    invalid = unauthenticated("invalid refresh token: sign in again")
    if not refresh.startswith(REFRESH_PREFIX):
        raise invalid
    now = datetime.now(UTC)
    with Session(engine) as session:
        with session.begin():
            # FOR UPDATE: two concurrent exchanges of one token cannot both succeed.
            row = session.execute(
                select(RefreshToken, AuthSession)
                .join(AuthSession, AuthSession.id == RefreshToken.session_id)
                .where(RefreshToken.token_hash == _hash(refresh))
                .with_for_update()
            ).first()
            if row is None:
                raise invalid
            token, auth = row
            reused = token.used_at is not None
            if reused:
                revoke_session(session, auth.id, "refresh_reuse")
            else:
                if auth.revoked_at is not None or auth.expires_at <= now \
                        or token.expires_at <= now:
                    raise invalid
                user = session.get(User, auth.user_id)
                if user is None or not user.is_active:
                    raise invalid
                token.used_at = now
                return _new_pair(session, settings, auth, now)
        # Committed: the revocation stands although the answer is an error.
        raise ApiError(401, "refresh token already used: its sign-in session is revoked; "
                       "sign in again")


def session_of_refresh(session: Session, refresh: str, user_id: int | None = None) -> int | None:
    """The sign-in session a refresh token belongs to (of `user_id`, if given)."""
    statement = (
        select(AuthSession.id)
        .join(RefreshToken, RefreshToken.session_id == AuthSession.id)
        .where(RefreshToken.token_hash == _hash(refresh))
    )
    if user_id is not None:
        statement = statement.where(AuthSession.user_id == user_id)
    return session.scalar(statement)


def session_is_live(session: Session, session_id: int, user_id: int) -> bool:
    auth = session.get(AuthSession, session_id)
    return (
        auth is not None
        and auth.user_id == user_id
        and auth.revoked_at is None
        and auth.expires_at > datetime.now(UTC)
    )


def set_auth_cookies(response: Response, settings: Settings, pair: TokenPair) -> None:
    """Secure, HttpOnly, SameSite cookies for the browser. The CSRF cookie is readable by
    the page's scripts (that is its purpose) and useless to another site."""
    response.set_cookie(ACCESS_COOKIE, pair.access, max_age=settings.api_access_token_seconds,
                        secure=True, httponly=True, samesite="Lax", path="/")
    response.set_cookie(REFRESH_COOKIE, pair.refresh, max_age=settings.api_session_seconds,
                        secure=True, httponly=True, samesite="Strict", path=REFRESH_COOKIE_PATH)
    response.set_cookie(CSRF_COOKIE, pair.csrf, max_age=settings.api_session_seconds,
                        secure=True, httponly=False, samesite="Strict", path="/")


def clear_auth_cookies(response: Response) -> None:
    response.delete_cookie(ACCESS_COOKIE, path="/", secure=True, httponly=True, samesite="Lax")
    response.delete_cookie(REFRESH_COOKIE, path=REFRESH_COOKIE_PATH, secure=True, httponly=True,
                           samesite="Strict")
    response.delete_cookie(CSRF_COOKIE, path="/", secure=True, samesite="Strict")


def token_answer(pair: TokenPair, user: dict[str, Any]) -> dict[str, Any]:
    return {
        "accessToken": pair.access,
        "refreshToken": pair.refresh,
        "tokenType": "Bearer",
        "expiresIn": pair.expires_in,
        "csrfToken": pair.csrf,
        "user": user,
    }
