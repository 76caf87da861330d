"""Small wrappers that make Telegram's rate limits and edit quirks harmless.

Status messages are edited often; Telegram answers an identical edit with
``BadRequest: message is not modified`` and floods with ``RetryAfter``. Neither must ever fail a job.
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

from telegram import Bot, InlineKeyboardMarkup
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TimedOut
from telegram.warnings import PTBDeprecationWarning

log = logging.getLogger(__name__)
T = TypeVar("T")


def retry_seconds(exc: RetryAfter) -> float:
    """Seconds to wait; PTB 22 returns an int (deprecated) or a timedelta (PTB_TIMEDELTA=1), take both."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


async def with_retry(call: Callable[[], Awaitable[T]], attempts: int = 3, max_wait: float = 30.0) -> T:
    """Run ``call``, waiting out flood control (RetryAfter) and retrying transient network errors."""
    for attempt in range(attempts):
        try:
            return await call()
        except RetryAfter as exc:
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(min(retry_seconds(exc), max_wait))
        except (TimedOut, NetworkError) as exc:
            if isinstance(exc, BadRequest) or attempt == attempts - 1:
                raise
            await asyncio.sleep(1.0 + attempt)
    raise AssertionError("unreachable")


async def safe_edit(bot: Bot, chat_id: int, message_id: int, text: str,
                    reply_markup: InlineKeyboardMarkup | None = None) -> bool:
    """Edit a status message; identical text, floods and vanished messages are logged, not raised."""
    try:
        await bot.edit_message_text(text, chat_id=chat_id, message_id=message_id, reply_markup=reply_markup)
        return True
    except BadRequest as exc:
        if "not modified" in str(exc).lower():
            return True
        log.info("cannot edit message %s in chat %s: %s", message_id, chat_id, exc)
    except RetryAfter as exc:
        log.info("flood control on edit, skipping for %.0f s", retry_seconds(exc))
    except (Forbidden, TimedOut, NetworkError) as exc:
        log.info("edit of message %s failed: %s", message_id, exc)
    return False


async def safe_send(bot: Bot, chat_id: int, text: str, reply_markup: InlineKeyboardMarkup | None = None) -> int | None:
    """Send a text message; returns its id, or None when Telegram refuses (user blocked the bot...)."""
    try:
        message = await with_retry(lambda: bot.send_message(chat_id, text, reply_markup=reply_markup))
        return message.message_id
    except (BadRequest, Forbidden, RetryAfter, TimedOut, NetworkError) as exc:
        log.info("cannot send to chat %s: %s", chat_id, exc)
        return None
