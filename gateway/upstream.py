"""The upstream side: one pooled httpx client per vendor, with an injectable transport."""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from gateway.echo import create_echo_app
from gateway.settings import ECHO, Settings

# Hop-by-hop headers (RFC 9110 §7.6.1) and those httpx sets itself never cross the proxy.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "accept-encoding",
        "content-encoding",
    }
)


def forward_request_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The client's own headers (its API key, anthropic-version, OpenAI-Organization...) go upstream."""
    return {
        k: v for k, v in headers.items() if k.lower() not in _HOP_BY_HOP and not k.lower().startswith("x-privgate-")
    }


def forward_response_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() not in _HOP_BY_HOP and k.lower() != "content-type"}


class Upstream:
    """Where one vendor's requests go: the configured base URL, or the built-in echo model."""

    def __init__(self, base_url: str, client: httpx.AsyncClient, *, strip_v1: bool) -> None:
        self.base_url = base_url.rstrip("/")
        self.client = client
        self._strip_v1 = strip_v1  # OpenAI-style base URLs already end in /v1

    @property
    def is_echo(self) -> bool:
        return self.client.base_url.host == ECHO

    def url(self, path: str) -> str:
        if self._strip_v1 and path.startswith("/v1/"):
            path = path[3:]
        return self.base_url + path


def build_upstreams(settings: Settings, transport: httpx.AsyncBaseTransport | None = None) -> dict[str, Upstream]:
    """`transport` lets tests route every upstream call in-process, like httpx.MockTransport."""
    timeout = httpx.Timeout(settings.read_timeout_s, connect=settings.connect_timeout_s)
    limits = httpx.Limits(max_connections=settings.max_connections, max_keepalive_connections=64)
    upstreams = {}
    echo_transport: httpx.AsyncBaseTransport | None = None
    for name, base, strip in (
        ("openai", settings.openai_base_url, True),
        ("anthropic", settings.anthropic_base_url, False),
    ):
        if base == ECHO:
            echo_transport = echo_transport or httpx.ASGITransport(app=create_echo_app())
            client = httpx.AsyncClient(transport=echo_transport, base_url=f"http://{ECHO}", timeout=timeout)
            base = f"http://{ECHO}/v1" if strip else f"http://{ECHO}"
        else:
            client = httpx.AsyncClient(
                transport=transport, timeout=timeout, limits=limits, verify=settings.verify_tls, base_url=base
            )
        upstreams[name] = Upstream(base, client, strip_v1=strip)
    return upstreams
