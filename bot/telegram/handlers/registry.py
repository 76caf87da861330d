"""The handler tables, filled where each handler is defined (``@command``, ``@on``).

One command table feeds handler registration, the command menus (per language, and the admins' own
menu) and /help; one route table maps each callback :class:`~bot.telegram.routes.Route` to its handler.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import wraps

from telegram import Update

from ...i18n import Translator
from ..context import BotContext
from ..routes import Route
from .common import refuse

Handler = Callable[[Update, BotContext], Awaitable[None]]


@dataclass(frozen=True)
class Command:
    name: str
    description: str  # an N_ msgid: translated for each menu
    callback: Handler
    admin: bool = False


COMMANDS: list[Command] = []
ROUTES: list[tuple[Route, Handler]] = []


def admin_only(func: Handler) -> Handler:
    """Non-admins get a polite refusal and nothing runs; the refusal is recorded like any other."""

    @wraps(func)
    async def wrapper(update: Update, context: BotContext) -> None:
        user = update.effective_user
        if not context.services.settings.is_admin(user.id if user else None):
            await refuse(update, context, "not an admin", context.tr("Sorry, that is only for the bot's admins. 🙂"))
            return
        await func(update, context)

    return wrapper


def command(name: str, description: str, *, admin: bool = False) -> Callable[[Handler], Handler]:
    def register(func: Handler) -> Handler:
        callback = admin_only(func) if admin else func
        COMMANDS.append(Command(name, description, callback, admin))
        return callback

    return register


def on(route: Route, *, admin: bool = False) -> Callable[[Handler], Handler]:
    def register(func: Handler) -> Handler:
        callback = admin_only(func) if admin else func
        ROUTES.append((route, callback))
        return callback

    return register


def args(context: BotContext) -> tuple[str, ...]:
    """The matched route's arguments (``CallbackQueryHandler`` put the match on the context)."""
    return context.match.groups() if context.match is not None else ()


def help_lines(_: Translator, admin: bool = False) -> list[str]:
    return [f"/{c.name} – {_(c.description)}" for c in COMMANDS if admin or not c.admin]
