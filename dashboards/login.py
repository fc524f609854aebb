"""Browser sign-in for the dashboard: flask-login sessions backed by the same users, the same
password check, throttle and audit entries as the API's `/api/0/auth/login`.

A dashboard session is also a row in `auth_sessions`, so signing out (here or through the API)
revokes it even if a copy of the session cookie survives. Forms carry a CSRF token.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from html import escape

from flask import Flask, Response, redirect, render_template_string, request, session
from flask_login import LoginManager, UserMixin, current_user, login_required, login_user
from flask_login import logout_user as flask_logout_user
from sqlalchemy.orm import Session

from core.db import system_session
from core.models import User
from dashboards.api import tokens
from dashboards.api.auth import authenticate_password
from dashboards.api.errors import ApiError
from dashboards.api.routing import Ctx, client_ip, state


@dataclass
class SignedInUser(UserMixin):
    id: int
    email: str
    name: str
    session_id: int

    def get_id(self) -> str:
        return str(self.id)


def _load_user(user_id: str) -> SignedInUser | None:
    sid = session.get("sid")
    if not isinstance(sid, int) or not user_id.isdigit():
        return None
    with Session(state().engine) as db:
        user = db.get(User, int(user_id))
        if user is None or not user.is_active or not tokens.session_is_live(db, sid, user.id):
            return None
        return SignedInUser(user.id, user.email, user.name, sid)


FORM = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in · PulseTrace</title></head>
<body>
<h1>PulseTrace</h1>
{% if message %}<p role="alert">{{ message }}</p>{% endif %}
<form method="post" action="/login">
  <input type="hidden" name="csrf_token" value="{{ csrf }}">
  <input type="hidden" name="next" value="{{ next }}">
  <label>Email <input type="email" name="email" autocomplete="username" required></label>
  <label>Password <input type="password" name="password" autocomplete="current-password"
         required></label>
  <button type="submit">Sign in</button>
</form>
</body></html>"""


def _form_csrf() -> str:
    token = session.get("form_csrf")
    if not isinstance(token, str):
        token = session["form_csrf"] = secrets.token_urlsafe(24)
    return token


def _safe_next(target: str | None) -> str:
    # Only paths on this site: an open redirect would turn sign-in into a phishing aid.
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


def _form(message: str = "", status: int = 200) -> Response:
    page = render_template_string(FORM, message=message, csrf=_form_csrf(),
                                  next=_safe_next(request.values.get("next")))
    return Response(page, status=status, mimetype="text/html")


def login_page() -> Response:
    return _form()


def login_submit() -> Response:
    sent = request.form.get("csrf_token", "")
    if not hmac.compare_digest(sent, session.get("form_csrf") or "\x00"):
        return _form("The form expired; please sign in again.", 403)
    email, password = request.form.get("email", ""), request.form.get("password", "")
    if not email or not password or "\x00" in email + password:
        return _form("Enter your email and password.", 400)
    api = state()
    with system_session(api.engine, expire_on_commit=False) as db, db.begin():
        ctx = Ctx(None, None, None, db, None, {}, client_ip())
        try:
            user = authenticate_password(ctx, email[:254], password[:1024], via="dashboard")
        except ApiError as exc:  # throttled
            return _form(exc.detail, exc.status)
        if user is None:
            failed = True
        else:
            failed = False
            auth = tokens.open_session(db, api.settings, user, ctx.ip,
                                       request.headers.get("User-Agent"))
            signed_in = SignedInUser(user.id, user.email, user.name, auth.id)
    if failed:
        return _form("Wrong email or password.", 401)
    session.clear()  # a fresh session on sign-in: no fixation of a pre-login session
    session["sid"] = signed_in.session_id
    login_user(signed_in)
    response = redirect(_safe_next(request.form.get("next")))
    response.set_cookie(tokens.CSRF_COOKIE, tokens.csrf_token_for(api.settings, auth.id),
                        secure=True, httponly=False, samesite="Strict", path="/")
    return response


def logout_submit() -> Response:
    if current_user.is_authenticated:
        sent = request.form.get("csrf_token") or request.headers.get(tokens.CSRF_HEADER, "")
        expected = tokens.csrf_token_for(state().settings, current_user.session_id)
        if not hmac.compare_digest(sent, expected):
            return Response("CSRF check failed", status=403, mimetype="text/plain")
        with Session(state().engine) as db, db.begin():
            tokens.revoke_session(db, current_user.session_id, "logout")
        flask_logout_user()
    session.clear()
    response = redirect("/login")
    tokens.clear_auth_cookies(response)
    return response


@login_required
def home() -> Response:
    # The Dash app mounts here later; until then, who is signed in and where the API is.
    csrf = tokens.csrf_token_for(state().settings, current_user.session_id)
    page = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>PulseTrace</title>"
        f"</head><body><p>Signed in as {escape(current_user.email)}.</p>"
        "<p>API: <a href='/api/0/openapi.json'>/api/0/openapi.json</a></p>"
        "<form method='post' action='/logout'>"
        f"<input type='hidden' name='csrf_token' value='{escape(csrf)}'>"
        "<button type='submit'>Sign out</button></form></body></html>"
    )
    return Response(page, mimetype="text/html")


def install(app: Flask) -> None:
    manager = LoginManager()
    manager.login_view = "login_page"
    manager.user_loader(_load_user)
    manager.init_app(app)
    app.add_url_rule("/login", "login_page", login_page, methods=["GET"])
    app.add_url_rule("/login", "login_submit", login_submit, methods=["POST"])
    app.add_url_rule("/logout", "logout_submit", logout_submit, methods=["POST"])
    app.add_url_rule("/", "home", home, methods=["GET"])
