"""Policy benchmark: decisions per second per core for a typical compiled policy; p50/p99 each.

The policy is the built-in industry paid-use template (``policy/templates/industry-paid.jsonld``:
a permission to use for industry purposes by API or in the sandbox, within the term, a bounded
number of uses, listed fields only, with a compensate duty; prohibitions of onward transfer), compiled
once with ``compile_policy``. The requests are a fixed mix of permits and denies (wrong purpose,
download channel, past the term, count exhausted, a field outside the list, onward transfer),
parsed before timing, so the figure is the engine's decision alone — what every delivery and
computation step pays on each use.

Single process, pinned to one core where the OS allows it. Throughput: batches of
``BATCH`` decisions timed with ``perf_counter_ns`` for ``--duration`` seconds after a warm-up.
Latency: ``--policy-samples`` decisions each timed on its own with ``perf_counter_ns`` (the
timer's own cost, measured and reported, is included, so the percentiles are an upper bound).
Targets (issue 6): ≥ 50,000 decisions/s per core and p99 ≤ 0.1 ms. The issue names no peer tool,
so there is no comparison column.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import time
from typing import Any

from run import Row, Section

NAME = "Policy engine: decisions per second per core"
PACKAGES: list[str] = []
TEMPLATE = "industry-paid"
BATCH = 1000
WARMUP_SECONDS = 1.0
TARGET_RATE = 50_000
TARGET_P99_MS = 0.1

# (request, expected decision): the typical traffic of a paid-use listing, permits and denies.
MIX: list[tuple[dict[str, Any], str]] = [
    (
        {
            "action": "read",
            "purpose": "industry",
            "channel": "api",
            "time": "2026-12-01T10:00:00+08:00",
            "spatial": "CN-GX",
            "count_so_far": 10,
            "pay_amount": 50_000,
            "fields": ["region", "month", "consumption_kwh"],
        },
        "permit",
    ),
    (
        {
            "action": "read",
            "purpose": "industry",
            "channel": "sandbox",
            "time": "2027-03-01T09:30:00+08:00",
            "spatial": "CN",
            "count_so_far": 0,
            "pay_amount": 50_000,
            "fields": ["region"],
        },
        "permit",
    ),
    (
        {
            "action": "read",
            "purpose": "public_governance",
            "channel": "api",
            "time": "2026-12-01T10:00:00+08:00",
            "count_so_far": 1,
            "pay_amount": 50_000,
            "fields": ["region"],
        },
        "deny",
    ),
    (
        {
            "action": "read",
            "purpose": "industry",
            "channel": "download",
            "time": "2026-12-01T10:00:00+08:00",
            "count_so_far": 1,
            "pay_amount": 50_000,
            "fields": ["region"],
        },
        "deny",
    ),
    (
        {
            "action": "read",
            "purpose": "industry",
            "channel": "api",
            "time": "2029-01-01T00:00:00+08:00",
            "count_so_far": 1,
            "pay_amount": 50_000,
            "fields": ["region"],
        },
        "deny",
    ),
    (
        {
            "action": "read",
            "purpose": "industry",
            "channel": "api",
            "time": "2026-12-01T10:00:00+08:00",
            "count_so_far": 1000,
            "pay_amount": 50_000,
            "fields": ["region"],
        },
        "deny",
    ),
    (
        {
            "action": "read",
            "purpose": "industry",
            "channel": "api",
            "time": "2026-12-01T10:00:00+08:00",
            "count_so_far": 5,
            "pay_amount": 50_000,
            "fields": ["region", "customer_name"],
        },
        "deny",
    ),
    ({"action": "transfer", "purpose": "industry", "channel": "api"}, "deny"),
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--policy-samples",
        type=int,
        default=200_000,
        help="decisions timed one by one for the latency percentiles (default 200000)",
    )


def _pin_one_core() -> str:
    if not hasattr(os, "sched_setaffinity"):
        return "not pinned (no sched_setaffinity)"
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return f"pinned to CPU {cpu}"


def _percentile(sorted_ns: list[int], q: float) -> float:
    index = min(len(sorted_ns) - 1, max(0, round(q * (len(sorted_ns) - 1))))
    return sorted_ns[index] / 1e6  # ms


def run(args: argparse.Namespace) -> Section:
    from datafactor.policy.engine import compile_policy
    from datafactor.policy.request import parse_request
    from datafactor.policy.templates import load_template

    seconds = max(1.0, float(args.duration))
    samples = int(getattr(args, "policy_samples", 200_000))
    affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    pinned = _pin_one_core()
    try:
        compiled = compile_policy(load_template(TEMPLATE))
        requests = [parse_request(r) for r, _ in MIX]
        expected = [e for _, e in MIX]
        got = [compiled.decide(r).as_dict("en")["decision"] for r in requests]
        mismatches = [
            f"request {i}: expected {e}, got {g}"
            for i, (e, g) in enumerate(zip(expected, got, strict=True))
            if e != g
        ]
        # A batch cycles through the mix, so every batch has the same share of permits and denies.
        batch = (requests * (BATCH // len(requests) + 1))[:BATCH]
        decide = compiled.decide
        perf = time.perf_counter_ns

        gc.collect()
        gc.freeze()  # as the production entry point does after start-up
        deadline = time.monotonic() + WARMUP_SECONDS
        while time.monotonic() < deadline:
            for r in batch:
                decide(r)

        decisions = 0
        elapsed_ns = 0
        batch_rates: list[float] = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            start = perf()
            for r in batch:
                decide(r)
            took = perf() - start
            elapsed_ns += took
            decisions += len(batch)
            batch_rates.append(len(batch) / (took / 1e9))
        rate = decisions / (elapsed_ns / 1e9)

        timer_ns = []
        for _ in range(10_000):
            start = perf()
            timer_ns.append(perf() - start)
        timer_overhead = statistics.median(timer_ns)

        each: list[int] = []
        n = len(requests)
        for i in range(samples):
            r = requests[i % n]
            start = perf()
            decide(r)
            each.append(perf() - start)
        each.sort()
        p50, p99, p999 = (_percentile(each, q) for q in (0.50, 0.99, 0.999))
    finally:
        gc.unfreeze()
        if affinity is not None:
            os.sched_setaffinity(0, affinity)

    permits = expected.count("permit")
    rows = [
        Row(
            "decisions as expected for the request mix",
            f"{len(MIX) - len(mismatches)} of {len(MIX)}",
            f"{len(MIX)}",
            not mismatches,
        ),
        Row(
            "decisions per second (one core)",
            f"{rate:,.0f}/s",
            f"≥ {TARGET_RATE:,}/s",
            rate >= TARGET_RATE,
            f"{rate / TARGET_RATE:.1f}× target",
        ),
        Row(
            "throughput of the slowest / median batch",
            f"{min(batch_rates):,.0f}/s / {statistics.median(batch_rates):,.0f}/s",
        ),
        Row("latency per decision p50", f"{p50 * 1000:.1f} µs"),
        Row(
            "latency per decision p99",
            f"{p99 * 1000:.1f} µs",
            f"≤ {TARGET_P99_MS * 1000:.0f} µs",
            p99 <= TARGET_P99_MS,
            f"{p99 / TARGET_P99_MS:.2f} of target",
        ),
        Row("latency per decision p99.9", f"{p999 * 1000:.1f} µs"),
    ]
    description = (
        f"The industry paid-use template (`{TEMPLATE}`) compiled once; {len(MIX)} requests "
        f"({permits} permits, {len(MIX) - permits} denies: wrong purpose, download channel, past "
        "the term, uses exhausted, a field outside the list, onward transfer) parsed before "
        f"timing. One process, {pinned}, garbage collector frozen after set-up. Throughput: "
        f"{decisions:,} decisions in batches of {BATCH} timed with `perf_counter_ns` over "
        f"{seconds:.0f} s after a {WARMUP_SECONDS:.0f} s warm-up. Latency: {samples:,} "
        "decisions each timed alone. Targets from issue 6; the issue names no peer tool, so "
        "there is no comparison."
    )
    notes = [
        f"Each latency sample includes one `perf_counter_ns` pair (median {timer_overhead:.0f} "
        "ns on this machine), so the percentiles are upper bounds.",
        "Parsing the policy and the request is not timed: a grant's policy is compiled once "
        "and the request arrives already parsed by the API or the delivery step.",
    ]
    if mismatches:
        notes.append("Unexpected decisions: " + "; ".join(mismatches))
    return Section(
        title=NAME,
        description=description,
        rows=rows,
        notes=notes,
        ratio_header="Ratio vs target",
    )
