"""``datafactor policy decide|templates|render``: the decision as JSON, exit codes, refusals."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from datafactor.cli import app as cli
from datafactor.policy.templates import TEMPLATE_DIR

PAID = str(TEMPLATE_DIR / "industry-paid.jsonld")
PERMIT = {
    "action": "read",
    "purpose": "credit_finance",
    "channel": "api",
    "time": "2026-12-01T10:00:00+08:00",
    "count_so_far": 3,
    "pay_amount": 50_000,
    "fields": ["region", "month"],
}


@pytest.fixture
def invoke(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()

    def run(*args: str, stdin: str | None = None):
        return runner.invoke(cli, list(args), catch_exceptions=False, input=stdin)

    return run


def write(tmp_path, name, data):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return str(path)


def test_decide_prints_exactly_the_four_keys_and_exits_0_on_permit(invoke, tmp_path):
    request = write(tmp_path, "r.json", PERMIT)
    result = invoke("policy", "decide", "--policy", PAID, "--request", request, "--json")
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert list(answer) == ["decision", "reasons", "duties", "rules"]
    assert answer["decision"] == "permit"
    assert answer["duties"] == ["compensate"]
    assert "POL-PERMISSION" in answer["rules"]
    assert all(isinstance(r, str) and r for r in answer["reasons"])


def test_a_deny_is_an_answer_too_exit_0_with_reasons_in_the_chosen_language(invoke, tmp_path):
    request = write(tmp_path, "r.json", {**PERMIT, "channel": "download"})
    result = invoke(
        "policy", "decide", "--policy", PAID, "--request", request, "--json", "--lang", "en"
    )
    assert result.exit_code == 0
    answer = json.loads(result.stdout)
    assert answer["decision"] == "deny"
    assert answer["duties"] == []
    assert "POL-PROHIBITION" in answer["rules"]
    assert any("prohibition" in r for r in answer["reasons"])
    zh = invoke(
        "policy", "decide", "--policy", PAID, "--request", request, "--json", "--lang", "zh"
    )
    assert any("禁止" in r for r in json.loads(zh.stdout)["reasons"])


def test_the_request_may_come_from_standard_input_and_text_output_names_the_decision(invoke):
    result = invoke(
        "policy", "decide", "--policy", PAID, "--request", "-", "--lang", "en",
        stdin=json.dumps(PERMIT),
    )  # fmt: skip
    assert result.exit_code == 0
    assert result.stdout.splitlines()[0] == "permit"
    assert "duties: compensate" in result.stdout


@pytest.mark.parametrize(
    ("policy", "request_", "named"),
    [
        ("missing.json", PERMIT, "missing.json"),
        ("{not json", PERMIT, "not valid JSON"),
        (PAID, {**PERMIT, "colour": "red"}, "colour"),
        (PAID, {**PERMIT, "time": "2026-12-01T10:00:00"}, "time"),
        ({"@context": "http://www.w3.org/ns/odrl.jsonld", "uid": "https://e.org/p",
          "permission": [{"action": "teleport"}]}, PERMIT, "teleport"),
        ({"@context": "http://www.w3.org/ns/odrl.jsonld", "uid": "https://e.org/p",
          "permission": [{"action": "use", "constraint": [
              {"leftOperand": "mood", "operator": "eq", "rightOperand": "x"}]}]}, PERMIT, "mood"),
    ],
)  # fmt: skip
def test_malformed_input_exits_2_with_a_message_naming_what_is_wrong(
    invoke, tmp_path, policy, request_, named
):
    if policy == "missing.json":
        policy_path = str(tmp_path / "missing.json")
    elif isinstance(policy, str) and not policy.endswith(".jsonld"):
        policy_path = write(tmp_path, "p.json", policy)
    else:
        policy_path = policy if isinstance(policy, str) else write(tmp_path, "p.json", policy)
    request = write(tmp_path, "r.json", request_)
    result = invoke(
        "policy", "decide", "--policy", policy_path, "--request", request, "--json",
        "--lang", "en",
    )  # fmt: skip
    assert result.exit_code == 2
    assert result.stdout == ""
    assert named in result.stderr
    assert "Traceback" not in result.output


def test_both_files_from_standard_input_is_refused(invoke):
    result = invoke("policy", "decide", "--policy", "-", "--request", "-")
    assert result.exit_code == 2


def test_templates_lists_the_four_and_render_prints_one_sentence_per_rule(invoke, tmp_path):
    listed = json.loads(invoke("policy", "templates", "--json", "--lang", "en").stdout)
    assert [t["name"] for t in listed] == [
        "public-welfare",
        "industry-paid",
        "sandbox-aggregates",
        "asean-cross-border",
    ]
    assert listed[1]["title"] == "Industry paid use"
    text = invoke("policy", "templates").stdout
    assert "asean-cross-border" in text
    rendered = invoke("policy", "render", PAID, "--lang", "en")
    assert rendered.exit_code == 0
    lines = rendered.stdout.strip().splitlines()
    assert lines[0].startswith("Permitted: use") and len(lines) == 3
    by_name = invoke("policy", "render", "sandbox-aggregates", "--lang", "zh")
    assert by_name.stdout.startswith("允许 聚合")
    bad = invoke("policy", "render", write(tmp_path, "bad.json", "[]"), "--lang", "en")
    assert bad.exit_code == 2
    assert invoke("policy", "render", PAID, "--lang", "fr").exit_code == 2
