"""Inline mode: ``@bot`` in any chat lists the user's recent results; ``#ID`` (the Share button) one."""

from __future__ import annotations

import re

from telegram import InlineQueryResultCachedPhoto, Update

from ... import store
from ..context import BotContext
from ..routes import INT

#: how many results an empty inline query offers
RECENT = 20
#: the Share button's query: ``#`` and a job id (ASCII digits, bounded as route arguments are)
SHARED = re.compile(r"\A#" + INT + r"\Z")


async def on_inline_query(update: Update, context: BotContext) -> None:
    query = update.inline_query
    assert query is not None
    shared = SHARED.match(query.query.strip())
    job_id = int(shared.group(1)) if shared else None
    services = context.services
    async with services.sessions() as session:
        jobs = await store.shareable(session, query.from_user.id, RECENT, job_id)
    _ = context.tr
    results = [InlineQueryResultCachedPhoto(
        id=str(job.id), photo_file_id=job.result_file_id,  # type: ignore[arg-type]
        title=services.preset_title(job.preset) if job.preset else _("your style"),
        caption=_("Painted by @{bot} in “{style}”", bot=context.bot.username,
                  style=services.preset_title(job.preset) if job.preset else _("your style")))
        for job in jobs]
    await query.answer(results, cache_time=0, is_personal=True)
