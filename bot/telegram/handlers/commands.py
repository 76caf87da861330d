"""User commands and their buttons: /start (deep links, the sample photo), /help, /styles, /history,
/settings, /language, /cancel, /privacy."""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path

from telegram import InputMediaPhoto, Update
from telegram.error import TelegramError

from ... import retention, store
from ...i18n import N_, NAMES, negotiate
from ...models import User
from .. import keyboards, routes
from ..context import BotContext
from ..delivery import style_title
from .common import answer, current_user, mark, refuse, reply
from .intake import input_path, save_input
from .menu import show_presets
from .registry import args, command, help_lines, on

log = logging.getLogger(__name__)

SAMPLE_PHOTO = Path(__file__).resolve().parents[2] / "assets" / "sample.jpg"  # bot/assets
DEEP_LINK_PREFIX = "style_"


def help_text(context: BotContext, admin: bool = False) -> str:
    _ = context.tr
    steps = _(
        "Send me a photo and I'll repaint it in the style of a painting.\n\n"
        "1. Send a photo, an album, a video or a GIF (or an image file for full quality — HEIC works too).\n"
        "2. Pick a style, tap “Try all styles” to see them all on your photo, or “Any picture as the style” "
        "and send the picture whose style you like.\n"
        "3. The buttons under the result change the strength, keep the original colours, try another "
        "style, mix in a second one, send the full-resolution file or re-run it in high quality.")
    return steps + "\n\n" + _("Commands:") + "\n" + "\n".join(help_lines(_, admin))


@command("start", N_("how it works"))
async def cmd_start(update: Update, context: BotContext) -> None:
    _ = context.tr
    services = context.services
    name = update.effective_user.first_name if update.effective_user else ""
    link = (context.args or [""])[0]
    if link.startswith(DEEP_LINK_PREFIX):
        preset = services.stylizer.manifest.presets.get(link.removeprefix(DEEP_LINK_PREFIX)[:64])
        if preset is not None:
            async with services.sessions() as session:
                usable = preset.name in await store.usable_presets(session, [preset.name])
        if preset is None or not usable or preset.method not in services.methods:
            await reply(update, context, _("That style isn't available any more — send a photo to see the others."))
            return
        async with services.sessions() as session:
            user = await store.upsert_user(session, update.effective_user)  # type: ignore[arg-type]
            user.next_preset = preset.name
            await session.commit()
        await mark(update, context, "accepted", f"deep link {preset.name}")
        text = _("Hi {name}! Send me a photo and I'll paint it as “{style}”.", name=name, style=preset.title)
        if preset.thumbnail is not None and preset.thumbnail.is_file():
            data = await asyncio.to_thread(preset.thumbnail.read_bytes)
            await context.bot.send_photo(update.effective_chat.id, data, caption=text)  # type: ignore[union-attr]
        else:
            await reply(update, context, text)
        return
    markup = keyboards.start_keyboard(_) if SAMPLE_PHOTO.is_file() else None
    await reply(update, context, _("Hi {name}! 👋", name=name) + "\n\n" + help_text(context), markup)


@on(routes.SAMPLE)
async def cb_sample(update: Update, context: BotContext) -> None:
    """Show the sample photo as if the user had sent it, with the style menu under it."""
    services = context.services
    user_id = update.effective_user.id  # type: ignore[union-attr]
    await answer(update)
    data = await asyncio.to_thread(SAMPLE_PHOTO.read_bytes)
    sent = await context.bot.send_photo(update.effective_chat.id, data,  # type: ignore[union-attr]
                                        caption=context.tr("A sample photo: pick a style for it 👇"))
    photo = sent.photo[-1]
    path = input_path(services, user_id, "sample", "jpg")
    path.parent.mkdir(parents=True, exist_ok=True)
    await asyncio.to_thread(shutil.copyfile, SAMPLE_PHOTO, path)
    image = await save_input(services, user_id, photo.file_id, "sample", path, photo.width, photo.height,
                             message_id=sent.message_id)
    await mark(update, context, "accepted", "sample photo")
    await show_presets(update, context, image.id, quote=sent.message_id)


@command("help", N_("how it works and the commands"))
async def cmd_help(update: Update, context: BotContext) -> None:
    user = update.effective_user
    await reply(update, context, help_text(context, context.services.settings.is_admin(user.id if user else None)))


@command("styles", N_("gallery of the styles"))
async def cmd_styles(update: Update, context: BotContext) -> None:
    _ = context.tr
    services = context.services
    async with services.sessions() as session:
        presets = await store.listed_presets(session, services.methods)
    if not presets:
        await reply(update, context, _("No preset styles are installed yet. You can always use any picture as the "
                                       "style: send a photo and tap “🎨 Any picture as the style”."))
        return
    manifest = services.stylizer.manifest
    with_thumbs = [(row, manifest.presets[row.name].thumbnail) for row in presets
                   if row.name in manifest.presets and manifest.presets[row.name].thumbnail is not None
                   and manifest.presets[row.name].thumbnail.is_file()]  # type: ignore[union-attr]
    chat_id = update.effective_chat.id  # type: ignore[union-attr]
    known = services.thumbnail_ids
    for start in range(0, len(with_thumbs), 10):  # sendMediaGroup takes 2..10 items
        chunk = with_thumbs[start:start + 10]
        keys = [(str(p), p.stat().st_mtime) for _row, p in chunk]  # type: ignore[union-attr]
        # a thumbnail Telegram already has goes by its file_id: no upload
        media = [InputMediaPhoto(known.get(key) or await asyncio.to_thread(p.read_bytes),  # type: ignore[union-attr]
                                 caption=row.display_name or row.name)
                 for key, (row, p) in zip(keys, chunk, strict=True)]
        try:
            if len(media) == 1:
                sent = [await context.bot.send_photo(chat_id, media[0].media, caption=media[0].caption)]
            else:
                sent = list(await context.bot.send_media_group(chat_id, media))
        except TelegramError as exc:
            log.warning("gallery failed: %s", exc)
            break
        for key, message in zip(keys, sent, strict=False):
            if message.photo:
                known[key] = message.photo[-1].file_id
    lines = [f"• {row.display_name or row.name}" for row in presets]
    await reply(update, context, _("Styles:") + "\n" + "\n".join(lines) + "\n\n" + _("Send a photo to use one."))


@command("history", N_("your recent results"))
async def cmd_history(update: Update, context: BotContext) -> None:
    _ = context.tr
    services = context.services
    async with services.sessions() as session:
        jobs = await store.recent_results(session, update.effective_user.id, services.settings.history_size)  # type: ignore[union-attr]
    if not jobs:
        await reply(update, context, _("No results yet. Send me a photo to start!"))
        return
    titles = {job.id: style_title(context.services, job, _) for job in jobs}
    lines = [f"#{job.id} · {titles[job.id]} · {job.finished_at:%Y-%m-%d %H:%M} UTC" for job in jobs if job.finished_at]
    await reply(update, context, _("Your recent results (tap to try another style on the same photo):") + "\n"
                + "\n".join(lines), keyboards.history_keyboard(jobs, titles))


def _settings_view(context: BotContext, user: User) -> tuple[str, object]:
    _ = context.tr
    s = context.services.settings
    strength = user.strength or s.default_strength
    size = min(user.output_size or s.output_size, s.max_output_size)
    text = _("⚙ Your settings\nStrength: {strength}%\nOutput size: {size}px (long side)\nKeep original colours: "
             "{colours}", strength=round(100 * strength), size=size,
             colours=_("on") if user.preserve_color else _("off"))
    return text, keyboards.settings_keyboard(_, strength, size, bool(user.preserve_color), s.menu_sizes)


@command("settings", N_("strength, size, colours"))
async def cmd_settings(update: Update, context: BotContext) -> None:
    text, markup = _settings_view(context, await current_user(update, context))
    await reply(update, context, text, markup)


@on(routes.SETTINGS)
async def cb_settings(update: Update, context: BotContext) -> None:
    what, value = args(context)
    services = context.services
    async with services.sessions() as session:
        user = await store.upsert_user(session, update.effective_user)  # type: ignore[arg-type]
        if what == "s" and value.isdigit() and int(value) in keyboards.STRENGTHS:
            user.strength = int(value) / 100
        elif what == "z" and value.isdigit() and int(value) in services.settings.menu_sizes:
            user.output_size = int(value)
        elif what == "c":
            user.preserve_color = not user.preserve_color
        else:
            await refuse(update, context, "bad setting", context.tr("That option isn't available."))
            return
        await session.commit()
    text, markup = _settings_view(context, user)
    await answer(update, context.tr("Saved ✔"))
    await mark(update, context, "accepted", f"setting {what}={value}")
    try:
        await update.callback_query.edit_message_text(text, reply_markup=markup)  # type: ignore[union-attr, arg-type]
    except TelegramError as exc:
        log.debug("settings edit failed: %s", exc)


@command("language", N_("English or Russian"))
async def cmd_language(update: Update, context: BotContext) -> None:
    await reply(update, context, context.tr("Choose the language I speak with you:"),
                keyboards.language_keyboard(context.locale))


@on(routes.LANGUAGE)
async def cb_language(update: Update, context: BotContext) -> None:
    code = args(context)[0]
    if code not in NAMES:
        await refuse(update, context, "bad language", context.tr("That option isn't available."))
        return
    async with context.services.sessions() as session:
        user = await store.upsert_user(session, update.effective_user)  # type: ignore[arg-type]
        user.locale = code
        await session.commit()
    context.locale = negotiate(None, code)
    await answer(update, "✔")
    await mark(update, context, "accepted", f"language {code}")
    try:
        await update.callback_query.edit_message_text(  # type: ignore[union-attr]
            context.tr("Language: English. Send me a photo!"), reply_markup=keyboards.language_keyboard(code))
    except TelegramError as exc:
        log.debug("language edit failed: %s", exc)


@command("cancel", N_("cancel what is running"))
async def cmd_cancel(update: Update, context: BotContext) -> None:
    _ = context.tr
    services = context.services
    user_id = update.effective_user.id  # type: ignore[union-attr]
    async with services.sessions() as session:
        user = await session.get(User, user_id)
        waiting = user is not None and user.awaiting_image_id is not None
        if user is not None:
            user.awaiting_image_id = user.awaiting_method = user.awaiting_since = user.next_preset = None
            await session.commit()
        jobs = await store.active_jobs(session, user_id)
    cancelled = [job.id for job in jobs if await context.runner.cancel(job.id)]
    if cancelled:
        text = _.ngettext("✖ Cancelled {n} picture.", "✖ Cancelled {n} pictures.", len(cancelled))
    elif waiting:
        text = _("OK, no style picture then. Send me a photo whenever you like.")
    else:
        text = _("There's nothing to cancel.")
    await mark(update, context, "accepted", f"cancel {cancelled}")
    await reply(update, context, text)


def _privacy(context: BotContext) -> str:
    return context.tr(
        "What I store: your Telegram id, name and settings; the pictures you send (to run and re-run "
        "styles without downloading them again); the results; and a log of your requests. Nothing is "
        "shared with anyone. You can delete all of it at any time.")


@command("privacy", N_("what is stored; delete my data"))
async def cmd_privacy(update: Update, context: BotContext) -> None:
    await reply(update, context, _privacy(context), keyboards.privacy_keyboard(context.tr))


@on(routes.PRIVACY)
async def cb_privacy(update: Update, context: BotContext) -> None:
    _ = context.tr
    what = args(context)[0]
    services = context.services
    query = update.callback_query
    assert query is not None
    await answer(update)
    if what == "ask":
        await query.edit_message_text(_privacy(context) + "\n\n" + _("Delete everything I have about you? "
                                                                     "This cannot be undone."),
                                      reply_markup=keyboards.privacy_keyboard(_, confirm=True))
        return
    if what != "yes":
        await query.edit_message_text(_privacy(context) + "\n\n" + _("Nothing was deleted."))
        return
    user_id = update.effective_user.id  # type: ignore[union-attr]
    async with services.sessions() as session:
        jobs = await store.active_jobs(session, user_id)
    for job in jobs:
        await context.runner.cancel(job.id)
    async with services.sessions() as session:
        await store.delete_user_data(session, user_id)
        await session.commit()
    # their folders on this machine (every input and result of theirs lies there); other machines' sweeps find
    # theirs orphaned
    removed = await asyncio.to_thread(retention.forget_user_files, services.settings, user_id)
    log.info("deleted the data of user %s (%d files)", user_id, removed)
    await query.edit_message_text(_("🗑 Done: I deleted your settings, pictures, results and history."))

