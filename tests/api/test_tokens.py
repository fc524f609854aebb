"""Sign-in and tokens against the running server: expiry, refresh rotation, reuse detection,
logout, tampered and unsigned tokens, cookie flags, CSRF, API tokens, dashboard sessions and
sign-in throttling."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime, timedelta
from http.cookies import SimpleCookie

import jwt
import pytest
import requests
from sqlalchemy import Engine

from core.models import Role
from core.settings import Settings
from dashboards.api import tokens
from tests.api.conftest import PASSWORD, Api, Tenant, fresh_ip, make_api_token, sql


def me(api: Api, token: str | None, **kwargs: object) -> requests.Response:
    return api.call("GET", "/api/0/me", token, **kwargs)  # type: ignore[arg-type]


def set_cookies(answer: requests.Response) -> dict[str, SimpleCookie]:
    """Each Set-Cookie header parsed, by cookie name (requests folds them together)."""
    parsed = {}
    for header in answer.raw.headers.getlist("Set-Cookie"):
        cookie: SimpleCookie = SimpleCookie()
        cookie.load(header)
        for name in cookie:
            parsed[name] = cookie
    return parsed


def cookie_header(answer: requests.Response, *names: str) -> str:
    # The cookies are Secure, so a client only sends them over HTTPS; these tests speak plain
    # HTTP to 127.0.0.1 and send them by hand, as a browser would over HTTPS.
    jar = set_cookies(answer)
    return "; ".join(f"{n}={jar[n][n].value}" for n in names)


# --- access tokens ---------------------------------------------------------------------------


def test_login_gives_a_short_lived_access_token(api: Api, tenant_a: Tenant,
                                                api_settings: Settings) -> None:
    answer = api.login(tenant_a.developer)
    assert answer.status_code == 200
    body = answer.json()
    claims = jwt.decode(body["accessToken"], options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == api_settings.api_access_token_seconds
    assert body["expiresIn"] == api_settings.api_access_token_seconds
    assert body["refreshToken"].startswith("ptr_")
    assert me(api, body["accessToken"]).json()["email"] == tenant_a.developer


def test_wrong_password_and_unknown_email_are_refused_alike(api: Api, tenant_a: Tenant) -> None:
    wrong = api.login(tenant_a.developer, "not the password")
    unknown = api.login("nobody@tests.local", "not the password")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()


def test_an_expired_access_token_is_refused(api: Api, tenant_a: Tenant, api_settings: Settings,
                                            engine: Engine) -> None:
    live = api.login(tenant_a.developer).json()["accessToken"]
    claims = jwt.decode(live, options={"verify_signature": False})
    # Signed with the server's real key, for the same live session, but issued long ago.
    expired = tokens.issue_access_token(
        api_settings, int(claims["sub"]), claims["sid"],
        now=datetime.now(UTC) - timedelta(seconds=api_settings.api_access_token_seconds + 5),
    )
    answer = me(api, expired)
    assert answer.status_code == 401
    assert "expired" in answer.json()["detail"]
    assert me(api, live).status_code == 200


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_tampered_unsigned_and_foreign_tokens_are_refused(api: Api, tenant_a: Tenant) -> None:
    token = api.access(tenant_a.developer)
    header, payload, signature = token.split(".")
    claims = jwt.decode(token, options={"verify_signature": False})
    # Claim to be someone else, keeping the original signature.
    tampered = f"{header}.{_b64({**claims, 'sub': str(int(claims['sub']) + 1)})}.{signature}"
    # alg=none: no signature at all.
    unsigned = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."
    # Well formed and signed, but with a key that is not the server's.
    foreign = jwt.encode(claims, "another installation's key, 32 bytes+", algorithm="HS256")
    for bad in (tampered, unsigned, foreign, token[:-3], "not.a.jwt"):
        answer = me(api, bad)
        assert answer.status_code == 401, bad
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert me(api, token).status_code == 200


def test_malformed_authorization_headers_are_refused(api: Api) -> None:
    for value in ("Basic dXNlcjpwYXNz", "Bearer", "Bearer    ", "token abc"):
        answer = api.call("GET", "/api/0/me", headers={"Authorization": value})
        assert answer.status_code == 401
        assert "Bearer" in answer.json()["detail"]


# --- refresh tokens ------------------------------------------------------------------------------


def refresh(api: Api, token: str) -> requests.Response:
    return api.call("POST", "/api/0/auth/refresh", json={"refreshToken": token})


def test_refresh_rotates_the_refresh_token(api: Api, tenant_a: Tenant) -> None:
    first = api.login(tenant_a.developer).json()
    second = refresh(api, first["refreshToken"])
    assert second.status_code == 200
    pair = second.json()
    assert pair["refreshToken"] != first["refreshToken"]
    assert pair["accessToken"] != first["accessToken"]
    assert me(api, pair["accessToken"]).status_code == 200
    third = refresh(api, pair["refreshToken"])
    assert third.status_code == 200


def test_reusing_a_refresh_token_revokes_its_whole_family(api: Api, tenant_a: Tenant,
                                                         engine: Engine) -> None:
    first = api.login(tenant_a.developer).json()
    second = refresh(api, first["refreshToken"]).json()
    # The first refresh token again: someone holds a copy. The whole session ends.
    reuse = refresh(api, first["refreshToken"])
    assert reuse.status_code == 401
    assert "already used" in reuse.json()["detail"]
    assert refresh(api, second["refreshToken"]).status_code == 401
    assert me(api, second["accessToken"]).status_code == 401
    assert me(api, first["accessToken"]).status_code == 401
    sid = jwt.decode(second["accessToken"], options={"verify_signature": False})["sid"]
    [(reason,)] = sql(engine, "SELECT revoked_reason FROM auth_sessions WHERE id = :id", id=sid)
    assert reason == "refresh_reuse"
    # Another sign-in of the same user is not affected.
    assert me(api, api.access(tenant_a.developer)).status_code == 200


def test_refresh_tokens_are_stored_hashed(api: Api, tenant_a: Tenant, engine: Engine) -> None:
    token = api.login(tenant_a.developer).json()["refreshToken"]
    hashed = sql(engine, "SELECT count(*) FROM refresh_tokens WHERE token_hash = :h",
                 h=tokens.hash_api_token(token))
    plain = sql(engine, "SELECT count(*) FROM refresh_tokens WHERE token_hash = :t", t=token)
    assert hashed[0][0] == 1 and plain[0][0] == 0


def test_garbage_refresh_tokens_are_refused(api: Api) -> None:
    for bad in ("", "ptr_nothing", "x" * 200):
        assert refresh(api, bad).status_code == 401
    assert api.call("POST", "/api/0/auth/refresh").status_code == 401


def test_logout_revokes_access_and_refresh_tokens(api: Api, tenant_a: Tenant) -> None:
    pair = api.login(tenant_a.developer).json()
    other = api.login(tenant_a.developer).json()
    answer = api.call("POST", "/api/0/auth/logout", pair["accessToken"])
    assert answer.status_code == 204
    assert me(api, pair["accessToken"]).status_code == 401
    assert refresh(api, pair["refreshToken"]).status_code == 401
    assert me(api, other["accessToken"]).status_code == 200  # only that session ended


# --- cookies and CSRF ----------------------------------------------------------------------------


def test_login_sets_secure_httponly_samesite_cookies(api: Api, tenant_a: Tenant) -> None:
    cookies = set_cookies(api.login(tenant_a.developer))
    access = cookies[tokens.ACCESS_COOKIE][tokens.ACCESS_COOKIE]
    refresh_cookie = cookies[tokens.REFRESH_COOKIE][tokens.REFRESH_COOKIE]
    csrf = cookies[tokens.CSRF_COOKIE][tokens.CSRF_COOKIE]
    for cookie in (access, refresh_cookie, csrf):
        assert cookie["secure"] is True
        assert cookie["samesite"] in ("Lax", "Strict")
    assert access["httponly"] is True and refresh_cookie["httponly"] is True
    assert csrf["httponly"] == ""  # the page's script reads it to send X-CSRF-Token
    assert refresh_cookie["path"] == "/api/0/auth/"
    assert refresh_cookie["samesite"] == "Strict"


def test_cookie_writes_need_the_csrf_token(api: Api, tenant_a: Tenant) -> None:
    login = api.login(tenant_a.admin)
    cookies = {"Cookie": cookie_header(login, tokens.ACCESS_COOKIE, tokens.CSRF_COOKIE)}
    csrf = set_cookies(login)[tokens.CSRF_COOKIE][tokens.CSRF_COOKIE].value
    path = f"/api/0/issues/{tenant_a.issue_id}/comments/"
    # Reads need no CSRF token.
    assert api.call("GET", path, headers=cookies).status_code == 200
    refused = api.call("POST", path, headers=cookies, json={"text": "from a cross-site form"})
    assert refused.status_code == 403
    assert "CSRF" in refused.json()["detail"]
    wrong = api.call("POST", path, headers={**cookies, "X-CSRF-Token": "0" * 64},
                     json={"text": "guessed"})
    assert wrong.status_code == 403
    allowed = api.call("POST", path, headers={**cookies, "X-CSRF-Token": csrf},
                       json={"text": "from the dashboard"})
    assert allowed.status_code == 201
    # A bearer token is not sent by browsers on their own: no CSRF token needed.
    bearer = api.call("POST", path, login.json()["accessToken"], json={"text": "from the CLI"})
    assert bearer.status_code == 201


def test_refresh_and_logout_by_cookie(api: Api, tenant_a: Tenant) -> None:
    login = api.login(tenant_a.developer)
    csrf = login.json()["csrfToken"]
    refresh_cookie = {"Cookie": cookie_header(login, tokens.REFRESH_COOKIE)}
    assert api.call("POST", "/api/0/auth/refresh", headers=refresh_cookie).status_code == 403
    renewed = api.call("POST", "/api/0/auth/refresh",
                       headers={**refresh_cookie, "X-CSRF-Token": csrf})
    assert renewed.status_code == 200
    assert renewed.json()["csrfToken"] == csrf  # one CSRF token per sign-in session
    access_cookie = {"Cookie": cookie_header(renewed, tokens.ACCESS_COOKIE)}
    assert me(api, None, headers=access_cookie).json()["authenticatedBy"] == "cookie"
    out = api.call("POST", "/api/0/auth/logout", headers={**access_cookie, "X-CSRF-Token": csrf})
    assert out.status_code == 204
    cleared = set_cookies(out)
    assert cleared[tokens.ACCESS_COOKIE][tokens.ACCESS_COOKIE].value == ""
    assert me(api, None, headers=access_cookie).status_code == 401


# --- API tokens -----------------------------------------------------------------------------------


def test_api_tokens_are_shown_once_scoped_to_org_and_role(api: Api, tenant_a: Tenant,
                                                          tenant_b: Tenant,
                                                          engine: Engine) -> None:
    admin = api.access(tenant_a.admin)
    made = api.call("POST", f"/api/0/organizations/{tenant_a.org}/api-tokens/", admin,
                    json={"name": "ci", "role": "developer"})
    assert made.status_code == 201
    plaintext = made.json()["token"]
    assert plaintext.startswith("ptk_")
    listed = api.call("GET", f"/api/0/organizations/{tenant_a.org}/api-tokens/", admin).json()
    assert all("token" not in t for t in listed)
    stored = sql(engine, "SELECT count(*) FROM api_tokens WHERE token_hash = :t", t=plaintext)
    assert stored[0][0] == 0  # only the hash is kept

    # The admin's developer-role token cannot do what only an admin may.
    orgs = me(api, plaintext).json()["organizations"]
    assert [(o["slug"], o["role"]) for o in orgs] == [(tenant_a.org, "developer")]
    issues = f"/api/0/projects/{tenant_a.org}/{tenant_a.project}/issues/"
    assert api.call("GET", issues, plaintext).status_code == 200
    audit = f"/api/0/organizations/{tenant_a.org}/audit-logs/"
    assert api.call("GET", audit, plaintext).status_code == 403
    assert api.call("GET", audit, admin).status_code == 200

    # A developer cannot mint an admin token.
    developer = api.access(tenant_a.developer)
    escalate = api.call("POST", f"/api/0/organizations/{tenant_a.org}/api-tokens/", developer,
                        json={"name": "mine", "role": "admin"})
    assert escalate.status_code == 403

    # Revoked: refused at once.
    token_id = made.json()["id"]
    gone = api.call("DELETE", f"/api/0/organizations/{tenant_a.org}/api-tokens/{token_id}/",
                    admin)
    assert gone.status_code == 204
    assert api.call("GET", issues, plaintext).status_code == 401


def test_an_api_token_works_only_in_its_organization(api: Api, tenant_a: Tenant,
                                                     tenant_b: Tenant, engine: Engine) -> None:
    # The same person is a member of both organizations; the token is for A only.
    from core import db
    from core.models import Membership

    with db.system_session(engine) as session, session.begin():
        session.add(Membership(organization_id=tenant_b.org_id, user_id=tenant_a.developer_id,
                               role=Role.developer))
    token = make_api_token(engine, tenant_a.org_id, tenant_a.developer_id, Role.developer)
    assert api.call("GET", f"/api/0/organizations/{tenant_a.org}/", token).status_code == 200
    assert api.call("GET", f"/api/0/organizations/{tenant_b.org}/", token).status_code == 404
    assert api.call("GET", f"/api/0/issues/{tenant_b.issue_id}/", token).status_code == 404
    jwt_token = api.access(tenant_a.developer)  # a sign-in sees both
    assert api.call("GET", f"/api/0/issues/{tenant_b.issue_id}/", jwt_token).status_code == 200
    assert [o["slug"] for o in me(api, token).json()["organizations"]] == [tenant_a.org]


def test_an_expired_api_token_is_refused(api: Api, tenant_a: Tenant, engine: Engine) -> None:
    token = make_api_token(engine, tenant_a.org_id, tenant_a.admin_id, Role.admin,
                           expires_at=datetime.now(UTC) - timedelta(minutes=1))
    answer = me(api, token)
    assert answer.status_code == 401
    assert "expired" in answer.json()["detail"]
    assert me(api, token + "x").status_code == 401


# --- dashboard sign-in (flask-login) -------------------------------------------------------------


def form_csrf(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match is not None
    return match[1]


def test_dashboard_session_sign_in_and_out(api: Api, api_url: str, tenant_a: Tenant) -> None:
    browser = requests.Session()
    ip = {"X-Forwarded-For": fresh_ip()}
    form = browser.get(f"{api_url}/login", headers=ip)
    assert form.status_code == 200
    session_cookie = {"Cookie": cookie_header(form, "pt_session")}
    no_csrf = browser.post(f"{api_url}/login", headers={**ip, **session_cookie},
                           data={"email": tenant_a.developer, "password": PASSWORD},
                           allow_redirects=False)
    assert no_csrf.status_code == 403
    signed_in = browser.post(
        f"{api_url}/login", headers={**ip, **session_cookie}, allow_redirects=False,
        data={"email": tenant_a.developer, "password": PASSWORD,
              "csrf_token": form_csrf(form.text), "next": "https://evil.example/"})
    assert signed_in.status_code == 302
    assert signed_in.headers["Location"] == "/"  # no redirect off this site
    flags = set_cookies(signed_in)["pt_session"]["pt_session"]
    assert flags["secure"] and flags["httponly"] and flags["samesite"] == "Lax"
    session = {"Cookie": cookie_header(signed_in, "pt_session")}
    csrf = set_cookies(signed_in)[tokens.CSRF_COOKIE][tokens.CSRF_COOKIE].value

    who = api.call("GET", "/api/0/me", headers=session)
    assert who.status_code == 200 and who.json()["authenticatedBy"] == "session"
    comments = f"/api/0/issues/{tenant_a.issue_id}/comments/"
    assert api.call("POST", comments, headers=session, json={"text": "x"}).status_code == 403
    assert api.call("POST", comments, headers={**session, "X-CSRF-Token": csrf},
                    json={"text": "from the dashboard"}).status_code == 201
    assert browser.get(f"{api_url}/", headers={**ip, **session}).status_code == 200
    log = api.call("GET", f"/api/0/organizations/{tenant_a.org}/audit-logs/",
                   api.access(tenant_a.admin), params={"event": "auth.login"}).json()["rows"]
    assert any(e["ipAddress"] == ip["X-Forwarded-For"] and e["data"] == {"via": "dashboard"}
               for e in log)

    out = browser.post(f"{api_url}/logout", headers={**ip, **session},
                       data={"csrf_token": csrf}, allow_redirects=False)
    assert out.status_code == 302
    # A copy of the old session cookie no longer signs anyone in.
    assert api.call("GET", "/api/0/me", headers=session).status_code == 401
    home = browser.get(f"{api_url}/", headers={**ip, **session}, allow_redirects=False)
    assert home.status_code == 302 and "/login" in home.headers["Location"]


# --- throttling ---------------------------------------------------------------------------------


def test_sign_in_is_throttled_per_account(api: Api, tenant_b: Tenant,
                                          api_settings: Settings) -> None:
    for _ in range(api_settings.login_max_failures_per_account):
        assert api.login(tenant_b.developer, "wrong guess").status_code == 401
    # From any address, even with the right password: the account is locked for a while.
    locked = api.login(tenant_b.developer)
    assert locked.status_code == 429
    assert int(locked.headers["Retry-After"]) > 0
    assert "this account" in locked.json()["detail"]
    assert api.login(tenant_b.admin).status_code == 200  # other accounts are unaffected


def test_sign_in_is_throttled_per_ip(api: Api, tenant_b: Tenant,
                                     api_settings: Settings) -> None:
    ip = fresh_ip()
    for n in range(api_settings.login_max_failures_per_ip):
        assert api.login(f"guess-{n}@tests.local", "wrong", ip=ip).status_code == 401
    blocked = api.login(tenant_b.admin, ip=ip)
    assert blocked.status_code == 429
    assert "this address" in blocked.json()["detail"]
    assert api.login(tenant_b.admin, ip=fresh_ip()).status_code == 200


@pytest.mark.parametrize("body", [None, "not json", {"email": "x"}, {"email": 1, "password": 2},
                                  {"email": "a@b.c", "password": "p", "extra": 1}])
def test_bad_login_bodies_answer_400(api: Api, body: object) -> None:
    kwargs = {"data": body} if isinstance(body, str) else {"json": body}
    answer = api.call("POST", "/api/0/auth/login", **kwargs)  # type: ignore[arg-type]
    assert answer.status_code == 400
    assert answer.json()["detail"]
