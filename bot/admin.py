"""Admin commands (ids in ADMIN_IDS): /train, /presets, /stats and their buttons.

Non-admins get a polite refusal and nothing runs; the refusal is recorded like any other.
"""

from __future__ import annotations

import logging
import math
import re
import shutil
from collections import defaultdict
from collections.abc import Awaitable, Callable
from functools import wraps
from pathlib import Path

from sqlalchemy import func, select
from telegram import Update
from telegram.error import TelegramError

from . import keyboards, store
from .handlers import Context, _answer, intake, mark, refuse, reply
from .models import Job, JobStatus, PresetRow, TrainingRun, User, utcnow
from .services import get_services
from .tg import safe_send

log = logging.getLogger(__name__)

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_]{1,39}$")
TRAINABLE = ("cin", "johnson")

Handler = Callable[..., Awaitable[None]]


def admin_only(func_: Handler) -> Handler:
    @wraps(func_)
    async def wrapper(update: Update, context: Context, *args: str) -> None:
        user = update.effective_user
        if not get_services(context).settings.is_admin(user.id if user else None):
            await refuse(update, context, "not an admin", "Sorry, that is only for the bot's admins. 🙂")
            return
        await func_(update, context, *args)

    return wrapper


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (no numpy needed for a handful of numbers)."""
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[index]


@admin_only
async def cmd_train(update: Update, context: Context) -> None:
    services = get_services(context)
    message = update.effective_message
    assert message is not None
    if message.caption:  # the style picture itself, captioned "/train NAME [method]"
        args, source = [a.lower() for a in message.caption.split()[1:]], message
    else:  # "/train NAME [method]" as a reply to the style picture
        args, source = [a.lower() for a in (context.args or [])], message.reply_to_message
    usage = ("Reply to a style picture with /train NAME [cin|johnson] (or send the picture with that caption), "
             "e.g. /train sunflowers (NAME: 2–40 lowercase letters, digits or _).")
    if not args or not NAME_RE.match(args[0]) or (len(args) > 1 and args[1] not in TRAINABLE) or len(args) > 2:
        await refuse(update, context, "bad /train arguments", usage)
        return
    name, method = args[0], (args[1] if len(args) > 1 else "cin")
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
                     f"A preset named “{name}” already exists. Pick another name (or delete it in /presets).")
        return
    if not services.settings.train_content_dir or not services.settings.train_content_dir.is_dir():
        await refuse(update, context, "no training data", "TRAIN_CONTENT_DIR is not set to a folder of photos, "
                                                          "so I can't train presets here.")
        return
    image = await intake(update, context, file.file_id, file.file_unique_id, file.file_size)
    if image is None:
        return
    style_path = services.settings.presets_dir / "sources" / f"{name}{Path(image.path).suffix}"
    style_path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(image.path, style_path)
    async with services.sessions() as session:
        run = TrainingRun(admin_id=update.effective_user.id, chat_id=update.effective_chat.id,  # type: ignore[union-attr]
                          name=name, method=method, style_path=str(style_path), status="queued",
                          params={"display_name": name.replace("_", " ").title(),
                                  "steps": services.settings.train_steps, "size": services.settings.train_size},
                          created_at=utcnow())
        session.add(run)
        await session.commit()
        message_id = await safe_send(context.bot, run.chat_id, f"🧑‍🎨 Training “{name}” ({method}) is queued…",
                                     keyboards.training_keyboard(run.id, done=False))
        run.status_message_id = message_id
        await session.commit()
    await mark(update, "accepted", f"train {name} {method}", services=services)
    assert services.trainer is not None
    services.trainer.submit(run.id)


def _presets_text(rows: list[PresetRow]) -> str:
    if not rows:
        return "No presets installed."
    lines = [f"{'✅' if r.enabled else '🚫'} {r.name} · {r.method} · {r.origin}" for r in rows]
    return "Presets (tap to enable/disable, 🗑 deletes a trained one):\n" + "\n".join(lines)


@admin_only
async def cmd_presets(update: Update, context: Context) -> None:
    services = get_services(context)
    async with services.sessions() as session:
        rows = await store.all_presets(session)
    await reply(update, context, _presets_text(rows), keyboards.admin_presets_keyboard(rows) if rows else None)


@admin_only
async def cb_admin_presets(update: Update, context: Context, action: str, preset_id: str) -> None:
    services = get_services(context)
    async with services.sessions() as session:
        row = await session.get(PresetRow, int(preset_id))
        if row is None:
            await _answer(update, "Not found")
            return
        name = row.name
        if action == "t":
            row.enabled = not row.enabled
            await session.commit()
            note = f"{name} {'enabled' if row.enabled else 'disabled'}"
        elif action == "x" and row.origin == "trained":
            note = f"{name} deleted"
        else:
            await _answer(update, "Shipped presets can only be disabled")
            return
    if action == "x":
        assert services.trainer is not None
        await services.trainer.delete_preset(name)
        async with services.sessions() as session:
            gone = await session.get(PresetRow, int(preset_id))
            if gone is not None:
                await session.delete(gone)
                await session.commit()
    await mark(update, "accepted", note, services=services)
    await _answer(update, note)
    async with services.sessions() as session:
        rows = await store.all_presets(session)
    try:
        await update.callback_query.edit_message_text(  # type: ignore[union-attr]
            _presets_text(rows), reply_markup=keyboards.admin_presets_keyboard(rows) if rows else None)
    except TelegramError as exc:
        log.debug("presets edit failed: %s", exc)


@admin_only
async def cb_publish(update: Update, context: Context, run_id: str) -> None:
    trainer = get_services(context).trainer
    assert trainer is not None
    text = await trainer.publish(int(run_id))
    await _answer(update)
    await mark(update, "accepted", f"publish run {run_id}", context=context)
    await _edit_caption(update, text)


@admin_only
async def cb_discard(update: Update, context: Context, run_id: str) -> None:
    trainer = get_services(context).trainer
    assert trainer is not None
    text = await trainer.discard(int(run_id))
    await _answer(update)
    await mark(update, "accepted", f"discard run {run_id}", context=context)
    await _edit_caption(update, text)


@admin_only
async def cb_cancel_training(update: Update, context: Context, run_id: str) -> None:
    trainer = get_services(context).trainer
    assert trainer is not None
    cancelled = trainer.cancel(int(run_id))
    await mark(update, "accepted", f"cancel training {run_id}", context=context)
    await _answer(update, "Cancelling…" if cancelled else "Not running")


async def _edit_caption(update: Update, text: str) -> None:
    query = update.callback_query
    try:
        await query.edit_message_caption(text, reply_markup=None)  # type: ignore[union-attr]
    except TelegramError as exc:
        log.debug("caption edit failed (%s)", exc)
        await query.message.reply_text(text)  # type: ignore[union-attr]


@admin_only
async def cmd_stats(update: Update, context: Context) -> None:
    services = get_services(context)
    async with services.sessions() as session:
        users = await session.scalar(select(func.count()).select_from(User)) or 0
        by_status = dict((await session.execute(select(Job.status, func.count()).group_by(Job.status))).all())
        done = (await session.execute(
            select(Job.method, Job.queued_at, Job.finished_at, Job.timings)
            .where(Job.status == JobStatus.DONE, Job.finished_at.is_not(None))
            .order_by(Job.id.desc()).limit(2000))).all()
        training = dict((await session.execute(
            select(TrainingRun.status, func.count()).group_by(TrainingRun.status))).all())
    latency: dict[str, list[float]] = defaultdict(list)
    run_time: dict[str, list[float]] = defaultdict(list)
    for method, queued, finished, timings in done:
        latency[method].append((finished - queued).total_seconds())
        if timings and "run" in timings:
            run_time[method].append(float(timings["run"]))
    lines = [
        f"👥 Users: {users}",
        "🧾 Jobs: " + (", ".join(f"{k} {v}" for k, v in sorted(by_status.items())) or "none"),
        f"⏳ Queue: {by_status.get(JobStatus.QUEUED, 0)} waiting, "
        f"{services.runner.running if services.runner else 0} running",
        f"🖥 Device: {services.device}, workers: {services.runner.worker_count if services.runner else 0}",
        f"🎨 Methods: {', '.join(services.methods) or 'none'}; presets: {len(services.stylizer.manifest.presets)}",
    ]
    if training:
        lines.append("🧑‍🎨 Training runs: " + ", ".join(f"{k} {v}" for k, v in sorted(training.items())))
    if latency:
        lines.append("⏱ Latency (queued → delivered; stylize only), p50 / p95:")
        for method, values in sorted(latency.items()):
            runs = run_time.get(method) or [0.0]
            lines.append(f"  {method}: {percentile(values, 50):.1f} / {percentile(values, 95):.1f} s "
                         f"({percentile(runs, 50):.1f} / {percentile(runs, 95):.1f} s), n={len(values)}")
    await reply(update, context, "\n".join(lines))


CALLBACKS = {
    "ap": cb_admin_presets,
    "tp": cb_publish,
    "td": cb_discard,
    "tx": cb_cancel_training,
}
