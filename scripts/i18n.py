#!/usr/bin/env python
"""Keep the Babel message catalogs in step with the code.

    python scripts/i18n.py extract   re-extract messages.pot from the sources, then update the
                                     zh_CN and en catalogs from it (new entries come in empty,
                                     removed ones are dropped); lists what still needs translating
    python scripts/i18n.py check     fail, listing each problem, if messages.pot is stale or any
                                     zh_CN entry is missing, empty, fuzzy or has placeholders that
                                     differ from its msgid (en entries may be empty: English falls
                                     back to the msgid)
    python scripts/i18n.py compile   compile the catalogs to .mo (``make catalogs``), rewriting a
                                     .mo only when its content changed, atomically
                                     (``datafactor.web.i18n.compile_catalogs``, as the tests do)

Message ids are the English texts: ``N_("...{name}...")`` in Python (str.format placeholders),
``_("...%(name)s...")`` / ``ngettext(...)`` in Jinja templates (jinja2's newstyle gettext, which
%-formats every string: a literal percent sign there is written ``%%``). A translation must keep
exactly the placeholders of its msgid.

Runs pybabel from the same interpreter (``sys.executable -m babel.messages.frontend``), so use the
project's venv: ``.venv/bin/python scripts/i18n.py extract``. Plain Python, no Makefile needed.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import tomllib
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from babel.messages.catalog import Catalog, Message
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parent.parent
TRANSLATIONS = ROOT / "src" / "datafactor" / "web" / "translations"
POT = TRANSLATIONS / "messages.pot"
DOMAIN = "messages"
LOCALES = ("zh_CN", "en")
REQUIRED_LOCALE = "zh_CN"  # every entry must be translated; "en" falls back to the msgid
EXTRACT_OPTIONS = ("-F", "babel.cfg", "-k", "N_", "--no-location", "--sort-output")
EXTRACT_COMMAND = "python scripts/i18n.py extract"

# str.format fields ({name}, {name!r}, {n:>3}); "{{" and "}}" are literal braces.
_BRACE = re.compile(r"\{\{|\}\}|\{[^{}]*\}")
# %-placeholders as jinja2's newstyle gettext sees them: %(name)s, %(num)d, %%; a "%" that starts
# none of these is kept as a token too, so a stray percent sign in a translation is caught.
_PERCENT = re.compile(r"%\(\w+\)[-#0 +]*\d*(?:\.\d+)?[diouxXeEfFgGcrsa]|%%|%")


def po_path(locale: str) -> Path:
    return TRANSLATIONS / locale / "LC_MESSAGES" / f"{DOMAIN}.po"


def placeholders(text: str) -> Counter[str]:
    """The placeholders of a msgid or msgstr, as a multiset (order may differ in a translation)."""
    tokens = [t for t in _BRACE.findall(text) if t not in ("{{", "}}")]
    tokens += _PERCENT.findall(text)
    return Counter(tokens)


def forms(value: str | Iterable[str] | None) -> list[str]:
    if value is None:
        return [""]
    if isinstance(value, str):
        return [value]
    return list(value)


def message_key(message: Message) -> str | tuple[str, ...]:
    return message.id if isinstance(message.id, str) else tuple(message.id)


def describe(message: Message) -> str:
    return repr(forms(message.id)[0])


def read_catalog(path: Path, locale: str | None = None) -> Catalog:
    with path.open("rb") as f:
        return read_po(f, locale=locale, domain=DOMAIN)


def msgids(catalog: Catalog) -> set[str | tuple[str, ...]]:
    return {message_key(m) for m in catalog if m.id}


def pybabel(*args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "babel.messages.frontend", "-q", *args], cwd=ROOT, check=True
    )


def project_version() -> str:
    with (ROOT / "pyproject.toml").open("rb") as f:
        return str(tomllib.load(f)["project"]["version"])


def extract_to(output: Path) -> None:
    """Extract every message from the sources into ``output`` (a .pot file)."""
    pybabel(
        "extract",
        *EXTRACT_OPTIONS,
        "--project",
        "DataFactor",
        "--version",
        project_version(),
        "--copyright-holder",
        "DataFactor",
        "-o",
        str(output),
        ".",
    )


def _without_creation_date(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line for line in lines if not line.startswith('"POT-Creation-Date:')]


def placeholder_problems(message: Message, plurals: int) -> list[str]:
    """Each msgstr form whose placeholders differ from those of the msgid it translates."""
    ids = forms(message.id)
    problems = []
    for index, text in enumerate(forms(message.string)):
        if not text:
            continue
        # With one plural form (Chinese) msgstr[0] serves every n, so it follows msgid_plural.
        source = ids[0] if len(ids) == 1 or (index == 0 and plurals > 1) else ids[-1]
        expected, found = placeholders(source), placeholders(text)
        if expected != found:
            where = f"msgstr[{index}]" if len(ids) > 1 else "msgstr"
            problems.append(
                f"{where} placeholders {sorted(found.elements())} != msgid's {sorted(expected.elements())}"
            )
    return problems


def catalog_problems(locale: str, template: Catalog, *, require_translations: bool) -> list[str]:
    path = po_path(locale)
    if not path.exists():
        return [f"{path.relative_to(ROOT)} is missing: run `{EXTRACT_COMMAND}`"]
    catalog = read_catalog(path, locale)
    problems = []
    if catalog.fuzzy:
        problems.append("the header is marked fuzzy (pybabel compile would skip the catalog)")
    for message in template:
        if not message.id:
            continue
        translated = catalog.get(message.id, message.context)
        if translated is None:
            problems.append(f"{describe(message)}: not in the catalog; run `{EXTRACT_COMMAND}`")
            continue
        if translated.fuzzy:
            problems.append(f"{describe(message)}: fuzzy; check the translation, drop the flag")
        elif require_translations and not all(forms(translated.string)):
            problems.append(f"{describe(message)}: not translated")
        problems += [
            f"{describe(message)}: {p}"
            for p in placeholder_problems(translated, catalog.num_plurals)
        ]
    stale = msgids(catalog) - msgids(template)
    problems += [
        f"{describe(m)}: not in messages.pot any more; run `{EXTRACT_COMMAND}`"
        for m in catalog
        if m.id and message_key(m) in stale
    ]
    return problems


def pot_problems() -> list[str]:
    """Messages added to or removed from the sources since messages.pot was extracted."""
    if not POT.exists():
        return [f"{POT.relative_to(ROOT)} is missing: run `{EXTRACT_COMMAND}`"]
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp) / "messages.pot"
        extract_to(fresh)
        current, expected = msgids(read_catalog(POT)), msgids(read_catalog(fresh))
    problems = [
        f"{m!r}: in the sources, not in messages.pot" for m in sorted(expected - current, key=str)
    ]
    problems += [
        f"{m!r}: in messages.pot, not in the sources" for m in sorted(current - expected, key=str)
    ]
    if problems:
        problems.append(
            f"messages.pot is stale: run `{EXTRACT_COMMAND}` and translate the new entries"
        )
    return problems


def extract() -> int:
    TRANSLATIONS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp) / "messages.pot"
        extract_to(fresh)
        # Keep the old file (and its date) when nothing but POT-Creation-Date changed: small diffs.
        if not POT.exists() or _without_creation_date(POT) != _without_creation_date(fresh):
            POT.write_bytes(fresh.read_bytes())
            print(f"wrote {POT.relative_to(ROOT)}")
        else:
            print(f"{POT.relative_to(ROOT)} is up to date")
    for locale in LOCALES:
        pybabel(
            "update",
            "-i",
            str(POT),
            "-d",
            str(TRANSLATIONS),
            "-D",
            DOMAIN,
            "-l",
            locale,
            "--init-missing",
            "--no-fuzzy-matching",
            "--ignore-obsolete",
        )
        print(f"updated {po_path(locale).relative_to(ROOT)}")
    template = read_catalog(POT)
    todo = catalog_problems(REQUIRED_LOCALE, template, require_translations=True)
    if todo:
        print(
            f"\n{len(todo)} {REQUIRED_LOCALE} entries need work (edit {po_path(REQUIRED_LOCALE).relative_to(ROOT)}):"
        )
        print("\n".join(f"  {p}" for p in todo))
    return 0


def check() -> int:
    problems = [f"messages.pot: {p}" for p in pot_problems()]
    if POT.exists():
        template = read_catalog(POT)
        for locale in LOCALES:
            required = locale == REQUIRED_LOCALE
            problems += [
                f"{locale}: {p}"
                for p in catalog_problems(locale, template, require_translations=required)
            ]
    if problems:
        print(f"{len(problems)} problems in the message catalogs:", file=sys.stderr)
        print("\n".join(f"  {p}" for p in problems), file=sys.stderr)
        return 1
    print("message catalogs OK")
    return 0


def compile_mo() -> int:
    # The application's own compiler (not ``pybabel compile``, which rewrites every .mo in place
    # on each run): the install and the tests then write the same bytes, and only when a
    # catalog changed.
    from datafactor.web.i18n import compile_catalogs

    written = compile_catalogs(TRANSLATIONS)
    for path in written:
        print(f"wrote {path.relative_to(ROOT)}")
    if not written:
        print("compiled catalogs are up to date")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=("extract", "check", "compile"))
    args = parser.parse_args(argv)
    commands = {"extract": extract, "check": check, "compile": compile_mo}
    return commands[args.command]()


if __name__ == "__main__":
    sys.exit(main())
