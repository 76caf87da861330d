"""The style menu under a photo, album or clip: presets (paged), all styles, any picture, high quality."""

from __future__ import annotations

import logging

from telegram import Update
from telegram.error import TelegramError

from ... import store
from ...i18n import Translator
from ...models import MediaKind, StoredImage
from ...services import Services
from .. import keyboards
from ..context import BotContext
from .common import reply

log = logging.getLogger(__name__)


async def menu(services: Services, _: Translator, image_id: int, page: int = 0):
    """(text, keyboard) of the style menu for ``image_id`` (the first photo of an album stands for it)."""
    async with services.sessions() as session:
        presets = await store.listed_presets(session, services.methods)
        content = await session.get(StoredImage, image_id)
        count = len(await store.album_images(session, content.album_id)) if content and content.album_id else 1
    clip = content is not None and content.is_clip
    markup = keyboards.presets_keyboard(_, image_id, presets, page, services.settings.presets_per_page,
                                        own_style=services.own_style_method() is not None,
                                        hq=services.hq_method is not None and not clip and count == 1,
                                        all_styles=not clip, studio=services.settings.studio_url)
    if presets:
        if count > 1:
            text = _.ngettext("Pick a style for this photo 🎨", "Pick a style for these {n} photos 🎨", count)
        elif clip:
            text = _("Pick a style for this {noun} 🎨", noun=_(MediaKind.NOUNS[content.kind]))  # type: ignore[union-attr]
        else:
            text = _("Pick a style for this photo 🎨 (see them all with /styles)")
    elif services.own_style_method():
        text = _("No preset styles are installed yet — tap “Any picture as the style” and send a picture "
                 "to copy the style of.")
    else:
        text = _("Sorry, no styles are available right now. Please try again later.")
    return text, markup


async def show_presets(update: Update, context: BotContext, image_id: int, page: int = 0, edit: bool = False,
                       quote: int | None = None) -> None:
    text, markup = await menu(context.services, context.tr, image_id, page)
    if edit and update.callback_query is not None:
        try:
            await update.callback_query.edit_message_reply_markup(markup)
            return
        except TelegramError as exc:
            log.debug("keyboard edit failed (%s); sending a new menu", exc)
    await reply(update, context, text, markup, quote=quote)
