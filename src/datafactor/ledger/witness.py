"""A witness: an independent party's process that cosigns the log's checkpoints it can vouch for.

The witness keeps its own Ed25519 key and a small state file (the last checkpoint it cosigned) in
its own folder, outside the log's database. Each round it fetches the log's latest checkpoint
over HTTP, checks the log's signature, and asks for a consistency proof from the size it last
cosigned; only if the new tree is an append-only extension of the old one does it record the new
state (fsynced, before anything leaves the process) and hand back a C2SP tlog-cosignature. A
smaller tree (rollback), the same size with another root (fork) or a failing proof (rewrite) is
refused: the witness keeps its old state, writes the evidence to ``alerts.jsonl`` and reports a
signed alert to the log, which shows it on the public explorer. The witness trusts nothing the
log says about itself beyond what the signatures and proofs establish.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from datafactor.ledger.keys import load_or_create_cosigner, seed_of
from datafactor.ledger.merkle import EMPTY_ROOT, verify_consistency
from datafactor.ledger.note import (
    Checkpoint,
    Cosigner,
    NoteSignature,
    Signer,
    UnverifiedNoteError,
    Verifier,
    open_note,
    parse_note,
    sign_note,
)

API = "/api/v1/ledger"
KEY_FILE = "witness.key"
STATE_FILE = "state.json"
ALERTS_FILE = "alerts.jsonl"
# First line of a signed alert note; the rest of the body is one line of JSON.
ALERT_HEADER = "datafactor-witness-alert/v1"


class Transport(Protocol):
    """How the witness talks to the log: (method, path, body) -> (status, body)."""

    def __call__(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]: ...


class HttpTransport:
    """Plain HTTP(S) to the log's base URL with the standard library."""

    def __init__(self, base_url: str, timeout: float = 15.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def __call__(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        url = self.base_url + path
        if not url.startswith(("http://", "https://")):
            raise ValueError("the log URL must start with http:// or https://")
        headers = {"Content-Type": "text/plain; charset=utf-8"} if body is not None else {}
        request = urllib.request.Request(url, data=body, method=method, headers=headers)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                return int(response.status), bytes(response.read())
        except urllib.error.HTTPError as exc:
            return int(exc.code), exc.read()


@dataclass
class WitnessState:
    """What the witness last vouched for; persisted in ``state.json``."""

    origin: str | None = None
    log_keys: list[str] = field(default_factory=list)
    size: int | None = None
    root: str | None = None
    checkpoint: str | None = None
    cosigned_at: str | None = None
    alerted: list[str] = field(default_factory=list)  # "size:root" of checkpoints refused

    @classmethod
    def load(cls, path: Path) -> WitnessState:
        if not path.exists():
            return cls()
        data = json.loads(path.read_text("utf-8"))
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    def save(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, (json.dumps(asdict(self), indent=2) + "\n").encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


@dataclass(frozen=True)
class WitnessOutcome:
    """One round: ``cosigned``, ``unchanged``, ``refused`` or ``error``, and why."""

    status: str
    message: str
    size: int | None = None


class Witness:
    """Fetch → verify → cosign, with the state and key in ``state_dir``."""

    def __init__(
        self,
        transport: Transport,
        state_dir: Path,
        *,
        name: str = "datafactor-witness",
        log_keys: Sequence[str] = (),
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.transport = transport
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.cosigner, self.created = load_or_create_cosigner(self.state_dir / KEY_FILE, name)
        self._alert_signer = Signer(self.cosigner.name, seed_of(self.cosigner.key_string()))
        self.state_path = self.state_dir / STATE_FILE
        self.state = WitnessState.load(self.state_path)
        if log_keys:
            self.state.log_keys = [Verifier.from_key_string(k).key_string() for k in log_keys]
        self.say = log or (lambda message: None)

    @property
    def vkey(self) -> str:
        """The witness's public key, to register at the log (``datafactor ledger witness add``)."""
        return self.cosigner.verifier().key_string()

    # ------------------------------------------------------------------- one round

    def run_once(self) -> WitnessOutcome:
        try:
            return self._round()
        except (OSError, ValueError) as exc:
            return WitnessOutcome("error", f"could not check the log: {exc}")

    def run(
        self,
        interval: float,
        iterations: int | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> WitnessOutcome | None:
        outcome = None
        done = 0
        while iterations is None or done < iterations:
            outcome = self.run_once()
            self.say(f"{outcome.status}: {outcome.message}")
            done += 1
            if should_stop is not None and should_stop():
                break
            if iterations is None or done < iterations:
                time.sleep(interval)
        return outcome

    def _get(self, path: str) -> bytes:
        status, body = self.transport("GET", path)
        if status != 200:
            raise ValueError(f"GET {path} answered {status}: {body[:200]!r}")
        return body

    def _log_verifiers(self) -> list[Verifier]:
        if not self.state.log_keys:
            # Trust on first use: pin the key the log publishes now, and say so.
            vkey = self._get(f"{API}/key").decode("utf-8").strip()
            self.state.log_keys = [Verifier.from_key_string(vkey).key_string()]
            self.say(f"pinned the log key {vkey} (trust on first use)")
        return [Verifier.from_key_string(k) for k in self.state.log_keys]

    def _round(self) -> WitnessOutcome:
        verifiers = self._log_verifiers()
        note = self._get(f"{API}/checkpoint").decode("utf-8")
        try:
            body, _ = open_note(note, verifiers)
        except UnverifiedNoteError:
            return WitnessOutcome(
                "error",
                "the checkpoint is not signed by a log key this witness knows; if the log "
                "rotated its key, restart the witness with --log-key <new key>",
            )
        checkpoint = Checkpoint.parse(body)
        state = self.state
        if state.origin is not None and checkpoint.origin != state.origin:
            return self._refuse(
                "origin",
                f"the log's origin changed from {state.origin} to {checkpoint.origin}",
                note,
                checkpoint,
            )
        if state.size is None or state.root is None:
            return self._cosign(
                note, body, checkpoint, "first checkpoint seen (nothing to compare)"
            )
        old_root = bytes.fromhex(state.root)
        if checkpoint.size < state.size:
            return self._refuse(
                "rollback",
                f"the log went back from tree size {state.size} to {checkpoint.size}",
                note,
                checkpoint,
            )
        if checkpoint.size == state.size:
            if checkpoint.root_hash != old_root:
                return self._refuse(
                    "fork",
                    f"two different roots for tree size {state.size}: a fork",
                    note,
                    checkpoint,
                )
            if not self._carries_our_cosignature(note):
                return self._cosign(note, body, checkpoint, "re-sent the cosignature")
            return WitnessOutcome(
                "unchanged", f"tree size {state.size} already cosigned", state.size
            )
        proof_json = json.loads(
            self._get(f"{API}/proof/consistency?first={state.size}&second={checkpoint.size}")
        )
        proof = [bytes.fromhex(p) for p in proof_json.get("proof", [])]
        first_root = EMPTY_ROOT if state.size == 0 else old_root
        if not verify_consistency(
            state.size, checkpoint.size, first_root, checkpoint.root_hash, proof
        ):
            return self._refuse(
                "inconsistent",
                f"the checkpoint of tree size {checkpoint.size} is not an append-only extension "
                f"of the tree of size {state.size} this witness cosigned (history rewritten)",
                note,
                checkpoint,
                proof=[p.hex() for p in proof],
            )
        return self._cosign(note, body, checkpoint, f"consistent with tree size {state.size}")

    def _carries_our_cosignature(self, note: str) -> bool:
        _, signatures = parse_note(note)
        ident = (self.cosigner.name, self.cosigner.key_hash)
        return any((s.name, s.key_hash) == ident for s in signatures)

    def _cosign(self, note: str, body: str, checkpoint: Checkpoint, why: str) -> WitnessOutcome:
        signature = self.cosigner.sign(body.encode("utf-8"))
        line = NoteSignature(self.cosigner.name, self.cosigner.key_hash, signature).line()
        # Record what we vouch for durably before the cosignature leaves the process, so a crash
        # can never let this witness later cosign something inconsistent with it.
        self.state.origin = checkpoint.origin
        self.state.size = checkpoint.size
        self.state.root = checkpoint.root_hash.hex()
        self.state.checkpoint = note
        self.state.cosigned_at = datetime.now(UTC).isoformat()
        self.state.save(self.state_path)
        body_only, signatures = parse_note(note)
        ident = (self.cosigner.name, self.cosigner.key_hash)
        kept = "".join(s.line() for s in signatures if (s.name, s.key_hash) != ident)
        ours = body_only + "\n" + kept + line
        status, answer = self.transport("POST", f"{API}/cosignatures", ours.encode("utf-8"))
        if status == 201:
            return WitnessOutcome(
                "cosigned", f"tree size {checkpoint.size}: {why}", checkpoint.size
            )
        detail = _detail(answer)
        return WitnessOutcome(
            "cosigned",
            f"tree size {checkpoint.size}: {why}; the log did not store the cosignature "
            f"({status}: {detail}) — is this witness registered? "
            f"datafactor ledger witness add '{self.vkey}'",
            checkpoint.size,
        )

    def _refuse(
        self,
        kind: str,
        message: str,
        note: str,
        checkpoint: Checkpoint,
        proof: list[str] | None = None,
    ) -> WitnessOutcome:
        tag = f"{checkpoint.size}:{checkpoint.root_hash.hex()}"
        report: dict[str, Any] = {
            "kind": kind,
            "message": message,
            "old_size": self.state.size,
            "new_size": checkpoint.size,
            "old_checkpoint": self.state.checkpoint,
            "new_checkpoint": note,
            "proof": proof or [],
            "at": datetime.now(UTC).isoformat(),
        }
        if tag not in self.state.alerted:
            with (self.state_dir / ALERTS_FILE).open("a", encoding="utf-8") as f:
                f.write(json.dumps(report, sort_keys=True) + "\n")
                f.flush()
                os.fsync(f.fileno())
            self.state.alerted = [*self.state.alerted[-99:], tag]
            self.state.save(self.state_path)
            body = ALERT_HEADER + "\n" + json.dumps(report, sort_keys=True) + "\n"
            alert = sign_note(body, [self._alert_signer])
            try:
                status, answer = self.transport("POST", f"{API}/alerts", alert.encode("utf-8"))
            except OSError as exc:
                status, answer = 0, str(exc).encode()
            if status != 201:
                message += f" (the log did not record the alert: {status} {_detail(answer)})"
        return WitnessOutcome("refused", f"REFUSED ({kind}): {message}", checkpoint.size)


def _detail(answer: bytes) -> str:
    try:
        data = json.loads(answer)
    except ValueError:
        return answer[:200].decode("utf-8", "replace")
    return str(data.get("detail", data)) if isinstance(data, dict) else str(data)


def create_witness_key(state_dir: Path, name: str) -> tuple[Cosigner, bool]:
    """The witness key in ``state_dir`` (created on first use)."""
    Path(state_dir).mkdir(parents=True, exist_ok=True, mode=0o700)
    return load_or_create_cosigner(Path(state_dir) / KEY_FILE, name)
