"""The bot's languages: English source strings, translated through gettext catalogs in ``bot/locales``.

Catalogs are the ``.po`` files themselves, compiled in memory by Babel the first time a language is
used, so there is no build step and no binary ``.mo`` file to keep in sync. ``pybabel extract`` (see
``babel.cfg`` and README) finds every string passed to ``_``/``N_``/``ngettext``; ``tests/test_i18n.py``
fails when one of them has no Russian translation.

Handlers translate with ``context.tr`` (the update's language), workers with ``translator(job.locale)``.
"""

from __future__ import annotations

import gettext
import io
from functools import cache
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LOCALES = ("en", "ru")
DEFAULT = "en"
DOMAIN = "bot"
LOCALE_DIR = Path(__file__).resolve().parent / "locales"
#: how each language calls itself, for /language
NAMES = {"en": "English", "ru": "Русский"}


def N_(message: str) -> str:
    """Mark a string for extraction where it is defined; it is translated where it is shown."""
    return message


def negotiate(language_code: str | None, chosen: str | None = None) -> str:
    """The user's choice (/language), else their Telegram app's language when we speak it, else English."""
    for code in (chosen, language_code):
        base = (code or "").split("-")[0].lower()
        if base in LOCALES:
            return base
    return DEFAULT


@cache
def _catalog(locale: str) -> gettext.NullTranslations:
    po = LOCALE_DIR / locale / "LC_MESSAGES" / f"{DOMAIN}.po"
    if locale == DEFAULT or not po.is_file():
        return gettext.NullTranslations()
    with po.open("rb") as fh:
        catalog = read_po(fh, locale=locale, domain=DOMAIN)
    buf = io.BytesIO()
    write_mo(buf, catalog)
    buf.seek(0)
    return gettext.GNUTranslations(buf)


class Translator:
    """``_("Hello {name}", name=...)``: translate, then fill ``str.format`` fields."""

    __slots__ = ("_catalog", "locale")

    def __init__(self, locale: str) -> None:
        self.locale = locale if locale in LOCALES else DEFAULT
        self._catalog = _catalog(self.locale)

    def __call__(self, message: str, /, **values: object) -> str:
        text = self._catalog.gettext(message)
        return text.format(**values) if values else text

    def ngettext(self, singular: str, plural: str, n: int, /, **values: object) -> str:
        """Plural forms by the language's rules (Russian has three); ``{n}`` is filled in."""
        return self._catalog.ngettext(singular, plural, n).format(n=n, **values)


@cache
def translator(locale: str | None) -> Translator:
    return Translator(locale or DEFAULT)
