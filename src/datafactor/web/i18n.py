"""Translation: Babel catalogs for Simplified Chinese (default) and English, chosen per request.

Message ids are the English texts. The catalogs under ``translations/`` are edited as ``.po`` files
and compiled to ``.mo`` by ``compile_catalogs``: at the install (``make catalogs`` runs
``scripts/i18n.py compile``) and at the start of every test session. It rewrites a ``.mo`` only
when its content changed, and then atomically (a temporary file renamed over it), so a server
reading the catalogs while tests or an install run never sees half a file, and a run that
changes nothing touches nothing. The locale of the current request is in
``datafactor.context.locale``; ``gettext`` reads it, so templates, error pages and problem+json
bodies all speak the user's language without passing it around.
"""

from __future__ import annotations

import io
import os
import threading
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
    """Compile every ``.po`` under ``directory`` to ``.mo`` (what ``pybabel compile`` does,
    without fuzzy entries); the ``.mo`` files written — those whose content changed."""
    written = []
    for po_path in sorted(directory.glob("*/LC_MESSAGES/*.po")):
        with po_path.open("rb") as f:
            catalog = read_po(f)
        compiled = io.BytesIO()
        write_mo(compiled, catalog)
        mo_path = po_path.with_suffix(".mo")
        if _replace_if_changed(mo_path, compiled.getvalue()):
            written.append(mo_path)
    if written:
        translations.cache_clear()
    return written


def _replace_if_changed(path: Path, data: bytes) -> bool:
    """Put ``data`` in ``path`` unless it already holds exactly that: written to a temporary file
    beside it, then renamed over it (a reader sees the old file or the new, never a part)."""
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with tmp.open("xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return True
