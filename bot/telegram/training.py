"""The Telegram side of admin preset training (:class:`bot.training.TrainingChat`): the run's status message with
a Cancel button while it runs, the sample with Publish / Discard, alerts to the admins."""

from __future__ import annotations

import logging

from telegram import Bot
from telegram.error import TelegramError

from ..i18n import translator
from ..models import TrainingRun
from ..services import Services
from .keyboards import training_keyboard
from .tg import safe_edit, safe_send

log = logging.getLogger(__name__)


class ChatTrainingReports:
    def __init__(self, services: Services, bot: Bot) -> None:
        self.services, self.bot = services, bot

    async def status(self, run: TrainingRun, text: str, running: bool) -> None:
        markup = training_keyboard(translator(run.params.get("locale")), run.id, False) if running else None
        if run.status_message_id:
            await safe_edit(self.bot, run.chat_id, run.status_message_id, text, markup)
        elif not running:
            await safe_send(self.bot, run.chat_id, text)

    async def sample(self, run: TrainingRun, picture: bytes, caption: str) -> None:
        _ = translator(run.params.get("locale"))
        try:
            await self.bot.send_photo(run.chat_id, photo=picture, caption=caption,
                                      reply_markup=training_keyboard(_, run.id, done=True))
        except TelegramError as exc:
            log.warning("training sample not delivered: %s", exc)

    async def alert(self, text: str) -> None:
        await self.services.alerts.send(self.bot, text)
