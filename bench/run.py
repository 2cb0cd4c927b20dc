"""``make bench``: run the benchmarks in ``bench/`` and write ``docs/benchmarks.md``.

    python bench/run.py [--only api[,other]] [--duration SECONDS] [--output docs/benchmarks.md]

Each benchmark is a module in this folder listed in ``BENCHMARKS``. It exposes ``NAME`` (a short
title) and ``run(args) -> Section``; it may also expose ``PACKAGES`` (distribution names whose
versions belong in the header) and ``add_arguments(parser)`` for options of its own. A module
builds its result with the ``Section`` and ``Row`` classes below (``from run import Row, Section``).

The report starts with the machine (CPU, cores, RAM, OS, Python, library versions) and the date,
then one section per benchmark. Each section sits between ``<!-- bench:<module> -->`` markers, so
``--only`` re-runs some benchmarks and keeps the other sections of the existing report as they were.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import os
import platform
import re
import sqlite3
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

# `python bench/run.py` runs this file as __main__; register it as `run` too, so that benchmark
# modules doing `from run import Section` get these very classes rather than a second copy.
sys.modules.setdefault("run", sys.modules[__name__])

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
DEFAULT_OUTPUT = REPO / "docs" / "benchmarks.md"

# The registry: module names in bench/, in report order. Later benchmarks add themselves here.
BENCHMARKS: list[str] = [
    "api",
    "ledger",
    "discovery",
    "quality",
    "registry",
    "policy",
    "settlement",
    "exchange_settle",
    "exchange_trades",
    "sandbox",
]
# Short names ``--only`` also takes.
ALIASES: dict[str, str] = {"trades": "exchange_trades"}

# Library versions shown in the header (each benchmark may add its own with PACKAGES).
BASE_PACKAGES = [
    "datafactor",
    "fastapi",
    "starlette",
    "uvicorn",
    "uvloop",
    "httptools",
    "pydantic",
    "pydantic-core",
    "sqlalchemy",
    "psycopg",
    "psycopg-binary",
]


@dataclass
class Row:
    """One figure of a benchmark. ``ok`` is None when the figure has no target."""

    figure: str
    value: str
    target: str = ""
    ok: bool | None = None
    ratio: str = ""


@dataclass
class Section:
    """What a benchmark module returns: a titled table plus free-text notes (markdown)."""

    title: str
    description: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    ratio_header: str = "Ratio vs ceiling"

    @property
    def passed(self) -> bool:
        return all(row.ok is not False for row in self.rows)


# ------------------------------------------------------------------------------------- machine


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def cpu_model() -> str:
    for line in _read("/proc/cpuinfo").splitlines():
        if line.lower().startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def ram() -> str:
    match = re.search(r"^MemTotal:\s+(\d+) kB", _read("/proc/meminfo"), re.MULTILINE)
    return f"{int(match.group(1)) / 1024 / 1024:.1f} GiB" if match else "unknown"


def os_name() -> str:
    match = re.search(r'^PRETTY_NAME="?([^"\n]*)"?', _read("/etc/os-release"), re.MULTILINE)
    name = match.group(1) if match else platform.system()
    return f"{name}, kernel {platform.release()}"


def cores() -> str:
    logical = os.cpu_count() or 0
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else logical
    text = f"{logical} logical"
    if usable != logical:
        text += f" ({usable} usable by this process)"
    return text


def package_versions(names: list[str]) -> list[str]:
    out: list[str] = []
    for name in dict.fromkeys(names):
        try:
            out.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            out.append(f"{name} (not installed)")
    return out


def tool_version(cmd: list[str]) -> str:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "not found"
    text = (done.stdout or done.stderr).strip().splitlines()
    return text[0].strip() if text else "unknown"


def postgres_version() -> str:
    sys.path.insert(0, str(REPO / "tests" / "support"))
    try:
        from pgserver import find_bindir

        bindir = find_bindir()
    except Exception:  # the header reports only what it can find
        bindir = None
    return tool_version([str(bindir / "postgres"), "--version"]) if bindir else "not found"


def header(modules: list[ModuleType]) -> str:
    packages = BASE_PACKAGES + [p for m in modules for p in getattr(m, "PACKAGES", [])]
    wrk = tool_version(["wrk", "--version"])
    wrk = wrk.split(" Copyright")[0]
    lines = [
        "# Benchmarks",
        "",
        "Generated by `make bench` (`python bench/run.py`); do not edit by hand — re-run instead.",
        "Figures depend on the machine below; compare runs on the same machine only.",
        "",
        "| Machine | |",
        "|---|---|",
        f"| Date | {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} |",
        f"| CPU | {cpu_model()} |",
        f"| Cores | {cores()} |",
        f"| RAM | {ram()} |",
        f"| OS | {os_name()} |",
        f"| Python | {platform.python_implementation()} {platform.python_version()} |",
        f"| Libraries | {', '.join(package_versions(packages))} |",
        f"| SQLite | {sqlite3.sqlite_version} |",
        f"| PostgreSQL | {postgres_version()} |",
        f"| Load generator | {wrk} |",
        "",
    ]
    return "\n".join(lines)


# -------------------------------------------------------------------------------------- report


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(name: str, section: Section, seconds: float) -> str:
    verdict = "PASS" if section.passed else "FAIL"
    lines = [
        f"<!-- bench:{name} -->",
        f"## {section.title} — {verdict}",
        "",
        section.description.strip(),
        "",
        f"| Figure | Value | Target | Pass/fail | {section.ratio_header} |",
        "|---|---:|---|---|---:|",
    ]
    for row in section.rows:
        mark = {True: "pass", False: "**FAIL**", None: ""}[row.ok]
        lines.append(
            f"| {_cell(row.figure)} | {_cell(row.value)} | {_cell(row.target)} | {mark} "
            f"| {_cell(row.ratio)} |"
        )
    if section.notes:
        lines += ["", *[f"- {note}" for note in section.notes]]
    lines += ["", f"_Benchmark `{name}` took {seconds:.0f} s._", f"<!-- /bench:{name} -->", ""]
    return "\n".join(lines)


def failed_section(name: str, error: str) -> Section:
    return Section(
        title=f"{name}",
        description="The benchmark did not complete.",
        rows=[Row("completed", "no", "yes", False)],
        notes=["```\n" + error.strip()[-3000:] + "\n```"],
    )


def existing_sections(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    text = path.read_text()
    pattern = re.compile(r"<!-- bench:(\w+) -->\n.*?<!-- /bench:\1 -->\n", re.DOTALL)
    return {m.group(1): m.group(0) for m in pattern.finditer(text)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        help=f"benchmarks to run (comma-separated or repeated) among {BENCHMARKS}",
    )
    parser.add_argument(
        "--duration", type=float, default=15.0, help="seconds of measured load per run (default 15)"
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        help="report to write (default docs/benchmarks.md)",
    )
    sys.path.insert(0, str(BENCH_DIR))
    modules = {name: importlib.import_module(name) for name in BENCHMARKS}
    for module in modules.values():
        if hasattr(module, "add_arguments"):
            module.add_arguments(parser)
    args = parser.parse_args(argv)
    # ``--only exchange-settle`` names the module ``exchange_settle`` (markers are \w+).
    only = [n.strip().replace("-", "_") for item in args.only for n in item.split(",") if n.strip()]
    only = [ALIASES.get(n, n) for n in only]
    unknown = sorted(set(only) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; known: {BENCHMARKS}")
    selected = only or BENCHMARKS

    kept = existing_sections(args.output)
    rendered: dict[str, str] = {}
    ok = True
    for name in selected:
        print(f"== bench {name}", flush=True)
        started = time.monotonic()
        try:
            section = modules[name].run(args)
        except Exception:  # one broken benchmark must not hide the others
            traceback.print_exc()
            section = failed_section(name, traceback.format_exc())
        elapsed = time.monotonic() - started
        rendered[name] = render(name, section, elapsed)
        ok = ok and section.passed
        print(rendered[name], flush=True)

    body = [rendered.get(name) or kept.get(name) for name in BENCHMARKS]
    text = header(list(modules.values())) + "\n" + "\n".join(s for s in body if s)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(f"wrote {args.output}", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
