"""Error alerts to the admins: one message per failure, at most one per ``interval`` per admin.

What was suppressed is counted and reported with the next alert, so a storm of identical errors
costs one message a minute, not thousands. Failures to alert are only logged.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Protocol

log = logging.getLogger(__name__)


class Sender(Protocol):
    """What can message an admin: the Telegram bot (``telegram.Bot`` has this method), whoever holds it."""

    async def send_message(self, chat_id: int, text: str) -> Any: ...


class AdminAlerts:
    def __init__(self, admin_ids: frozenset[int], interval: float = 60.0) -> None:
        self.admin_ids = admin_ids
        self.interval = interval
        self._last = -float("inf")
        self._suppressed = 0

    async def send(self, bot: Sender, text: str) -> bool:
        """Alert every admin unless one was alerted within ``interval``; True if sent."""
        if not self.admin_ids:
            return False
        now = time.monotonic()
        if now - self._last < self.interval:
            self._suppressed += 1
            return False
        self._last = now
        if self._suppressed:
            text += f"\n(+{self._suppressed} more since the last alert)"
            self._suppressed = 0
        for admin in self.admin_ids:
            try:
                await bot.send_message(admin, text[:4000])
            except Exception as exc:  # an alert that fails is logged, never raised into the failure it reports
                log.info("alert to admin %s failed: %s", admin, exc)
        return True
