"""A shared aiohttp session and the HTTP-status-to-DeliveryError mapping for HTTP channels."""

from __future__ import annotations

from typing import Any

import aiohttp

from alerts.channels.base import DeliveryError, parse_retry_after

__all__ = ["HttpClient", "error_for_status"]

# the receiver is overloaded or briefly unavailable: worth retrying the same request
_TRANSIENT = frozenset({408, 425, 429, 500, 502, 503, 504})
# our credentials are refused: every request fails the same way until someone fixes them, and
# then every queued one can go out (so they stay queued, unlike a refusal of one request)
_UNAUTHORISED = frozenset({401, 403, 407})


def error_for_status(status: int, body: str, retry_after: str | None) -> DeliveryError:
    """5xx and 408/425/429: transient; 401/403/407: permanent until the credentials are fixed
    (kept queued); any other 4xx: this request is refused for good (the item fails)."""
    client_error = status < 500 and status not in _TRANSIENT
    return DeliveryError(
        f"HTTP {status}: {body[:300]}",
        retry_after=parse_retry_after(retry_after),
        permanent=client_error,
        refused=client_error and status >= 400 and status not in _UNAUTHORISED,
    )


class HttpClient:
    """Owns one aiohttp session, created lazily inside the running loop."""

    def __init__(self, timeout: float) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def post_json(self, url: str, body: Any, headers: dict[str, str]) -> None:
        """POST JSON; any non-2xx answer or transport failure becomes a DeliveryError."""
        try:
            async with self.session().post(url, json=body, headers=headers) as resp:
                if resp.status < 300:
                    await resp.read()
                    return
                text = await resp.text(errors="replace")
                raise error_for_status(resp.status, text, resp.headers.get("Retry-After"))
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
