"""The style menu's buttons and the result's buttons: each creates a persisted job (or sends a file).

Menu: a preset, "try all styles" (a contact sheet), any picture as the style, high quality. Result:
strength, keep colours, another style, brush size (styles from pictures), mixing in a second style,
the full-resolution file (the photo's own size, up to ``MAX_OUTPUT_SIZE``), a high-quality re-run.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from telegram import ForceReply, Update

from ... import store
from ...jobs import JobSpec
from ...models import Job, JobKind, PresetRow, StoredImage, utcnow
from .. import keyboards, routes
from ..context import BotContext
from .common import answer, current_user, inputs_of, mark, refuse, reply, submit, user_params
from .menu import show_presets
from .registry import args, on

log = logging.getLogger(__name__)


async def _own_image(update: Update, context: BotContext, image_id: int) -> StoredImage | None:
    async with context.services.sessions() as session:
        image = await store.user_image(session, update.effective_user.id, image_id)  # type: ignore[union-attr]
    if image is None:  # its file may be on another machine: the worker fetches it again by file_id
        await refuse(update, context, "image gone",
                     context.tr("I don't have that photo any more — please send it again."))
        return None
    return image


@on(routes.NOOP)
async def cb_noop(update: Update, context: BotContext) -> None:
    await answer(update)


@on(routes.PAGE)
async def cb_page(update: Update, context: BotContext) -> None:
    image_id, page = map(int, args(context))
    if await _own_image(update, context, image_id) is None:  # another user's menu shows nothing of theirs
        return
    await answer(update)
    await show_presets(update, context, image_id, page, edit=True)


@on(routes.PRESET)
async def cb_preset(update: Update, context: BotContext) -> None:
    services = context.services
    image_id, preset_id = map(int, args(context))
    image = await _own_image(update, context, image_id)
    if image is None:
        return
    async with services.sessions() as session:
        preset = await session.get(PresetRow, preset_id)
    if preset is None or not (preset.enabled and preset.available) or preset.method not in services.methods:
        await refuse(update, context, "preset unavailable",
                     context.tr("That style is no longer available — please pick another."))
        return
    user = await current_user(update, context)
    spec = JobSpec.over(await inputs_of(context, image), user_id=user.id,
                        chat_id=update.effective_chat.id,  # type: ignore[union-attr]
                        preset=preset.name, method=preset.method, params=user_params(services, user, preset.method),
                        reply_to=image.message_id)
    await submit(update, context, spec)


@on(routes.ALL_STYLES)
async def cb_all_styles(update: Update, context: BotContext) -> None:
    """Every enabled preset on one sheet, small: CIN presets share one net, so they run as one batch."""
    services = context.services
    image = await _own_image(update, context, int(args(context)[0]))
    if image is None:
        return
    if image.is_clip:
        await refuse(update, context, "all styles for a clip", context.tr("“All styles” works on photos."))
        return
    async with services.sessions() as session:
        presets = await store.listed_presets(session, services.methods)
    if not presets:
        await refuse(update, context, "no presets", context.tr("Sorry, no styles are available right now."))
        return
    first = presets[0]
    spec = JobSpec(user_id=image.user_id, chat_id=update.effective_chat.id, content_image_id=image.id,  # type: ignore[union-attr]
                   method=first.method, kind=JobKind.SHEET, reply_to=image.message_id,
                   params={"presets": [p.name for p in presets], "size": services.settings.sheet_size})
    await submit(update, context, spec)


async def _await_style(update: Update, context: BotContext, image_id: int, method: str | None, text: str) -> None:
    if method is None:
        await refuse(update, context, "method unavailable", context.tr("Sorry, that mode isn't available right now."))
        return
    image = await _own_image(update, context, image_id)
    if image is None:
        return
    async with context.services.sessions() as session:
        user = await store.upsert_user(session, update.effective_user)  # type: ignore[arg-type]
        user.awaiting_image_id, user.awaiting_method, user.awaiting_since = image.id, method, utcnow()
        await session.commit()
    await answer(update)
    await mark(update, context, "accepted", f"awaiting style ({method})")
    await reply(update, context, text,
                ForceReply(selective=True, input_field_placeholder=context.tr("Send the style picture")))


@on(routes.OWN_STYLE)
async def cb_own_style(update: Update, context: BotContext) -> None:
    minutes = round(context.services.settings.style_wait_minutes)
    await _await_style(update, context, int(args(context)[0]), context.services.own_style_method(),
                       context.tr("🎨 Now send me the picture whose style you like (a painting, a pattern, a photo, "
                                  "anything) within {minutes} minutes. /cancel to stop.", minutes=minutes))


@on(routes.HIGH_QUALITY)
async def cb_high_quality(update: Update, context: BotContext) -> None:
    image = await _own_image(update, context, int(args(context)[0]))  # the owner first, then anything of it
    if image is None:
        return
    if image.is_clip or image.album_id is not None:
        await refuse(update, context, "hq for a clip or album",
                     context.tr("High quality mode works on one photo at a time — pick a style instead."))
        return
    await _await_style(update, context, image.id, context.services.hq_method,
                       context.tr("✨ High quality mode: send me the style picture. This takes a few minutes; "
                                  "I'll show the progress. /cancel to stop."))


@on(routes.CANCEL_JOB)
async def cb_cancel_job(update: Update, context: BotContext) -> None:
    async with context.services.sessions() as session:
        job = await store.user_job(session, update.effective_user.id, int(args(context)[0]))  # type: ignore[union-attr]
    if job is None:
        await answer(update, context.tr("Not found"))
        return
    cancelled = await context.runner.cancel(job.id)
    await mark(update, context, "accepted" if cancelled else "rejected", "cancel job", job_id=job.id)
    await answer(update, context.tr("Cancelling…") if cancelled else context.tr("It has already finished."))


# -- variants of a result ------------------------------------------------------------------------

async def _parent(update: Update, context: BotContext) -> Job | None:
    async with context.services.sessions() as session:
        job = await store.user_job(session, update.effective_user.id, int(args(context)[0]))  # type: ignore[union-attr]
    if job is None:
        await refuse(update, context, "job gone",
                     context.tr("I don't have that result any more — please send the photo again."))
    return job


async def _variant(update: Update, context: BotContext, parent: Job, **changes) -> None:
    method = changes.pop("method", parent.method)
    kind = changes.pop("kind", parent.kind if parent.kind != JobKind.SHEET else JobKind.STYLIZE)
    content_id = changes.pop("content_image_id", parent.content_image_id)
    params = {**{k: v for k, v in parent.params.items() if k != "as_document"}, **changes}
    spec = JobSpec(user_id=parent.user_id, chat_id=update.effective_chat.id,  # type: ignore[union-attr]
                   content_image_id=content_id, style_image_id=parent.style_image_id,
                   preset=parent.preset, method=method, params=params, parent_id=parent.id, kind=kind,
                   inputs=parent.inputs if kind == JobKind.ALBUM else None, reply_to=parent.reply_to)
    await submit(update, context, spec)


@on(routes.STRENGTH)
async def cb_strength(update: Update, context: BotContext) -> None:
    parent = await _parent(update, context)
    if parent is None:
        return
    pct = int(args(context)[1])
    strength = min(max(pct, 1), 100) / 100
    if abs(float(parent.params.get("strength", 1.0)) - strength) < 1e-6:
        await answer(update, context.tr("This one is already at {percent}%", percent=pct))
        return
    await _variant(update, context, parent, strength=strength)


@on(routes.COLOURS)
async def cb_colours(update: Update, context: BotContext) -> None:
    parent = await _parent(update, context)
    if parent is not None:
        await _variant(update, context, parent, preserve_color=not parent.params.get("preserve_color"))


@on(routes.BRUSH)
async def cb_brush(update: Update, context: BotContext) -> None:
    parent = await _parent(update, context)
    if parent is None:
        return
    brush = args(context)[1]
    if brush not in keyboards.BRUSHES or not context.services.takes_pictures(parent.method):
        await refuse(update, context, "bad brush", context.tr("That option isn't available."))
        return
    if parent.params.get("brush", "medium") == brush:
        await answer(update, context.tr("This one already has that brush"))
        return
    await _variant(update, context, parent, brush=brush)


@on(routes.ANOTHER)
async def cb_another(update: Update, context: BotContext) -> None:
    parent = await _parent(update, context)
    if parent is None:
        return
    await answer(update)
    await mark(update, context, "accepted", "another style")
    await show_presets(update, context, parent.content_image_id, quote=parent.reply_to)


def _mixable(context: BotContext, parent: Job, presets: list[PresetRow]) -> list[PresetRow]:
    """Presets that can mix into ``parent``: of the same method for presets (CIN rows mix), or any preset
    with a picture when the method takes pictures (an own style)."""
    services = context.services
    if services.takes_pictures(parent.method):
        return [p for p in presets if p.name != parent.preset and services.preset_style_image(p.name) is not None]
    info = services.methods.get(parent.method)
    if info is None or not info.mixes_presets:
        return []
    return [p for p in presets if p.method == parent.method and p.name != parent.preset]


@on(routes.MIX_MENU)
async def cb_mix_menu(update: Update, context: BotContext) -> None:
    parent = await _parent(update, context)
    if parent is None:
        return
    async with context.services.sessions() as session:
        presets = await store.listed_presets(session, context.services.methods)
    candidates = _mixable(context, parent, presets)
    if not candidates:
        await refuse(update, context, "nothing to mix", context.tr("No other style can be mixed into this one."))
        return
    await answer(update)
    await mark(update, context, "accepted", "mix menu")
    await reply(update, context, context.tr("Mix a second style into this result. The numbers are the shares "
                                            "of this style and the new one:"),
                keyboards.mix_keyboard(context.tr, parent.id, candidates))


@on(routes.MIX)
async def cb_mix(update: Update, context: BotContext) -> None:
    parent = await _parent(update, context)
    if parent is None:
        return
    _job, preset_id, share = map(int, args(context))
    async with context.services.sessions() as session:
        preset = await session.get(PresetRow, preset_id)
        presets = await store.listed_presets(session, context.services.methods)
    if preset is None or share not in keyboards.MIX_SHARES or preset.id not in {p.id for p in _mixable(
            context, parent, presets)}:
        await refuse(update, context, "bad mix", context.tr("That style can't be mixed into this one."))
        return
    mix: dict = {"preset": preset.name, "share": share / 100}
    if context.services.takes_pictures(parent.method):
        mix["style_file"] = str(context.services.preset_style_image(preset.name))
    await _variant(update, context, parent, mix=mix)


@on(routes.FULL_RES)
async def cb_full_res(update: Update, context: BotContext) -> None:
    """The lossless PNG at the photo's own size (up to MAX_OUTPUT_SIZE): re-rendered (tiled when large)
    unless the result already has that size."""
    services = context.services
    _ = context.tr
    parent = await _parent(update, context)
    if parent is None:
        return
    index = int(args(context)[1])
    inputs = parent.inputs or [parent.content_image_id]
    if index >= len(inputs):
        await refuse(update, context, "bad album index", _("That option isn't available."))
        return
    async with services.sessions() as session:
        content = await session.get(StoredImage, inputs[index])
    if content is None or content.is_clip:
        await refuse(update, context, "full resolution of a clip", _("Clips come back at their full size already."))
        return
    full = min(max(content.width, content.height), services.settings.max_output_size)
    path = Path(parent.result_path) if parent.result_path else None
    here = path is not None and path.is_file()  # not when a worker on another machine made it
    if full > int(parent.params.get("size", 0)) or parent.kind == JobKind.ALBUM or not here:
        await _variant(update, context, parent, size=full, as_document=True, kind=JobKind.STYLIZE,
                       content_image_id=content.id)
        return
    assert path is not None
    await answer(update, _("Sending the file…"))
    await mark(update, context, "accepted", "full resolution", job_id=parent.id)
    data = await asyncio.to_thread(path.read_bytes)
    await context.bot.send_document(update.effective_chat.id, document=data,  # type: ignore[union-attr]
                                    filename=f"stylized_{parent.id}.png")


@on(routes.HQ_RERUN)
async def cb_high_quality_rerun(update: Update, context: BotContext) -> None:
    services = context.services
    _ = context.tr
    parent = await _parent(update, context)
    if parent is None:
        return
    if services.hq_method is None:
        await refuse(update, context, "method unavailable", _("Sorry, high quality mode isn't available right now."))
        return
    async with services.sessions() as session:
        image = await session.get(StoredImage, parent.content_image_id)
    if image is None or image.is_clip or parent.kind != JobKind.STYLIZE:
        await refuse(update, context, "hq for a clip", _("High quality mode is for single photos."))
        return
    extra: dict = {}
    if parent.style_image_id is None:
        picture = services.preset_style_image(parent.preset)
        if picture is None:
            await refuse(update, context, "no style image",
                         _("Sorry, this style has no picture for high quality mode."))
            return
        extra["style_file"] = str(picture)
    await _variant(update, context, parent, method=services.hq_method, **extra)


async def cb_unknown(update: Update, context: BotContext) -> None:
    """A button no route matches (an old keyboard from a previous version): answer and record it."""
    await answer(update)
    await mark(update, context, "rejected", f"unknown button {update.callback_query.data!r}")  # type: ignore[union-attr]

