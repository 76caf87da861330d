"""Admin commands (ids in ADMIN_IDS): /train, /presets, /stats and their buttons.

Registered with ``admin=True``: non-admins get a polite refusal and nothing runs. These commands
also form the admins' own command menu (``BotCommandScopeChat``).
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from collections import defaultdict
from pathlib import Path

from sqlalchemy import func, select
from telegram import Update
from telegram.error import TelegramError

from ... import apikeys, blobs, store, trained
from ...i18n import N_
from ...models import Job, JobStatus, PresetRow, TrainingRun, User, utcnow
from .. import keyboards, routes
from ..context import BotContext
from ..tg import safe_send
from .common import answer, mark, refuse, reply
from .intake import intake
from .registry import args, command, on

log = logging.getLogger(__name__)

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_]{1,39}$")
TRAINABLE = ("cin", "johnson")


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (no numpy needed for a handful of numbers)."""
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[index]


@command("train", N_("train a new preset from a picture"), admin=True)
async def cmd_train(update: Update, context: BotContext) -> None:
    _ = context.tr
    services = context.services
    message = update.effective_message
    assert message is not None
    if message.caption:  # the style picture itself, captioned "/train NAME [method]"
        words, source = [a.lower() for a in message.caption.split()[1:]], message
    else:  # "/train NAME [method]" as a reply to the style picture
        words, source = [a.lower() for a in (context.args or [])], message.reply_to_message
    usage = _("Reply to a style picture with /train NAME [cin|johnson] (or send the picture with that caption), "
              "e.g. /train sunflowers (NAME: 2–40 lowercase letters, digits or _).")
    if not words or not NAME_RE.match(words[0]) or (len(words) > 1 and words[1] not in TRAINABLE) or len(words) > 2:
        await refuse(update, context, "bad /train arguments", usage)
        return
    name, method = words[0], (words[1] if len(words) > 1 else "cin")
    file = None
    if source is not None and source.photo:
        file = source.photo[-1]
    elif source is not None and source.document and (source.document.mime_type or "").startswith("image/"):
        file = source.document
    if file is None:
        await refuse(update, context, "/train without a picture", usage)
        return
    if name in services.stylizer.manifest.presets:
        await refuse(update, context, "preset exists",
                     _("A preset named “{name}” already exists. Pick another name (or delete it in /presets).",
                       name=name))
        return
    local = context.runner.local_workers  # else a worker trains it, and reports its own lack of photos
    if local and (not services.settings.train_content_dir or not services.settings.train_content_dir.is_dir()):
        await refuse(update, context, "no training data",
                     _("TRAIN_CONTENT_DIR is not set to a folder of photos, so I can't train presets here."))
        return
    image = await intake(update, context, file.file_id, file.file_unique_id, file.file_size)
    if image is None:
        return
    data = await asyncio.to_thread(Path(image.path).read_bytes)
    async with services.sessions() as session:
        # the picture as a blob: the worker that trains it is rarely this machine
        style = await blobs.put(session, data, "application/octet-stream", None)
        run = TrainingRun(admin_id=update.effective_user.id, chat_id=update.effective_chat.id,  # type: ignore[union-attr]
                          name=name, method=method, style_path=f"{name}{Path(image.path).suffix}",
                          style_blob_id=style.id, status="queued",
                          params={"display_name": name.replace("_", " ").title(), "locale": context.locale,
                                  "steps": services.settings.train_steps, "size": services.settings.train_size},
                          created_at=utcnow())
        session.add(run)
        await session.commit()
        message_id = await safe_send(context.bot, run.chat_id,
                                     _("🧑‍🎨 Training “{name}” ({method}) is queued…", name=name, method=method),
                                     keyboards.training_keyboard(_, run.id, done=False))
        run.status_message_id = message_id
        await session.commit()
    await mark(update, context, "accepted", f"train {name} {method}")
    if context.trainer is not None:  # this process trains: look now (a worker looks every few seconds)
        context.trainer.wake()


#: the style picture sent with the caption "/train NAME" reaches the bot as a message, not a command
on_train_caption = cmd_train


def _presets_text(context: BotContext, rows: list[PresetRow]) -> str:
    if not rows:
        return context.tr("No presets installed.")
    lines = [f"{'✅' if r.enabled else '🚫'} {r.name} · {r.method} · {r.origin}" for r in rows]
    return context.tr("Presets (tap to enable/disable, 🗑 deletes a trained one):") + "\n" + "\n".join(lines)


@command("presets", N_("enable, disable or delete presets"), admin=True)
async def cmd_presets(update: Update, context: BotContext) -> None:
    async with context.services.sessions() as session:
        rows = await store.all_presets(session)
    await reply(update, context, _presets_text(context, rows), keyboards.admin_presets_keyboard(rows) if rows else None)


@on(routes.ADMIN_PRESET, admin=True)
async def cb_admin_presets(update: Update, context: BotContext) -> None:
    _ = context.tr
    action, preset_id = args(context)
    services = context.services
    async with services.sessions() as session:
        row = await session.get(PresetRow, int(preset_id))
        if row is None:
            await answer(update, _("Not found"))
            return
        name = row.name
        if action == "t":
            row.enabled = not row.enabled
            await session.commit()
            note = _("{name} enabled", name=name) if row.enabled else _("{name} disabled", name=name)
        elif action == "x" and row.origin == "trained":
            note = _("{name} deleted", name=name)
        else:
            await answer(update, _("Shipped presets can only be disabled"))
            return
    if action == "x":
        async with services.sessions() as session:
            await trained.delete(session, name)
            await session.commit()
        await services.reload_presets()  # here at once; every other process at its next look
    await mark(update, context, "accepted", f"preset {name} {action}")
    await answer(update, note)
    async with services.sessions() as session:
        rows = await store.all_presets(session)
    try:
        await update.callback_query.edit_message_text(  # type: ignore[union-attr]
            _presets_text(context, rows), reply_markup=keyboards.admin_presets_keyboard(rows) if rows else None)
    except TelegramError as exc:
        log.debug("presets edit failed: %s", exc)


async def _decide(update: Update, context: BotContext, publish: bool) -> None:
    """Publish or discard a trained draft; the sample's caption says what happened."""
    _ = context.tr
    run_id = int(args(context)[0])
    async with context.services.sessions() as session:
        run = await session.get(TrainingRun, run_id)
        if run is None or run.status != "done" or not run.draft:
            text = (_("This draft can't be published (already published, discarded or failed).") if publish
                    else _("Nothing to discard."))
        elif publish:
            preset = await trained.publish(session, run.draft)
            if preset is None:
                text = _("A preset named “{name}” already exists. Pick another name (or delete it in /presets).",
                         name=run.name)
            else:
                run.status = "published"
                text = _("✅ “{title}” is live for everyone.", title=preset.title)
        else:
            await trained.discard(session, run.draft)
            run.status = "discarded"
            text = _("🗑 Discarded the draft “{title}”.", title=trained.draft_preset(run.draft).title)
        await session.commit()
    if publish and run is not None and run.status == "published":
        await context.services.reload_presets()  # here at once; every other process at its next look
    await answer(update)
    await mark(update, context, "accepted", f"{'publish' if publish else 'discard'} run {run_id}")
    await _edit_caption(update, text)


@on(routes.PUBLISH, admin=True)
async def cb_publish(update: Update, context: BotContext) -> None:
    await _decide(update, context, publish=True)


@on(routes.DISCARD, admin=True)
async def cb_discard(update: Update, context: BotContext) -> None:
    await _decide(update, context, publish=False)


@on(routes.CANCEL_TRAINING, admin=True)
async def cb_cancel_training(update: Update, context: BotContext) -> None:
    run_id = args(context)[0]
    async with context.services.sessions() as session:
        outcome = await trained.request_cancel(session, int(run_id))  # its trainer, wherever, stops at its next beat
    await mark(update, context, "accepted", f"cancel training {run_id}")
    await answer(update, context.tr("Cancelling…") if outcome else context.tr("Not running"))
    if outcome == "cancelled":  # it was still queued: nobody else will say so
        try:
            await update.callback_query.edit_message_text(  # type: ignore[union-attr]
                context.tr("✖ Training cancelled."), reply_markup=None)
        except TelegramError as exc:
            log.debug("status edit failed: %s", exc)


async def _edit_caption(update: Update, text: str) -> None:
    query = update.callback_query
    try:
        await query.edit_message_caption(text, reply_markup=None)  # type: ignore[union-attr]
    except TelegramError as exc:
        log.debug("caption edit failed (%s)", exc)
        await query.message.reply_text(text)  # type: ignore[union-attr]


@command("stats", N_("users, queue, latency"), admin=True)
async def cmd_stats(update: Update, context: BotContext) -> None:
    services = context.services
    async with services.sessions() as session:
        users = await session.scalar(select(func.count()).select_from(User)) or 0
        by_status = dict((await session.execute(select(Job.status, func.count()).group_by(Job.status))).all())
        done = (await session.execute(
            select(Job.method, Job.kind, Job.queued_at, Job.finished_at, Job.timings)
            .where(Job.status == JobStatus.DONE, Job.finished_at.is_not(None))
            .order_by(Job.id.desc()).limit(2000))).all()
        training = dict((await session.execute(
            select(TrainingRun.status, func.count()).group_by(TrainingRun.status))).all())
    latency: dict[str, list[float]] = defaultdict(list)
    run_time: dict[str, list[float]] = defaultdict(list)
    for method, kind, queued, finished, timings in done:
        key = method if kind == "stylize" else f"{method} {kind}"
        latency[key].append((finished - queued).total_seconds())
        if timings and "run" in timings:
            run_time[key].append(float(timings["run"]))
    runner = context.runner
    lines = [
        f"👥 Users: {users}",
        "🧾 Jobs: " + (", ".join(f"{k} {v}" for k, v in sorted(by_status.items())) or "none"),
        f"⏳ Queue: {by_status.get(JobStatus.QUEUED, 0)} waiting, {runner.running} running",
        f"🖥 Device: {services.device}, workers: {runner.worker_count}",
        f"🎨 Methods: {', '.join(services.methods) or 'none'}; presets: {len(services.stylizer.manifest.presets)}",
    ]
    if training:
        lines.append("🧑‍🎨 Training runs: " + ", ".join(f"{k} {v}" for k, v in sorted(training.items())))
    if latency:
        lines.append("⏱ Latency (queued → delivered; stylize only), p50 / p95:")
        for key, values in sorted(latency.items()):
            runs = run_time.get(key) or [0.0]
            lines.append(f"  {key}: {percentile(values, 50):.1f} / {percentile(values, 95):.1f} s "
                         f"({percentile(runs, 50):.1f} / {percentile(runs, 95):.1f} s), n={len(values)}")
    await reply(update, context, "\n".join(lines))


@command("apikey", N_("HTTP API keys: create NAME, list, revoke NAME"), admin=True)
async def cmd_apikey(update: Update, context: BotContext) -> None:
    """The HTTP API's keys from the chat (the key is shown once; ``python -m bot apikey`` does the same)."""
    _ = context.tr
    words = list(context.args or [])
    async with context.services.sessions() as session:
        if len(words) >= 2 and words[0] == "create" and re.fullmatch(r"[\w.-]{1,64}", words[1]):
            try:
                limits = apikeys.parse_limits(words[2:])  # e.g. rpm=600 jobs=16 share=0.8 (the rest: API_* defaults)
            except ValueError as exc:
                await reply(update, context, str(exc))
                return
            try:
                client, key = await apikeys.create(session, words[1], limits)
            except ValueError:
                await reply(update, context, _("A key named {name} exists already; revoke it first.", name=words[1]))
                return
            await mark(update, context, "accepted", f"apikey create {client.name}")
            await reply(update, context, _("API key for {name} (shown once; send it as "
                                           "Authorization: Bearer <key>):", name=client.name) + f"\n\n{key}")
            return
        if words == ["list"]:
            clients = await apikeys.listing(session)
            lines = [f"{c.id}. {c.name} — " + (_("revoked") if c.revoked_at else _("active"))
                     + f" · {apikeys.describe_limits(c)}" for c in clients]
            await reply(update, context, "\n".join(lines) or _("No API keys yet."))
            return
        if len(words) == 2 and words[0] == "revoke":
            done = await apikeys.revoke(session, words[1])
            await mark(update, context, "accepted" if done else "rejected", f"apikey revoke {words[1][:64]}")
            await reply(update, context, _("Revoked {name}.", name=words[1]) if done
                        else _("No active key named {name}.", name=words[1]))
            return
    await reply(update, context, _("Usage: /apikey create NAME [rpm=N jobs=N per_minute=N share=F], /apikey list, "
                                   "/apikey revoke NAME"))
