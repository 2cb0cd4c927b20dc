"""Translation: Babel catalogs for Simplified Chinese (default) and English, chosen per request.

Message ids are the English texts. The catalogs under ``translations/`` are edited as ``.po`` files
and compiled to ``.mo`` by the install (``make install`` runs ``pybabel compile``);
``compile_catalogs`` does the same from Python for the tests. The locale of the current request is in
``datafactor.context.locale``; ``gettext`` reads it, so templates, error pages and problem+json
bodies all speak the user's language without passing it around.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from string import Formatter
from typing import Any

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

from datafactor import context

TRANSLATIONS_DIR = Path(__file__).parent / "translations"
LOCALES = ("zh_CN", "en")
LOCALE_NAMES = {"zh_CN": "简体中文", "en": "English"}
HTML_LANG = {"zh_CN": "zh-CN", "en": "en"}


@lru_cache(maxsize=len(LOCALES))
def translations(locale: str) -> NullTranslations:
    return Translations.load(str(TRANSLATIONS_DIR), [locale], domain="messages")


def gettext(message: str, **params: Any) -> str:
    text = translations(context.locale.get()).gettext(message)
    return safe_format(text, params) if params else text


def ngettext(singular: str, plural: str, n: int, **params: Any) -> str:
    text = translations(context.locale.get()).ngettext(singular, plural, n)
    return safe_format(text, {"num": n, **params})


class _Lenient(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def safe_format(template: str, params: dict[str, Any]) -> str:
    """``str.format`` that leaves unknown placeholders alone instead of raising."""
    return Formatter().vformat(template, (), _Lenient(params))


def pick_locale(cookie: str | None, accept_language: str | None, default: str) -> str:
    """The user's choice (cookie), else the best Accept-Language match, else the default."""
    if cookie in LOCALES:
        return cookie
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip().lower()
        if tag.startswith("zh"):
            return "zh_CN"
        if tag.startswith("en"):
            return "en"
    return default if default in LOCALES else "zh_CN"


def compile_catalogs(directory: Path = TRANSLATIONS_DIR) -> list[Path]:
    """Compile every ``.po`` under ``directory`` to ``.mo`` (what ``pybabel compile`` does)."""
    written = []
    for po_path in sorted(directory.glob("*/LC_MESSAGES/*.po")):
        with po_path.open("rb") as f:
            catalog = read_po(f)
        mo_path = po_path.with_suffix(".mo")
        with mo_path.open("wb") as f:
            write_mo(f, catalog)
        written.append(mo_path)
    translations.cache_clear()
    return written
