"""Small pure pieces of the bot: keyboards stay inside Telegram's limits, percentiles, per-user ordering."""

from __future__ import annotations

import asyncio

from telegram import Chat, Message, Update, User

from bot.app import PerUserUpdateProcessor
from bot.i18n import negotiate, translator
from bot.models import Job, PresetRow
from bot.telegram import keyboards, routes
from bot.telegram.handlers.admin import percentile
from bot.telegram.handlers.registry import COMMANDS, ROUTES

_ = translator("en")

BIG = 2**53  # ids far beyond what a SQLite bot will reach


def _all_callback_data(markup) -> list[str]:  # type: ignore[no-untyped-def]
    return [b.callback_data for row in markup.inline_keyboard for b in row if b.callback_data]


def test_callback_data_fits_64_bytes() -> None:
    presets = [PresetRow(id=BIG - i, name=f"preset_{i}" * 5, display_name="Ä" * 80, method="cin", origin="trained",
                         enabled=True, available=True) for i in range(15)]
    job = Job(id=BIG, params={"strength": 0.5, "preserve_color": True})
    markups = [
        keyboards.presets_keyboard(_, BIG, presets, page=1, per_page=6, own_style=True, hq=True, all_styles=True),
        keyboards.cancel_keyboard(_, BIG),
        keyboards.result_keyboard(_, job, hq=True, full_res=1, brush=True, mix=True, share=True),
        keyboards.result_keyboard(_, job, hq=False, full_res=10, brush=False, mix=False, share=False),
        keyboards.mix_keyboard(_, BIG, presets),
        keyboards.settings_keyboard(_, 0.75, 512, True, [256, 512, 1024]),
        keyboards.privacy_keyboard(_), keyboards.privacy_keyboard(_, confirm=True),
        keyboards.history_keyboard([job], {BIG: "x" * 100}),
        keyboards.admin_presets_keyboard(presets), keyboards.language_keyboard("ru"), keyboards.start_keyboard(_),
        keyboards.training_keyboard(_, BIG, done=True), keyboards.training_keyboard(_, BIG, done=False),
    ]
    data = [d for m in markups for d in _all_callback_data(m)]
    assert data and all(1 <= len(d.encode()) <= 64 for d in data)
    # every button's data is matched by exactly one registered route
    patterns = [route.pattern for route, _callback in ROUTES]
    assert all(sum(bool(p.match(d)) for p in patterns) == 1 for d in data), data


def test_routes_are_defined_once_and_registered() -> None:
    defined = [v for v in vars(routes).values() if isinstance(v, routes.Route)]
    assert len({r.code for r in defined}) == len(defined)  # one code, one route
    assert {r.code for r, _callback in ROUTES} == {r.code for r in defined}  # each has exactly one handler
    assert len(ROUTES) == len(defined)
    assert routes.PRESET.data(3, 14) == "ps:3:14" and routes.PRESET.pattern.match("ps:3:14").groups() == ("3", "14")
    for bad in (("x",), (1,), (1, 2, 3)):
        try:
            routes.PRESET.data(*bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad} accepted")


def test_command_table_feeds_menus_and_help() -> None:
    names = [c.name for c in COMMANDS]
    assert len(names) == len(set(names))
    assert {"start", "help", "styles", "history", "settings", "language", "cancel", "privacy"} <= set(names)
    assert {c.name for c in COMMANDS if c.admin} == {"train", "presets", "stats", "apikey"}


def test_language_negotiation() -> None:
    assert negotiate("ru") == "ru" and negotiate("ru-RU") == "ru" and negotiate("de") == "en"
    assert negotiate(None) == "en" and negotiate("ru", chosen="en") == "en" and negotiate("en", chosen="ru") == "ru"


def test_preset_pages_cover_every_preset_once() -> None:
    presets = [PresetRow(id=i, name=f"p{i}", display_name=f"P{i}", method="cin") for i in range(1, 14)]
    seen: list[str] = []
    for page in range(3):
        markup = keyboards.presets_keyboard(_, 7, presets, page=page, per_page=6, own_style=False, hq=False,
                                            all_styles=False)
        seen += [d for d in _all_callback_data(markup) if d.startswith("ps:")]
    assert seen == [f"ps:7:{i}" for i in range(1, 14)]


def test_result_keyboard_marks_current_strength() -> None:
    markup = keyboards.result_keyboard(_, Job(id=3, params={"strength": 0.5}), hq=False, full_res=1, brush=False,
                                       mix=False, share=False)
    texts = [b.text for b in markup.inline_keyboard[0]]
    assert texts == ["25%", "• 50%", "75%", "100%"]
    assert "rh:3" not in _all_callback_data(markup)


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50 and percentile(values, 95) == 95 and percentile([3.0], 95) == 3.0


def _update(update_id: int, user_id: int) -> Update:
    user = User(user_id, "u", False)
    message = Message(update_id, None, Chat(user_id, "private"), from_user=user, text="hi")  # type: ignore[arg-type]
    return Update(update_id, message=message)


async def test_updates_of_one_user_run_in_order_others_concurrently() -> None:
    processor = PerUserUpdateProcessor(8)
    log: list[str] = []

    async def handle(tag: str, delay: float) -> None:
        log.append(f"start {tag}")
        await asyncio.sleep(delay)
        log.append(f"end {tag}")

    await asyncio.gather(
        processor.do_process_update(_update(1, 1), handle("a1", 0.05)),
        processor.do_process_update(_update(2, 1), handle("a2", 0.0)),
        processor.do_process_update(_update(3, 2), handle("b1", 0.0)),
    )
    assert log.index("end a1") < log.index("start a2")  # same user: strictly sequential
    assert log.index("end b1") < log.index("end a1")  # another user did not wait

