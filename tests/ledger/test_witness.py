"""The witness's rules against a scripted log (no database): it cosigns only append-only growth,
persists what it vouched for before answering, and refuses rollbacks, forks and unknown keys."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from datafactor.ledger import (
    Checkpoint,
    CosignatureVerifier,
    MemoryTree,
    Signer,
    open_note,
    sign_note,
)
from datafactor.ledger.witness import ALERT_HEADER, KEY_FILE, Witness, WitnessState

ORIGIN = "log.example/test"


class FakeLog:
    """Serves checkpoints and proofs from an in-memory tree, and records what is posted."""

    def __init__(self) -> None:
        self.signer = Signer.generate(ORIGIN)
        self.tree = MemoryTree()
        self.note = ""
        self.posted: list[tuple[str, str]] = []
        self.post_status = 201

    def grow(self, n: int, tag: str = "x") -> None:
        for i in range(n):
            self.tree.append(f"{tag}{self.tree.size + i}".encode())
        self.sign()

    def sign(self, size: int | None = None, root: bytes | None = None) -> None:
        size = self.tree.size if size is None else size
        root = self.tree.root(size) if root is None else root
        self.note = sign_note(Checkpoint(ORIGIN, size, root).format(), [self.signer])

    def __call__(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        if method == "POST":
            assert body is not None
            self.posted.append((path, body.decode()))
            return self.post_status, b"{}"
        if path.endswith("/key"):
            return 200, self.signer.verifier().key_string().encode()
        if path.endswith("/checkpoint"):
            return 200, self.note.encode()
        if "/proof/consistency" in path:
            query = dict(p.split("=") for p in path.split("?")[1].split("&"))
            first, second = int(query["first"]), int(query["second"])
            proof = self.tree.consistency_proof(first, min(second, self.tree.size))
            return 200, json.dumps({"proof": [p.hex() for p in proof]}).encode()
        return 404, b"{}"


@pytest.fixture
def log() -> FakeLog:
    fake = FakeLog()
    fake.grow(5)
    return fake


def test_first_round_pins_the_key_and_cosigns(log: FakeLog, tmp_path: Path) -> None:
    witness = Witness(log, tmp_path, name="w1")
    assert witness.created
    assert stat.S_IMODE((tmp_path / KEY_FILE).stat().st_mode) == 0o600
    outcome = witness.run_once()
    assert outcome.status == "cosigned"
    assert witness.state.log_keys == [log.signer.verifier().key_string()]
    path, posted = log.posted[-1]
    assert path.endswith("/cosignatures")
    verifier = CosignatureVerifier.from_key_string(witness.vkey)
    assert open_note(posted, [verifier])[1] == ["w1"]
    saved = WitnessState.load(tmp_path / "state.json")
    assert (saved.size, saved.origin) == (5, ORIGIN)
    # A restarted witness keeps its key and state.
    again = Witness(log, tmp_path, name="ignored")
    assert not again.created
    assert again.vkey == witness.vkey
    resent = again.run_once()
    assert resent.status == "cosigned"  # the log served it without our cosignature
    assert "re-sent" in resent.message
    log.note = log.posted[-1][1]  # now it serves the checkpoint with the cosignature attached
    assert again.run_once().status == "unchanged"


def test_growth_is_cosigned_after_a_consistency_check(log: FakeLog, tmp_path: Path) -> None:
    witness = Witness(log, tmp_path)
    witness.run_once()
    log.grow(9)
    outcome = witness.run_once()
    assert outcome.status == "cosigned"
    assert "consistent with tree size 5" in outcome.message
    assert witness.state.size == 14


def test_rollback_fork_and_rewrite_are_refused_and_alerted(log: FakeLog, tmp_path: Path) -> None:
    witness = Witness(log, tmp_path, name="w")
    witness.run_once()
    log.grow(3)
    witness.run_once()  # size 8
    vouched = witness.state.root

    log.sign(size=6)
    rollback = witness.run_once()
    assert rollback.status == "refused"
    assert "rollback" in rollback.message

    log.sign(size=8, root=bytes(32))
    fork = witness.run_once()
    assert fork.status == "refused"
    assert "fork" in fork.message

    other = MemoryTree()
    for i in range(12):
        other.append(f"y{i}".encode())
    log.tree = other
    log.sign()
    rewrite = witness.run_once()
    assert rewrite.status == "refused"
    assert "inconsistent" in rewrite.message

    assert (witness.state.size, witness.state.root) == (8, vouched)
    alerts = [json.loads(line) for line in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    assert [a["kind"] for a in alerts] == ["rollback", "fork", "inconsistent"]
    posted = [body for path, body in log.posted if path.endswith("/alerts")]
    assert len(posted) == 3
    assert all(body.startswith(ALERT_HEADER + "\n") for body in posted)
    # Signed with the witness's key (as an ordinary Ed25519 note signer).
    from datafactor.ledger import Verifier

    alert_key = Verifier("w", CosignatureVerifier.from_key_string(witness.vkey).public_key)
    assert open_note(posted[0], [alert_key])[1] == ["w"]
    # Seen again: refused again, not alerted again.
    assert witness.run_once().status == "refused"
    assert len([p for p, _ in log.posted if p.endswith("/alerts")]) == 3


def test_a_checkpoint_signed_by_an_unknown_key_is_not_cosigned(
    log: FakeLog, tmp_path: Path
) -> None:
    witness = Witness(log, tmp_path, log_keys=[Signer.generate(ORIGIN).verifier().key_string()])
    outcome = witness.run_once()
    assert outcome.status == "error"
    assert "--log-key" in outcome.message
    assert not log.posted


def test_an_unregistered_witness_is_told_how_to_register(log: FakeLog, tmp_path: Path) -> None:
    log.post_status = 400
    witness = Witness(log, tmp_path)
    outcome = witness.run_once()
    assert outcome.status == "cosigned"
    assert "datafactor ledger witness add" in outcome.message


def test_an_unreachable_log_is_an_error_not_a_crash(tmp_path: Path) -> None:
    def down(method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        raise OSError("connection refused")

    assert Witness(down, tmp_path).run_once().status == "error"
