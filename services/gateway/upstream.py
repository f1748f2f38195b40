"""The Anthropic API as the gateway reaches it: one pooled HTTP client, the key added here.

Owns which request headers go upstream (an allow-list: never the agent's key, cookies or
hop-by-hop headers) and which response headers come back. The key is held by this module
alone and never logged.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx2

CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 600.0
"""Seconds without a byte from the API; longer than the harness's own (300 s), so the
harness gives up first and the gateway sees it hang up."""

FORWARDED_PREFIXES = ("anthropic-", "x-stainless-")
FORWARDED = frozenset({"content-type", "accept", "user-agent"})
NOT_FORWARDED = frozenset({"anthropic-api-key"})
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "proxy-authenticate",
        "proxy-authorization",
        "content-length",
        "content-encoding",
    }
)


def request_headers(headers: list[tuple[str, str]], key: str) -> list[tuple[str, str]]:
    """What goes upstream: the allowed headers of the agent's request, and our key."""
    out = [
        (k, v)
        for k, v in headers
        if (k in FORWARDED or k.startswith(FORWARDED_PREFIXES)) and k not in NOT_FORWARDED
    ]
    out.append(("x-api-key", key))
    out.append(("accept-encoding", "identity"))
    return out


def response_headers(headers: httpx2.Headers) -> list[tuple[str, str]]:
    """What comes back to the agent: the API's headers but the framing ones (ours differ)."""
    return [(k.lower(), v) for k, v in headers.multi_items() if k.lower() not in HOP_BY_HOP]


class Upstream:
    def __init__(self, base_url: str, key: str | None) -> None:
        self.base_url = base_url.rstrip("/")
        self.key = key
        self.client = httpx2.AsyncClient(
            timeout=httpx2.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT),
            limits=httpx2.Limits(max_connections=200, max_keepalive_connections=20),
            trust_env=True,  # HTTPS_PROXY, if the host reaches the API through one
            follow_redirects=False,
        )

    @property
    def has_key(self) -> bool:
        return bool(self.key)

    @asynccontextmanager
    async def send(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes
    ) -> AsyncIterator[httpx2.Response]:
        """The API's response to one request, its body still to be read (streamed)."""
        assert self.key is not None
        request = self.client.build_request(
            method,
            self.base_url + target,
            headers=request_headers(headers, self.key),
            content=body,
        )
        response = await self.client.send(request, stream=True)
        try:
            yield response
        finally:
            await response.aclose()

    async def close(self) -> None:
        await self.client.aclose()
