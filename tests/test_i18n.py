"""Languages: every user-facing string of the bot has a Russian translation with the same placeholders."""

from __future__ import annotations

import re
import string
from pathlib import Path

from babel.messages.extract import extract_from_dir

from bot.i18n import LOCALE_DIR, negotiate, translator

BOT = Path(__file__).resolve().parents[1] / "bot"
KEYWORDS = {"_": None, "N_": None, "tr": None, "ngettext": (1, 2)}


def _msgids() -> list[str | tuple[str, str]]:
    found = []
    for _file, _line, message, _comments, _context in extract_from_dir(str(BOT), keywords=KEYWORDS):
        found.append(message if isinstance(message, str) else tuple(message[:2]))
    return found


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_every_message_is_translated_to_russian() -> None:
    ids = _msgids()
    assert len(ids) > 100  # the extraction itself works (a broken keyword list would find nothing)
    ru = translator("ru")
    untranslated, mismatched = [], []
    for msgid in ids:
        if isinstance(msgid, tuple):
            forms = [ru.ngettext(msgid[0], msgid[1], n) for n in (1, 3, 5)]
            if forms[0] == msgid[0] or forms[2] == msgid[1]:
                untranslated.append(msgid[0])
            expected = _fields(msgid[1]) - {"n"}  # a form may spell the number out ("одна"), not drop the rest
            raw = [ru._catalog.ngettext(msgid[0], msgid[1], n) for n in (1, 3, 5)]
            if any(_fields(form) - {"n"} != expected for form in raw):
                mismatched.append(msgid[0])
            continue
        text = ru._catalog.gettext(msgid)  # raw, before .format
        if text == msgid and re.search(r"[A-Za-z]{3}", msgid) and msgid not in {"GIF"}:
            untranslated.append(msgid)
        if _fields(text) != _fields(msgid):
            mismatched.append(msgid)
    assert not untranslated, f"no Russian for: {untranslated}"
    assert not mismatched, f"placeholders differ: {mismatched}"


def test_catalog_is_a_po_file_and_english_is_the_source() -> None:
    assert (LOCALE_DIR / "ru" / "LC_MESSAGES" / "bot.po").is_file()
    en, ru = translator("en"), translator("ru")
    assert en("Hi {name}! 👋", name="Ann") == "Hi Ann! 👋"
    assert ru("Hi {name}! 👋", name="Аня") == "Привет, Аня! 👋"
    assert [ru.ngettext("✖ Cancelled {n} picture.", "✖ Cancelled {n} pictures.", n) for n in (1, 2, 5)] == [
        "✖ Отменена 1 картинка.", "✖ Отменены 2 картинки.", "✖ Отменено 5 картинок."]
    assert translator(negotiate("uk")).locale == "en"  # languages we do not speak get English
