"""Requests per minute per caller (a key, a Telegram user, an anonymous IP), answered in the IETF ``RateLimit`` /
``RateLimit-Policy`` headers on every API answer, and 429 with ``Retry-After`` beyond it.

Counted in this process (a fixed one-minute window): a burst is stopped where it lands. The limits that must hold
across replicas, jobs at once and pictures per minute, are taken in the database when a job is accepted.
"""

from __future__ import annotations

import math
import time

from .problems import Problem

WINDOW = 60.0


class RequestLimiter:
    def __init__(self) -> None:
        self._windows: dict[str, tuple[float, int]] = {}  # label -> (window start, requests in it)

    def take(self, label: str, per_minute: int, now: float | None = None) -> dict[str, str]:
        """Count one request of ``label`` against its ``per_minute``; its headers, or :class:`Problem` 429."""
        now = time.monotonic() if now is None else now
        start, count = self._windows.get(label, (now, 0))
        if now - start >= WINDOW:
            start, count = now, 0
        if len(self._windows) > 100_000:  # forget idle callers
            self._windows = {k: v for k, v in self._windows.items() if now - v[0] < WINDOW}
        reset = max(1, math.ceil(start + WINDOW - now))
        headers = {"RateLimit-Policy": f'"requests";q={per_minute};w={int(WINDOW)}'}
        if count >= per_minute:
            headers.update({"RateLimit": f'"requests";r=0;t={reset}', "Retry-After": str(reset)})
            raise Problem(429, "rate-limited", f"at most {per_minute} requests a minute; retry in {reset} s",
                          headers=headers)
        self._windows[label] = (start, count + 1)
        headers["RateLimit"] = f'"requests";r={per_minute - count - 1};t={reset}'
        return headers
