"""The typed ``CallbackContext`` every handler receives (``ContextTypes(context=BotContext)``).

It carries the update's language (set by the first handler group, from the user's /language choice or
their Telegram app) and typed access to what ``bot_data`` holds, so handlers need neither lookups by
string key nor ``type: ignore``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from telegram.ext import Application, CallbackContext, ContextTypes, ExtBot

from .. import i18n
from ..i18n import Translator
from ..services import Services

if TYPE_CHECKING:
    from ..jobs import JobRunner
    from ..training import Trainer


class BotContext(CallbackContext[ExtBot, dict, dict, dict]):
    def __init__(self, application: Application, chat_id: int | None = None, user_id: int | None = None) -> None:
        super().__init__(application, chat_id, user_id)
        self.locale = i18n.DEFAULT

    @property
    def services(self) -> Services:
        return self.bot_data["services"]

    @property
    def runner(self) -> JobRunner:
        return self.bot_data["runner"]

    @property
    def trainer(self) -> Trainer | None:
        """This process's trainer; None on a webhook front end (a worker trains)."""
        return self.bot_data.get("trainer")

    @property
    def tr(self) -> Translator:
        """``_ = context.tr`` then ``_("text")``: the update's language."""
        return i18n.translator(self.locale)


CONTEXT_TYPES = ContextTypes(context=BotContext)
