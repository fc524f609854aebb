"""Sign-in throttling: failed attempts are counted in Redis per account and per client IP.

Past the limit within the window, sign-in answers 429 (with Retry-After) before the password is
even checked, so guessing is slow for one account (many IPs) and for one IP (many accounts).
A success clears the account's count, not the IP's: one good password must not reset a
guessing run over other accounts.
"""

from __future__ import annotations

import hashlib

import redis

from core.settings import Settings
from dashboards.api.errors import ApiError

_PREFIX = "pulsetrace:login-failures"

# Count a failure; the window starts at the first one and does not slide with each later one.
# (A script rather than EXPIRE NX, which Redis 6.2, the embedded server, lacks.)
_COUNT_FAILURE = """
for _, key in ipairs(KEYS) do
    redis.call('INCR', key)
    if redis.call('TTL', key) < 0 then redis.call('EXPIRE', key, ARGV[1]) end
end
return 1
"""


def _keys(email: str, ip: str) -> tuple[str, str]:
    # Hashed: Redis keys are not a place for email addresses.
    account = hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]
    return f"{_PREFIX}:account:{account}", f"{_PREFIX}:ip:{ip}"


class LoginThrottle:
    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        self.redis = client
        self.window = settings.login_throttle_seconds
        self.per_account = settings.login_max_failures_per_account
        self.per_ip = settings.login_max_failures_per_ip
        self._count_failure = client.register_script(_COUNT_FAILURE)

    def check(self, email: str, ip: str) -> None:
        account_key, ip_key = _keys(email, ip)
        pipe = self.redis.pipeline()
        pipe.get(account_key)
        pipe.ttl(account_key)
        pipe.get(ip_key)
        pipe.ttl(ip_key)
        account, account_ttl, by_ip, ip_ttl = pipe.execute()
        blocked = []
        if int(account or 0) >= self.per_account:
            blocked.append(("this account", int(account_ttl)))
        if int(by_ip or 0) >= self.per_ip:
            blocked.append(("this address", int(ip_ttl)))
        if blocked:
            wait = max(max(ttl for _, ttl in blocked), 1)
            who = " and ".join(name for name, _ in blocked)
            raise ApiError(
                429,
                f"too many failed sign-ins for {who}; try again in {wait} s",
                {"Retry-After": str(wait)},
            )

    def failed(self, email: str, ip: str) -> None:
        self._count_failure(keys=list(_keys(email, ip)), args=[self.window])

    def succeeded(self, email: str, ip: str) -> None:
        self.redis.delete(_keys(email, ip)[0])
