"""What the ingest app keeps for its lifetime: settings, the key cache, the landing queue,
and the User-Agent parser. One per process, created by the application factory."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from functools import lru_cache

from sqlalchemy import Engine
from ua_parser import parse as parse_ua

from core.blobs import BlobStore
from core.settings import Settings
from ingest.auth import KeyCache
from ingest.queue import LandingQueue

UserAgent = tuple[str, str, str, str, str]  # browser, version, OS, OS version, device


@lru_cache(maxsize=8192)  # apps send a handful of distinct User-Agents; parse each once
def parse_user_agent(value: str) -> UserAgent:
    if not value:
        return ("", "", "", "", "")
    result = parse_ua(value)
    browser = result.user_agent
    os = result.os
    device = result.device
    return (
        browser.family if browser else "",
        ".".join(p for p in (browser.major, browser.minor) if p) if browser else "",
        os.family if os else "",
        ".".join(p for p in (os.major, os.minor) if p) if os else "",
        device.family if device else "",
    )


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def trusted_networks(proxies: tuple[str, ...]) -> list[Network]:
    return [ipaddress.ip_network(p, strict=False) for p in proxies]


def _is_trusted(address: str, trusted: list[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)


def resolve_client_ip(
    remote_addr: str | None, forwarded_for: str | None, trusted: list[Network]
) -> str:
    """The socket's peer, or, behind trusted proxies, the last X-Forwarded-For hop that is
    not one of them (the first address a trusted proxy saw)."""
    address = remote_addr or ""
    if forwarded_for and _is_trusted(address, trusted):
        for hop in reversed([h.strip() for h in forwarded_for.split(",") if h.strip()]):
            address = hop
            if not _is_trusted(hop, trusted):
                break
    return address


@dataclass
class IngestState:
    settings: Settings
    engine: Engine
    keys: KeyCache
    queue: LandingQueue
    blobs: BlobStore  # attachments
    trusted_proxies: list[Network] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.trusted_proxies = trusted_networks(self.settings.ingest_trusted_proxies)

    @staticmethod
    def parse_user_agent(value: str) -> UserAgent:
        return parse_user_agent(value)

    def client_ip(self, remote_addr: str | None, forwarded_for: str | None) -> str:
        return resolve_client_ip(remote_addr, forwarded_for, self.trusted_proxies)
