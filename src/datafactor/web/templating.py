"""The Jinja2 environment: one loader over every domain's ``templates/`` folder, gettext installed.

Templates call ``_("English text")``; the text is looked up in the current request's catalog.
Times are shown in Asia/Shanghai, stored in UTC.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, select_autoescape

from datafactor import context
from datafactor.audit import ACTION_LABELS
from datafactor.web.i18n import HTML_LANG, LOCALE_NAMES, LOCALES, gettext, ngettext

PACKAGE_DIR = Path(__file__).resolve().parent.parent
DISPLAY_ZONE = ZoneInfo("Asia/Shanghai")


def template_dirs() -> list[Path]:
    """The shared templates first, then each domain package's ``templates/`` folder."""
    dirs = [PACKAGE_DIR / "web" / "templates"]
    dirs += sorted(p for p in PACKAGE_DIR.glob("*/templates") if p.parent.name != "web")
    return dirs


def local_time(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    if value is None:
        return "—"
    return value.astimezone(DISPLAY_ZONE).strftime(fmt)


def action_label(tag: str) -> str:
    """The translated label of an audit action tag (the tag itself when none is registered)."""
    label = ACTION_LABELS.get(tag)
    return gettext(label) if label else tag


def make_templates() -> Jinja2Templates:
    env = Environment(
        loader=FileSystemLoader([str(d) for d in template_dirs()]),
        autoescape=select_autoescape(["html"]),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_callables(gettext, ngettext, newstyle=True)  # type: ignore[attr-defined]
    env.filters["local_time"] = local_time
    env.filters["action_label"] = action_label
    env.globals.update(
        path="",  # pages pass the request path; error pages may not
        LOCALES=LOCALES,
        LOCALE_NAMES=LOCALE_NAMES,
        current_locale=lambda: context.locale.get(),
        html_lang=lambda: HTML_LANG[context.locale.get()],
    )
    return Jinja2Templates(env=env)


def enum_label(value: Any, labels: dict[str, str]) -> str:
    return gettext(labels.get(str(value), str(value)))
