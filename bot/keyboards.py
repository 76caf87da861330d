"""Inline keyboards. Callback data stays far below Telegram's 64-byte limit: short codes and DB ids.

Codes: ``pg`` preset page, ``ps`` pick preset, ``ow`` own style, ``hq`` high-quality own style,
``x`` cancel job, ``rs``/``rc``/``ra``/``rf``/``rh`` result strength/colours/another/file/HQ,
``se`` settings, ``pv`` privacy, ``ap`` admin presets, ``tp``/``td``/``tx`` training publish/discard/cancel.
"""

from __future__ import annotations

from collections.abc import Sequence

from telegram import InlineKeyboardButton as Button
from telegram import InlineKeyboardMarkup as Markup

from .models import Job, PresetRow

STRENGTHS = (25, 50, 75, 100)
SIZES = (256, 384, 512, 768, 1024, 1536, 2048)


def presets_keyboard(image_id: int, presets: Sequence[PresetRow], page: int, per_page: int,
                     own_style: bool, hq: bool) -> Markup:
    pages = max(1, -(-len(presets) // per_page))
    page = min(max(page, 0), pages - 1)
    chunk = presets[page * per_page:(page + 1) * per_page]
    rows = [[Button(p.display_name or p.name, callback_data=f"ps:{image_id}:{p.id}") for p in chunk[i:i + 2]]
            for i in range(0, len(chunk), 2)]
    if pages > 1:
        nav = []
        if page > 0:
            nav.append(Button("◀ Back", callback_data=f"pg:{image_id}:{page - 1}"))
        nav.append(Button(f"{page + 1}/{pages}", callback_data="noop"))
        if page < pages - 1:
            nav.append(Button("More ▶", callback_data=f"pg:{image_id}:{page + 1}"))
        rows.append(nav)
    if own_style:
        rows.append([Button("🎨 Use my own style", callback_data=f"ow:{image_id}")])
    if hq:
        rows.append([Button("✨ High quality (slow)", callback_data=f"hq:{image_id}")])
    return Markup(rows)


def cancel_keyboard(job_id: int) -> Markup:
    return Markup([[Button("✖ Cancel", callback_data=f"x:{job_id}")]])


def result_keyboard(job: Job, hq_available: bool, still: bool = True) -> Markup:
    """Variants of a result; clips (``still=False``) come at full size already and have no HQ mode."""
    strength = round(100 * float(job.params.get("strength", 1.0)))
    keep = bool(job.params.get("preserve_color"))
    rows = [
        [Button(f"{'• ' if s == strength else ''}{s}%", callback_data=f"rs:{job.id}:{s}") for s in STRENGTHS],
        [Button(f"🎨 Keep colours: {'on' if keep else 'off'}", callback_data=f"rc:{job.id}"),
         Button("🔁 Another style", callback_data=f"ra:{job.id}")],
    ]
    if not still:
        return Markup(rows)
    last = [Button("📄 Full resolution", callback_data=f"rf:{job.id}")]
    if hq_available:
        last.append(Button("✨ High quality", callback_data=f"rh:{job.id}"))
    rows.append(last)
    return Markup(rows)


def settings_keyboard(strength: float, size: int, preserve_color: bool, sizes: Sequence[int]) -> Markup:
    pct = round(100 * strength)
    return Markup([
        [Button(f"{'• ' if s == pct else ''}{s}%", callback_data=f"se:s:{s}") for s in STRENGTHS],
        [Button(f"{'• ' if z == size else ''}{z}px", callback_data=f"se:z:{z}") for z in sizes],
        [Button(f"🎨 Keep colours: {'on' if preserve_color else 'off'}", callback_data="se:c")],
    ])


def privacy_keyboard(confirm: bool = False) -> Markup:
    if confirm:
        return Markup([[Button("Yes, delete everything", callback_data="pv:yes"),
                        Button("No, keep it", callback_data="pv:no")]])
    return Markup([[Button("🗑 Delete my data", callback_data="pv:ask")]])


def history_keyboard(jobs: Sequence[Job], titles: dict[int, str]) -> Markup:
    return Markup([[Button(f"🔁 #{job.id} {titles[job.id]}"[:60], callback_data=f"ra:{job.id}")] for job in jobs])


def admin_presets_keyboard(presets: Sequence[PresetRow]) -> Markup:
    rows = []
    for p in presets:
        row = [Button(f"{'✅' if p.enabled else '🚫'} {p.name}"[:60], callback_data=f"ap:t:{p.id}")]
        if p.origin == "trained":
            row.append(Button("🗑", callback_data=f"ap:x:{p.id}"))
        rows.append(row)
    return Markup(rows)


def training_keyboard(run_id: int, done: bool) -> Markup:
    if done:
        return Markup([[Button("✅ Publish", callback_data=f"tp:{run_id}"),
                        Button("🗑 Discard", callback_data=f"td:{run_id}")]])
    return Markup([[Button("✖ Cancel training", callback_data=f"tx:{run_id}")]])
