"""Inline keyboards; every button's data comes from its :class:`~bot.telegram.routes.Route`."""

from __future__ import annotations

from collections.abc import Sequence

from telegram import InlineKeyboardButton as Button
from telegram import InlineKeyboardMarkup as Markup
from telegram import WebAppInfo

from ..i18n import NAMES, Translator
from ..models import Job, PresetRow
from . import routes

STRENGTHS = (25, 50, 75, 100)
BRUSHES = ("small", "medium", "large")
MIX_SHARES = (50, 30)  # percent of the mixed-in style: 50/50 and 70/30


def presets_keyboard(_: Translator, image_id: int, presets: Sequence[PresetRow], page: int, per_page: int,
                     own_style: bool, hq: bool, all_styles: bool, studio: str = "") -> Markup:
    pages = max(1, -(-len(presets) // per_page))
    page = min(max(page, 0), pages - 1)
    chunk = presets[page * per_page:(page + 1) * per_page]
    rows = [[Button(p.display_name or p.name, callback_data=routes.PRESET.data(image_id, p.id)) for p in chunk[i:i + 2]]
            for i in range(0, len(chunk), 2)]
    if pages > 1:
        nav = []
        if page > 0:
            nav.append(Button(_("◀ Back"), callback_data=routes.PAGE.data(image_id, page - 1)))
        nav.append(Button(f"{page + 1}/{pages}", callback_data=routes.NOOP.data()))
        if page < pages - 1:
            nav.append(Button(_("More ▶"), callback_data=routes.PAGE.data(image_id, page + 1)))
        rows.append(nav)
    if all_styles and len(presets) > 1:
        rows.append([Button(_("🖼 Try all styles"), callback_data=routes.ALL_STYLES.data(image_id))])
    if own_style:
        rows.append([Button(_("🎨 Any picture as the style"), callback_data=routes.OWN_STYLE.data(image_id))])
    if hq:
        rows.append([Button(_("✨ High quality (slow)"), callback_data=routes.HIGH_QUALITY.data(image_id))])
    if studio:  # the web studio as a Mini App: sliders, mixing, a live comparison
        rows.append([Button(_("🎛 Open studio"), web_app=WebAppInfo(studio))])
    return Markup(rows)


def cancel_keyboard(_: Translator, job_id: int) -> Markup:
    return Markup([[Button(_("✖ Cancel"), callback_data=routes.CANCEL_JOB.data(job_id))]])


def result_keyboard(_: Translator, job: Job, *, hq: bool, full_res: int, brush: bool, mix: bool,
                    share: bool) -> Markup:
    """Variants of a result. ``full_res``: how many full-resolution buttons (an album has one per photo;
    clips, which come at their size already, none)."""
    strength = round(100 * float(job.params.get("strength", 1.0)))
    keep = bool(job.params.get("preserve_color"))
    rows = [
        [Button(f"{'• ' if s == strength else ''}{s}%", callback_data=routes.STRENGTH.data(job.id, s))
         for s in STRENGTHS],
        [Button(_("🎨 Keep colours: on") if keep else _("🎨 Keep colours: off"),
                callback_data=routes.COLOURS.data(job.id)),
         Button(_("🔁 Another style"), callback_data=routes.ANOTHER.data(job.id))],
    ]
    if brush:
        current = job.params.get("brush", "medium")
        labels = {"small": _("Brush: small"), "medium": _("medium"), "large": _("large")}
        rows.append([Button(f"{'• ' if b == current else ''}{labels[b]}", callback_data=routes.BRUSH.data(job.id, b))
                     for b in BRUSHES])
    extra = []
    if mix:
        extra.append(Button(_("➕ Mix in a style"), callback_data=routes.MIX_MENU.data(job.id)))
    if share:
        extra.append(Button(_("↗ Share"), switch_inline_query=f"#{job.id}"))
    if extra:
        rows.append(extra)
    if full_res == 1:
        last = [Button(_("📄 Full resolution"), callback_data=routes.FULL_RES.data(job.id, 0))]
        if hq:
            last.append(Button(_("✨ High quality"), callback_data=routes.HQ_RERUN.data(job.id)))
        rows.append(last)
    elif full_res > 1:
        files = [Button(f"📄 {i + 1}", callback_data=routes.FULL_RES.data(job.id, i)) for i in range(full_res)]
        rows += [files[i:i + 5] for i in range(0, len(files), 5)]
    return Markup(rows)


def mix_keyboard(_: Translator, job_id: int, presets: Sequence[PresetRow]) -> Markup:
    """For each candidate preset, the two ratios: 50/50 and 70/30 (70 % the current style)."""
    rows = [[Button(f"{p.display_name or p.name} · {100 - share}/{share}"[:60],
                    callback_data=routes.MIX.data(job_id, p.id, share)) for share in MIX_SHARES] for p in presets[:12]]
    return Markup(rows)


def settings_keyboard(_: Translator, strength: float, size: int, preserve_color: bool, sizes: Sequence[int]) -> Markup:
    pct = round(100 * strength)
    return Markup([
        [Button(f"{'• ' if s == pct else ''}{s}%", callback_data=routes.SETTINGS.data("s", s)) for s in STRENGTHS],
        [Button(f"{'• ' if z == size else ''}{z}px", callback_data=routes.SETTINGS.data("z", z)) for z in sizes],
        [Button(_("🎨 Keep colours: on") if preserve_color else _("🎨 Keep colours: off"),
                callback_data=routes.SETTINGS.data("c", 0))],
    ])


def language_keyboard(current: str) -> Markup:
    return Markup([[Button(f"{'• ' if code == current else ''}{name}", callback_data=routes.LANGUAGE.data(code))
                    for code, name in NAMES.items()]])


def start_keyboard(_: Translator) -> Markup:
    return Markup([[Button(_("📷 Try it on a sample photo"), callback_data=routes.SAMPLE.data())]])


def privacy_keyboard(_: Translator, confirm: bool = False) -> Markup:
    if confirm:
        return Markup([[Button(_("Yes, delete everything"), callback_data=routes.PRIVACY.data("yes")),
                        Button(_("No, keep it"), callback_data=routes.PRIVACY.data("no"))]])
    return Markup([[Button(_("🗑 Delete my data"), callback_data=routes.PRIVACY.data("ask"))]])


def history_keyboard(jobs: Sequence[Job], titles: dict[int, str]) -> Markup:
    return Markup([[Button(f"🔁 #{job.id} {titles[job.id]}"[:60], callback_data=routes.ANOTHER.data(job.id))]
                   for job in jobs])


def admin_presets_keyboard(presets: Sequence[PresetRow]) -> Markup:
    rows = []
    for p in presets:
        toggle = routes.ADMIN_PRESET.data("t", p.id)
        row = [Button(f"{'✅' if p.enabled else '🚫'} {p.name}"[:60], callback_data=toggle)]
        if p.origin == "trained":
            row.append(Button("🗑", callback_data=routes.ADMIN_PRESET.data("x", p.id)))
        rows.append(row)
    return Markup(rows)


def training_keyboard(_: Translator, run_id: int, done: bool) -> Markup:
    if done:
        return Markup([[Button(_("✅ Publish"), callback_data=routes.PUBLISH.data(run_id)),
                        Button(_("🗑 Discard"), callback_data=routes.DISCARD.data(run_id))]])
    return Markup([[Button(_("✖ Cancel training"), callback_data=routes.CANCEL_TRAINING.data(run_id))]])
