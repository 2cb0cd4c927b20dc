"""The message catalogs: messages.pot matches the sources, zh_CN translates all of it, placeholders
survive translation. When one fails, ``python scripts/i18n.py extract`` refreshes the template and
catalogs and lists what is left to translate; ``python scripts/i18n.py check`` shows the same
problems as these tests.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.support import Translations

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "i18n.py"
FIX = "run `python scripts/i18n.py extract`, then translate the new entries in the zh_CN catalog"


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("datafactor_i18n_script", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


i18n = _load_script()


@pytest.fixture(scope="module")
def template() -> Catalog:
    return i18n.read_catalog(i18n.POT)


@pytest.fixture(scope="module")
def zh_cn() -> Catalog:
    return i18n.read_catalog(i18n.po_path("zh_CN"), "zh_CN")


@pytest.fixture(scope="module")
def en() -> Catalog:
    return i18n.read_catalog(i18n.po_path("en"), "en")


def _show(problems: list[str]) -> str:
    return "\n  ".join(["", *problems])


def test_messages_pot_is_up_to_date_with_the_sources(template: Catalog, tmp_path: Path) -> None:
    fresh = tmp_path / "messages.pot"
    i18n.extract_to(fresh)
    expected, current = i18n.msgids(i18n.read_catalog(fresh)), i18n.msgids(template)
    assert len(expected) > 100  # the extraction really ran over the sources
    added = sorted(map(repr, expected - current))
    removed = sorted(map(repr, current - expected))
    stale = added + removed
    assert not stale, (
        f"messages.pot is stale: {FIX}."
        + (f"\nNew in the sources:{_show(added)}" if added else "")
        + (f"\nGone from the sources:{_show(removed)}" if removed else "")
    )


def test_zh_cn_translates_every_message(template: Catalog, zh_cn: Catalog) -> None:
    assert not zh_cn.fuzzy, "the zh_CN header is marked fuzzy: pybabel compile would skip it"
    problems = []
    for message in template:
        if not message.id:
            continue
        translated = zh_cn.get(message.id, message.context)
        if translated is None:
            problems.append(f"{i18n.describe(message)}: not in the zh_CN catalog")
        elif translated.fuzzy:
            problems.append(f"{i18n.describe(message)}: fuzzy")
        elif not all(i18n.forms(translated.string)):
            problems.append(f"{i18n.describe(message)}: empty msgstr")
    assert not problems, f"incomplete zh_CN catalog ({FIX}):{_show(problems)}"


def test_zh_cn_keeps_the_placeholders_of_each_msgid(zh_cn: Catalog) -> None:
    problems = [
        f"{i18n.describe(message)}: {problem}"
        for message in zh_cn
        if message.id
        for problem in i18n.placeholder_problems(message, zh_cn.num_plurals)
    ]
    assert not problems, f"translations must keep every placeholder:{_show(problems)}"


def test_en_catalog_is_in_step_and_its_translations_keep_placeholders(
    template: Catalog, en: Catalog
) -> None:
    assert not en.fuzzy
    assert en.plural_forms == "nplurals=2; plural=(n != 1);"
    assert i18n.msgids(en) == i18n.msgids(template), FIX
    problems = [
        f"{i18n.describe(m)}: {p}" for m in en if m.id for p in i18n.placeholder_problems(m, 2)
    ]
    assert not problems, _show(problems)


@pytest.mark.parametrize(
    ("placeholder_text", "expected"),
    [
        ("Page %(page)d of %(pages)d", ["%(page)d", "%(pages)d"]),
        ("Unknown role '{role}' ({role!r}, {n:>3})", ["{n:>3}", "{role!r}", "{role}"]),
        ("100%% sure, {{literal}}", ["%%"]),
        ("50% off", ["%"]),
    ],
)
def test_placeholders_are_recognised(placeholder_text: str, expected: list[str]) -> None:
    assert sorted(i18n.placeholders(placeholder_text).elements()) == sorted(expected)


def test_compiled_catalogs_translate_and_pluralise(
    zh_cn: Catalog, en: Catalog, tmp_path: Path
) -> None:
    for locale, catalog in (("zh_CN", zh_cn), ("en", en)):
        mo = tmp_path / locale / "LC_MESSAGES" / "messages.mo"
        mo.parent.mkdir(parents=True)
        with mo.open("wb") as f:
            write_mo(f, catalog)
    zh = Translations.load(str(tmp_path), ["zh_CN"], domain="messages")
    english = Translations.load(str(tmp_path), ["en"], domain="messages")
    assert zh.gettext("Dashboard") == "工作台"
    assert zh.gettext("Log out") == "退出登录"
    assert zh.ngettext("%(num)d party", "%(num)d parties", 1) == "共 %(num)d 个市场主体"
    assert zh.ngettext("%(num)d party", "%(num)d parties", 5) == "共 %(num)d 个市场主体"
    assert english.gettext("Dashboard") == "Dashboard"
    assert english.ngettext("%(num)d party", "%(num)d parties", 1) == "%(num)d party"
    assert english.ngettext("%(num)d party", "%(num)d parties", 5) == "%(num)d parties"


def _po_copies(tmp_path: Path) -> Path:
    """The project's two catalogs (.po) in a folder of their own."""
    for locale in ("zh_CN", "en"):
        target = tmp_path / locale / "LC_MESSAGES" / "messages.po"
        target.parent.mkdir(parents=True)
        target.write_bytes(i18n.po_path(locale).read_bytes())
    return tmp_path


def test_compiling_unchanged_catalogs_leaves_the_mo_files_untouched(tmp_path: Path) -> None:
    from datafactor.web.i18n import compile_catalogs

    folder = _po_copies(tmp_path)
    mo = {locale: folder / locale / "LC_MESSAGES" / "messages.mo" for locale in ("zh_CN", "en")}
    assert sorted(compile_catalogs(folder)) == sorted(mo.values())
    before = {locale: path.stat() for locale, path in mo.items()}
    zh_bytes = mo["zh_CN"].read_bytes()

    # Nothing changed: nothing written, the same files (inode and modification time).
    assert compile_catalogs(folder) == []
    for locale, path in mo.items():
        now = path.stat()
        assert (now.st_ino, now.st_mtime_ns) == (before[locale].st_ino, before[locale].st_mtime_ns)

    # One catalog changed: only its .mo is replaced — by a new file renamed over it, so a reader
    # that opened the old one still reads the whole old catalog.
    po = folder / "en" / "LC_MESSAGES" / "messages.po"
    catalog = i18n.read_catalog(po, "en")
    catalog.get("Dashboard").string = "Overview"
    from babel.messages.pofile import write_po

    with po.open("wb") as f:
        write_po(f, catalog)
    with mo["en"].open("rb") as reader:
        assert compile_catalogs(folder) == [mo["en"]]
        assert reader.read() != mo["en"].read_bytes()  # the old file, whole
    assert mo["en"].stat().st_ino != before["en"].st_ino
    assert mo["zh_CN"].stat().st_ino == before["zh_CN"].st_ino
    assert mo["zh_CN"].read_bytes() == zh_bytes
    english = Translations.load(str(folder), ["en"], domain="messages")
    assert english.gettext("Dashboard") == "Overview"
    # No temporary file is left beside the catalogs.
    assert sorted(p.name for p in mo["en"].parent.iterdir()) == ["messages.mo", "messages.po"]


def test_the_script_compiles_with_the_application_s_compiler(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``make catalogs`` runs ``scripts/i18n.py compile``: the same bytes as the tests' compile,
    and a second run writes nothing."""
    folder = _po_copies(tmp_path)
    monkeypatch.setattr(i18n, "TRANSLATIONS", folder)
    monkeypatch.setattr(i18n, "ROOT", tmp_path)
    assert i18n.main(["compile"]) == 0
    assert "wrote zh_CN/LC_MESSAGES/messages.mo" in capsys.readouterr().out
    assert i18n.main(["compile"]) == 0
    assert capsys.readouterr().out.strip() == "compiled catalogs are up to date"
    makefile = (SCRIPT.parents[1] / "Makefile").read_text(encoding="utf-8")
    assert "scripts/i18n.py compile" in makefile
    assert "pybabel compile" not in makefile
