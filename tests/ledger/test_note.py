"""Signed notes, checkpoints and cosignatures: Go interop vectors, round trips and rejections."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from datafactor.ledger import (
    Checkpoint,
    CosignatureVerifier,
    Cosigner,
    MemoryTree,
    NoteSignature,
    Signer,
    UnverifiedNoteError,
    Verifier,
    format_note,
    generate_key,
    key_hash,
    leaf_hash,
    open_note,
    parse_note,
    sign_note,
    verify_inclusion,
)

# golang.org/x/mod/sumdb/note's documented example key pair and signed note. Ed25519 is
# deterministic, so signing the same text must reproduce Go's note byte for byte.
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
PETER_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
PETER_NOTE = (
    PETER_TEXT + "\n— PeterNeumann "
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
# transparency-dev/formats note_cosigv1_test.go: a 0x01 key whose base64 holds a '+', and a
# native cosignature/v1 (0x04) witness key.
PLUS_VKEY = "TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6"
COSIG_VKEY = "remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2"

CHECKPOINT_BODY = (
    "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
)


def _checkpoint_body(size: int = 5) -> str:
    tree = MemoryTree(leaf_hash(bytes([i])) for i in range(size))
    return Checkpoint("datafactor.example/ledger", size, tree.root()).format()


# --- Go interoperability ---


def test_go_reference_note_is_reproduced_and_opens() -> None:
    signer = Signer.from_key_string(PETER_SKEY)
    assert signer.name == "PeterNeumann"
    assert signer.key_hash == 0xC74F20A3
    assert signer.key_string() == PETER_SKEY
    assert signer.verifier().key_string() == PETER_VKEY
    assert sign_note(PETER_TEXT, [signer]) == PETER_NOTE

    verifier = Verifier.from_key_string(PETER_VKEY)
    assert open_note(PETER_NOTE, [verifier]) == (PETER_TEXT, ["PeterNeumann"])
    assert open_note(PETER_NOTE.encode("utf-8"), [verifier]) == (PETER_TEXT, ["PeterNeumann"])


@pytest.mark.parametrize("vkey", [PETER_VKEY, ENOCH_VKEY, PLUS_VKEY])
def test_go_verifier_keys_parse_and_round_trip(vkey: str) -> None:
    assert Verifier.from_key_string(vkey).key_string() == vkey


def test_cosignature_key_id_uses_type_0x04() -> None:
    verifier = CosignatureVerifier.from_key_string(COSIG_VKEY)
    assert verifier.key_hash == 0xDA77ADE7
    assert verifier.key_string() == COSIG_VKEY
    # It is not a plain note key, and a plain key re-typed as a cosigner gets a new key ID.
    with pytest.raises(ValueError, match="type 0x04"):
        Verifier.from_key_string(COSIG_VKEY)
    plain = Verifier.from_key_string(PLUS_VKEY)
    retyped = CosignatureVerifier.from_key_string(PLUS_VKEY)
    assert retyped.public_key == plain.public_key
    assert retyped.key_hash == key_hash("TEST", 0x04, plain.public_key) != plain.key_hash


def test_every_mangled_verifier_key_is_refused() -> None:
    # As golang.org/x/mod's TestNewVerifier: every proper substring and every one-byte change.
    for i in range(len(PETER_VKEY) + 1):
        for j in range(i + 1, len(PETER_VKEY) + 1):
            if (i, j) != (0, len(PETER_VKEY)):
                with pytest.raises(ValueError, match="key"):
                    Verifier.from_key_string(PETER_VKEY[i:j])
    for i, ch in enumerate(PETER_VKEY):
        mangled = PETER_VKEY[:i] + chr(ord(ch) + 1) + PETER_VKEY[i + 1 :]
        with pytest.raises(ValueError, match="key"):
            Verifier.from_key_string(mangled)


@pytest.mark.parametrize(
    "skey",
    [
        PETER_SKEY.replace("PRIVATE", "PUBLIC"),
        PETER_SKEY.replace("c74f20a3", "c74f20a4"),
        PETER_SKEY.replace("c74f20a3", "0xc74f20"),
        PETER_SKEY[:-1],
        PETER_SKEY.replace("PeterNeumann", "Peter Neumann"),
        PETER_VKEY,
    ],
)
def test_mangled_signer_keys_are_refused(skey: str) -> None:
    with pytest.raises(ValueError, match="key"):
        Signer.from_key_string(skey)


# --- round trips and key handling ---


def test_generated_keys_round_trip() -> None:
    skey, vkey = generate_key("datafactor.example/log")
    signer = Signer.from_key_string(skey)
    verifier = Verifier.from_key_string(vkey)
    assert signer.verifier() == verifier
    assert signer.key_hash == verifier.key_hash
    note = sign_note(_checkpoint_body(), [signer])
    assert open_note(note, [verifier]) == (_checkpoint_body(), ["datafactor.example/log"])
    assert skey.split("+", 4)[4] not in repr(signer)


@pytest.mark.parametrize("name", ["", "a b", "a+b", "tab\tname", "nbsp\u00a0name"])
def test_invalid_key_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="key name"):
        Signer.generate(name)


def test_multiple_signers_and_bodies_with_blank_lines() -> None:
    log = Signer.generate("log.example")
    other = Signer.generate("other.example")
    body = "first paragraph\n\nsecond paragraph\n"
    note = sign_note(body, [log, other])
    assert open_note(note, [log.verifier(), other.verifier()]) == (
        body,
        ["log.example", "other.example"],
    )
    assert open_note(note, [other.verifier()]) == (body, ["other.example"])


# --- rejections ---


def test_tampered_body_is_rejected() -> None:
    signer = Signer.generate("log.example")
    note = sign_note(_checkpoint_body(), [signer])
    tampered = note.replace("\n5\n", "\n6\n", 1)
    assert tampered != note
    with pytest.raises(ValueError, match="does not verify"):
        open_note(tampered, [signer.verifier()])


def test_unknown_keys_are_ignored_and_reported() -> None:
    log = Signer.generate("log.example")
    stranger = Signer.generate("stranger.example")
    impostor = Signer.generate("log.example")  # same name, different key ID
    note = sign_note(_checkpoint_body(), [stranger, log, impostor])
    assert open_note(note, [log.verifier()])[1] == ["log.example"]

    with pytest.raises(UnverifiedNoteError) as caught:
        open_note(note, [Signer.generate("nobody.example").verifier()])
    assert isinstance(caught.value, ValueError)
    assert [s.name for s in caught.value.signatures] == [
        "stranger.example",
        "log.example",
        "log.example",
    ]
    assert "stranger.example" in str(caught.value)


def test_a_failing_signature_from_a_known_key_rejects_the_note() -> None:
    log = Signer.generate("log.example")
    witness = Signer.generate("witness.example")
    body = _checkpoint_body()
    good = sign_note(body, [log])
    bad_line = NoteSignature(witness.name, witness.key_hash, b"\x00" * 64).line()
    with pytest.raises(ValueError, match=r"witness\.example"):
        open_note(good + bad_line, [log.verifier(), witness.verifier()])


def test_repeated_signatures_count_once() -> None:
    log = Signer.generate("log.example")
    note = sign_note(_checkpoint_body(), [log, log])
    assert open_note(note, [log.verifier()])[1] == ["log.example"]


def test_ambiguous_verifiers_are_refused() -> None:
    log = Signer.generate("log.example")
    with pytest.raises(ValueError, match="two verifiers"):
        open_note(sign_note(_checkpoint_body(), [log]), [log.verifier(), log.verifier()])


def _sig_line(note: str) -> str:
    return note.rsplit("\n— ", 1)[1]


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda n: n.replace("— PeterNeumann x08go", "— PeterNeumann x08g!"), "base64"),
        (lambda n: n.replace("JnAM=\n", "JnAM\n"), "base64"),
        (lambda n: n.replace("JnAM=\n", "JnAN=\n"), "canonical"),
        (lambda n: n.replace("— PeterNeumann ", "— PeterNeumann  "), "base64"),
        (lambda n: n.replace("— ", "- "), "em dash"),
        (lambda n: n.replace("— PeterNeumann ", "— "), "key name"),
        (lambda n: n.replace("— PeterNeumann ", "— Peter+Neumann "), "key name"),
        (lambda n: n.replace("— PeterNeumann ", "— PeterNeumann"), "key name"),
        (lambda n: n[:-1], "newline"),
        (lambda n: n.replace("\n\n", "\n"), "blank line"),
        (lambda n: n.split("— ")[0], "no signature"),
        (lambda n: n.replace("problem,", "problem,\r"), "control"),
        (lambda n: n.replace("problem,", "problem,\x00"), "control"),
        (lambda n: n.replace(_sig_line(n), "PeterNeumann AAAAAA==\n"), "too short"),
        (lambda n: n + "\n", "no signature"),
    ],
)
def test_malformed_notes_are_rejected(mangle: object, message: str) -> None:
    assert callable(mangle)
    note = mangle(PETER_NOTE)
    assert note != PETER_NOTE
    with pytest.raises(ValueError, match=message):
        open_note(note, [Verifier.from_key_string(PETER_VKEY)])


def test_invalid_utf8_and_too_many_signatures_are_rejected() -> None:
    verifier = Verifier.from_key_string(PETER_VKEY)
    with pytest.raises(ValueError, match="UTF-8"):
        open_note(b"text\xff\n\n" + _sig_line(PETER_NOTE).encode(), [verifier])
    line = "— " + _sig_line(PETER_NOTE)
    with pytest.raises(ValueError, match="more than 100"):
        open_note(PETER_TEXT + "\n" + line * 101, [verifier])
    assert open_note(PETER_TEXT + "\n" + line * 100, [verifier])[1] == ["PeterNeumann"]


def test_signing_refuses_malformed_bodies() -> None:
    signer = Signer.generate("log.example")
    with pytest.raises(ValueError, match="newline"):
        sign_note("no newline", [signer])
    with pytest.raises(ValueError, match="control"):
        sign_note("bell\x07\n", [signer])
    with pytest.raises(ValueError, match="at least one"):
        sign_note("body\n", [])


def test_parse_and_format_are_inverse() -> None:
    body, signatures = parse_note(PETER_NOTE)
    assert body == PETER_TEXT
    assert signatures[0].key_hash == 0xC74F20A3
    assert len(signatures[0].signature) == 64
    assert format_note(body, signatures) == PETER_NOTE


# --- cosignatures ---


def test_cosignature_round_trip_and_byte_layout() -> None:
    witness = Cosigner.generate("witness.example/w1")
    body = _checkpoint_body()
    signature = witness.sign_at(body.encode(), 1_679_315_147)
    assert signature[:8] == (1_679_315_147).to_bytes(8, "big")
    assert len(signature) == 72

    # Check the signed message against the spec's layout with the raw Ed25519 key.
    public = Ed25519PublicKey.from_public_bytes(witness.verifier().public_key)
    public.verify(signature[8:], b"cosignature/v1\ntime 1679315147\n" + body.encode())

    log = Signer.generate("datafactor.example/ledger")
    note = format_note(
        body,
        [
            *parse_note(sign_note(body, [log]))[1],
            NoteSignature(witness.name, witness.key_hash, signature),
        ],
    )
    verifiers = [
        log.verifier(),
        CosignatureVerifier.from_key_string(witness.verifier().key_string()),
    ]
    assert open_note(note, verifiers)[1] == ["datafactor.example/ledger", "witness.example/w1"]
    assert CosignatureVerifier.timestamp_of(signature) == 1_679_315_147

    key_id = witness.key_hash
    assert key_id == key_hash(witness.name, 0x04, witness.verifier().public_key)
    assert witness.verifier().key_string().split("+")[2].startswith("B")  # base64 of 0x04…


def test_cosignature_is_rejected_when_tampered_or_misused() -> None:
    witness = Cosigner.generate("witness.example/w1")
    verifier = witness.verifier()
    body = _checkpoint_body().encode()
    signature = witness.sign_at(body, 1_700_000_000)
    assert verifier.verify(body, signature)
    # A different time, body or extension line breaks it.
    assert not verifier.verify(body, (1_700_000_001).to_bytes(8, "big") + signature[8:])
    assert not verifier.verify(body.replace(b"\n5\n", b"\n6\n"), signature)
    assert not verifier.verify(body + b"extension\n", signature)
    assert not verifier.verify(body, signature[:-1])
    # The plain Ed25519 signature over the body is not a cosignature, and vice versa.
    plain = Signer(witness.name, b"\x01" * 32)
    assert not Cosigner(witness.name, b"\x01" * 32).verifier().verify(body, plain.sign(body))
    assert not plain.verifier().verify(body, signature[8:])
    with pytest.raises(ValueError, match="checkpoint"):
        witness.sign_at(b"not a checkpoint\n", 1)
    with pytest.raises(ValueError, match="timestamp"):
        witness.sign_at(body, 2**63)


def test_cosigner_keys_round_trip_in_both_types() -> None:
    witness = Cosigner.generate("witness.example/w1")
    assert Cosigner.from_key_string(witness.key_string()).key_hash == witness.key_hash
    plain_skey, _ = generate_key("witness.example/w2")
    retyped = Cosigner.from_key_string(plain_skey)
    assert retyped.key_hash != Signer.from_key_string(plain_skey).key_hash
    body = _checkpoint_body().encode()
    assert retyped.verifier().verify(body, retyped.sign(body))


def test_timestamp_of_the_spec_example_cosignature() -> None:
    # c2sp.org/tlog-cosignature's example note: its witness line carries "time 1679315147".
    raw = base64.b64decode(
        "jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZ"
        "qhf5nNo0xUe+mbIUBkBIfZ+qnA=="
    )
    assert CosignatureVerifier.timestamp_of(raw[4:]) == 1_679_315_147
    with pytest.raises(ValueError, match="timestamp"):
        CosignatureVerifier.timestamp_of(raw[5:])


# --- checkpoints ---


def test_checkpoint_spec_example_parses_and_round_trips() -> None:
    checkpoint = Checkpoint.parse(CHECKPOINT_BODY)
    assert checkpoint.origin == "example.com/behind-the-sofa"
    assert checkpoint.size == 20852163
    assert checkpoint.root_hash == base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
    assert checkpoint.extensions == ()
    assert checkpoint.format() == CHECKPOINT_BODY


def test_checkpoint_with_extensions_and_empty_tree() -> None:
    empty = hashlib.sha256(b"").digest()
    checkpoint = Checkpoint("log.example", 0, empty, ("ext one", "ext two"))
    text = checkpoint.format()
    assert (
        text == "log.example\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\next one\next two\n"
    )
    assert Checkpoint.parse(text) == checkpoint


@pytest.mark.parametrize(
    "body",
    [
        "example.com/log\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=",
        "example.com/log\n20852163\n",
        "\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
        "example.com/log\n01\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
        "example.com/log\n+1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
        "example.com/log\n1_0\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
        "example.com/log\n١\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
        "example.com/log\n18446744073709551616\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
        "example.com/log\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I\n",
        "example.com/log\n1\nAAAA\n",
        "example.com/log\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n",
        "example.com/log\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\nbad\x01\n",
    ],
)
def test_malformed_checkpoints_are_rejected(body: str) -> None:
    with pytest.raises(ValueError, match="checkpoint"):
        Checkpoint.parse(body)


def test_checkpoint_end_to_end_with_inclusion() -> None:
    log = Signer.generate("datafactor.example/ledger")
    witness = Cosigner.generate("witness.example/w1")
    tree = MemoryTree()
    for i in range(13):
        tree.append(f"entry {i}".encode())
    body = Checkpoint("datafactor.example/ledger", tree.size, tree.root()).format()
    note = sign_note(body, [log, witness])

    opened, names = open_note(note, [log.verifier(), witness.verifier()])
    assert names == ["datafactor.example/ledger", "witness.example/w1"]
    checkpoint = Checkpoint.parse(opened)
    proof = tree.inclusion_proof(7)
    assert verify_inclusion(leaf_hash(b"entry 7"), 7, checkpoint.size, proof, checkpoint.root_hash)
