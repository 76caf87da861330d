"""Every update handler, registered from the tables in :mod:`.registry` by :func:`register`.

Modules by concern: :mod:`.intake` (pictures and clips in), :mod:`.results` (style menu and result
buttons), :mod:`.commands` (user commands), :mod:`.admin`, :mod:`.inline` (sharing).
"""

from __future__ import annotations

import logging

from telegram import BotCommand, BotCommandScopeChat, MenuButtonWebApp, Update, WebAppInfo
from telegram.error import TelegramError
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    InlineQueryHandler,
    MessageHandler,
    TypeHandler,
    filters,
)

from ... import i18n
from ...config import Settings
from . import admin, commands, inline, intake, results
from .common import on_error, record_update
from .registry import COMMANDS, ROUTES

log = logging.getLogger(__name__)

#: image files Telegram may label application/octet-stream (HEIC from some clients, AVIF)
IMAGE_FILES = filters.Document.IMAGE | filters.Document.FileExtension("heic") | \
    filters.Document.FileExtension("heif") | filters.Document.FileExtension("avif")


def register(app: Application) -> None:
    app.add_handler(TypeHandler(Update, record_update), group=-1)
    for cmd in COMMANDS:
        app.add_handler(CommandHandler(cmd.name, cmd.callback))
    for route, callback in ROUTES:
        app.add_handler(CallbackQueryHandler(callback, pattern=route.pattern))
    app.add_handler(CallbackQueryHandler(results.cb_unknown))
    app.add_handler(InlineQueryHandler(inline.on_inline_query))
    train_caption = filters.CaptionRegex(r"^/train(@\w+)?(\s|$)")
    app.add_handler(MessageHandler((filters.PHOTO | IMAGE_FILES) & train_caption, admin.on_train_caption))
    app.add_handler(MessageHandler(filters.COMMAND, intake.on_unknown_command))
    app.add_handler(MessageHandler(filters.PHOTO, intake.on_photo))
    app.add_handler(MessageHandler(filters.Sticker.ALL, intake.bad_input("sticker")))
    app.add_handler(MessageHandler(filters.ANIMATION | filters.VIDEO | filters.VIDEO_NOTE | filters.Document.VIDEO,
                                   intake.on_clip))
    app.add_handler(MessageHandler(filters.VOICE | filters.AUDIO, intake.bad_input("voice")))
    app.add_handler(MessageHandler(IMAGE_FILES, intake.on_image_document))
    app.add_handler(MessageHandler(filters.Document.ALL, intake.bad_input("document")))
    app.add_handler(MessageHandler(filters.TEXT, intake.on_text))
    app.add_handler(MessageHandler(filters.ALL, intake.bad_input("other")))
    app.add_error_handler(on_error)


async def publish_menus(app: Application, settings: Settings) -> None:
    """Command menus and descriptions per language, and the admins' menu (their commands too) per admin."""
    bot = app.bot
    for locale in i18n.LOCALES:
        _ = i18n.translator(locale)
        code = None if locale == i18n.DEFAULT else locale
        user_menu = [BotCommand(c.name, _(c.description)) for c in COMMANDS if not c.admin]
        admin_menu = [BotCommand(c.name, _(c.description)) for c in COMMANDS]
        try:
            await bot.set_my_commands(user_menu, language_code=code)
            await bot.set_my_description(_("I repaint your photos, albums, videos and GIFs in the style of famous "
                                           "paintings — or of any picture you send. Send me a photo to start!"),
                                         language_code=code)
            await bot.set_my_short_description(_("Turns your photos and videos into art."), language_code=code)
            for admin_id in settings.admin_ids:
                await bot.set_my_commands(admin_menu, scope=BotCommandScopeChat(admin_id), language_code=code)
            if settings.studio_url and code is None:  # the studio as the chat's menu button (a Mini App)
                button = MenuButtonWebApp(_("Studio"), WebAppInfo(settings.studio_url))
                await bot.set_chat_menu_button(menu_button=button)
        except TelegramError as exc:  # cosmetic; a self-hosted or fake API may not support it
            log.info("publishing the command menus failed: %s", exc)


__all__ = ["commands", "publish_menus", "register"]
