"""Sending that must never fail a job: status edits and notices.

Flood control (``RetryAfter``) is python-telegram-bot's ``AIORateLimiter`` job (set in :mod:`bot.app`):
it paces every request within Telegram's limits and retries a 429 after ``retry_after``. What stays
here is what it does not cover: an identical edit (``message is not modified``) is success, and a
vanished message or a user who blocked the bot is logged, not raised.
"""

from __future__ import annotations

import logging

from telegram import Bot, InlineKeyboardMarkup, ReplyParameters
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError, TimedOut

log = logging.getLogger(__name__)


def quoting(message_id: int | None) -> ReplyParameters | None:
    """Reply to the user's message when we know it, and send anyway if they deleted it."""
    return ReplyParameters(message_id, allow_sending_without_reply=True) if message_id else None


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
    except (RetryAfter, Forbidden, TimedOut, NetworkError) as exc:
        log.info("edit of message %s failed: %s", message_id, exc)
    return False


async def safe_send(bot: Bot, chat_id: int, text: str, reply_markup: InlineKeyboardMarkup | None = None,
                    reply_to: int | None = None) -> int | None:
    """Send a text message; returns its id, or None when Telegram refuses (user blocked the bot...)."""
    try:
        message = await bot.send_message(chat_id, text, reply_markup=reply_markup, reply_parameters=quoting(reply_to))
        return message.message_id
    except TelegramError as exc:
        log.info("cannot send to chat %s: %s", chat_id, exc)
        return None
