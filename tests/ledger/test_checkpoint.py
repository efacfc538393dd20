"""Signed checkpoints: C2SP tlog-checkpoint bodies in C2SP signed notes, Ed25519 keys."""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.checkpoint import (
    Checkpoint,
    CheckpointError,
    SignerKey,
    generate_key,
    load_signer,
    load_verifier,
    open_note,
    parse_body,
    parse_signer_key,
    parse_verifier_key,
    sign,
    sign_note,
    verifier_from_signer,
    verify_note,
    write_keypair,
)
from ledger.errors import LedgerError

Keys = tuple[str, str]

NAME = "selva.example/ledger"
ROOT = hashlib.sha256(b"some tree").digest()
ROOT64 = base64.b64encode(ROOT)
CHECKPOINT = Checkpoint(NAME, 1234, ROOT)
DASH = b"\xe2\x80\x94 "  # U+2014 em dash, then a space
ZERO_SEED_PUBLIC = bytes.fromhex("3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29")

# Vectors from the tests of golang.org/x/mod/sumdb/note, the reference implementation.
GO_SIGNER = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VERIFIER = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_ENOCH = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
GO_TEXT = (
    b"If you think cryptography is the answer to your problem,\n"
    b"then you don't know what your problem is.\n"
)
GO_PETER_SIG = DASH + (
    b"PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZS"
    b"NXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)
GO_ENOCH_SIG = DASH + (
    b"EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01"
    b"oOTGwnWLox33WWd1RvMc+QQ=\n"
)


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


@pytest.fixture(scope="module")
def keys() -> Keys:
    return generate_key(NAME)


@pytest.fixture(scope="module")
def note(keys: Keys) -> bytes:
    return sign(CHECKPOINT, keys[0])


def last_sig_line(note: bytes) -> bytes:
    """The last signature line of a note, newline included."""
    return note[note.rindex(b"\n\n") + 2 :].splitlines(keepends=True)[-1]


def with_sig_payload(line: bytes, payload: bytes) -> bytes:
    """The signature line with its base64 part replaced by payload's encoding."""
    return line[: line.rindex(b" ") + 1] + base64.b64encode(payload) + b"\n"


def rejected(note: bytes, verifier: str, match: str | None = None) -> None:
    with pytest.raises(CheckpointError, match=match):
        open_note(note, verifier)


# --- checkpoint body ----------------------------------------------------------------------


def test_body_layout() -> None:
    cp = Checkpoint("o", 0, bytes(32), ("ext one", "ext-two"))
    assert cp.body() == b"o\n0\n" + b64(bytes(32)).encode() + b"\next one\next-two\n"
    assert parse_body(cp.body()) == cp == Checkpoint.parse_body(cp.body())
    assert issubclass(CheckpointError, LedgerError)


_LINE = st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1)


@given(
    origin=_LINE,
    size=st.integers(0, 2**64 - 1),
    root=st.binary(min_size=32, max_size=32),
    extensions=st.lists(_LINE, max_size=3),
)
@settings(database=None)
def test_body_round_trip(origin: str, size: int, root: bytes, extensions: list[str]) -> None:
    cp = Checkpoint(origin, size, root, tuple(extensions))
    assert parse_body(cp.body()) == cp


_BAD_SIZES = [b"", b"-1", b"01", b"00", b"+1", b" 1", b"1 ", b"1_0", b"0x1", b"1.0", b"1e3",
              "\u0661".encode(), str(2**64).encode(), b"9" * 5000]
_BAD_ROOTS = [b"", base64.b64encode(ROOT[:31]), base64.b64encode(ROOT + b"x"),
              ROOT64[:-1] + b"A", ROOT64.rstrip(b"="), ROOT64 + b"=", ROOT.hex().encode(),
              b" " + ROOT64, ROOT64.replace(b"+", b"-").replace(b"/", b"_")]


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\n",
        b"o\n1\n",
        b"o\n1\n" + ROOT64,  # no final newline
        b"\n1\n" + ROOT64 + b"\n",  # empty origin
        b"o\n1\n" + ROOT64 + b"\n\n",  # empty extension line
        b"o\n1\n" + ROOT64 + b"\nx\n\ny\n",
        b"o\r\n1\n" + ROOT64 + b"\n",
        b"o\x00\n1\n" + ROOT64 + b"\n",
        b"o\xff\n1\n" + ROOT64 + b"\n",
        *(b"o\n" + size + b"\n" + ROOT64 + b"\n" for size in _BAD_SIZES),
        *(b"o\n1\n" + root + b"\n" for root in _BAD_ROOTS),
    ],
)
def test_parse_body_rejects(body: bytes) -> None:
    with pytest.raises(CheckpointError):
        parse_body(body)


def test_root_base64_must_be_canonical() -> None:
    assert ROOT64.endswith(b"=") and not ROOT64.endswith(b"==")  # 32 bytes: 2 spare bits
    last = ROOT64[-2:-1]
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    sibling = alphabet[alphabet.index(last) ^ 1 : (alphabet.index(last) ^ 1) + 1]
    assert base64.b64decode(ROOT64[:-2] + sibling + b"=") == ROOT  # same bytes, other spelling
    with pytest.raises(CheckpointError, match="canonical"):
        parse_body(b"o\n1\n" + ROOT64[:-2] + sibling + b"=\n")


@pytest.mark.parametrize(
    "args",
    [
        ("", 1, ROOT),
        ("a\nb", 1, ROOT),
        ("a\tb", 1, ROOT),
        ("\ud800", 1, ROOT),
        (NAME, -1, ROOT),
        (NAME, 2**64, ROOT),
        (NAME, True, ROOT),
        (NAME, "1", ROOT),
        (NAME, 1, ROOT[:31]),
        (NAME, 1, ROOT.hex()),
        (NAME, 1, ROOT, ("",)),
        (NAME, 1, ROOT, ("a\nb",)),
        (NAME, 1, ROOT, ["x"]),
    ],
)
def test_checkpoint_rejects_bad_fields(args: tuple[object, ...]) -> None:
    with pytest.raises(CheckpointError):
        Checkpoint(*args)  # type: ignore[arg-type]


# --- signing and opening ------------------------------------------------------------------


def test_round_trip(keys: Keys) -> None:
    signer, verifier = keys
    cp = Checkpoint(NAME, 0, bytes(32), ("extension",))
    signed = sign(cp, signer)
    assert signed.startswith(cp.body() + b"\n" + DASH + NAME.encode() + b" ")
    assert signed.endswith(b"\n") and signed.count(b"\n\n") == 1
    assert open_note(signed, verifier) == cp
    assert open_note(signed, parse_verifier_key(verifier), origin=NAME) == cp
    assert sign(cp, parse_signer_key(signer)) == signed  # Ed25519 is deterministic
    with pytest.raises(CheckpointError, match="origin"):
        open_note(signed, verifier, origin="other.example/log")


def test_known_answer_from_first_principles() -> None:
    seed = bytes(32)
    private = Ed25519PrivateKey.from_private_bytes(seed)
    public = private.public_key().public_bytes_raw()
    assert public == ZERO_SEED_PUBLIC
    key_id = hashlib.sha256(NAME.encode() + b"\n" + b"\x01" + public).digest()[:4]

    signer = "PRIVATE+KEY+" + NAME + "+" + key_id.hex() + "+" + b64(b"\x01" + seed)
    verifier = NAME + "+" + key_id.hex() + "+" + b64(b"\x01" + public)
    assert SignerKey.from_seed(NAME, seed).encode() == signer
    assert verifier_from_signer(signer) == verifier
    name, hex_id, key64 = verifier.split("+", 2)
    assert (name, len(hex_id), hex_id.lower()) == (NAME, 8, hex_id)
    assert base64.b64decode(key64)[0] == 0x01
    parsed = parse_verifier_key(verifier)
    assert (parsed.name, parsed.key_id, parsed.public_key) == (NAME, key_id, public)
    assert b64(seed) not in repr(parse_signer_key(signer))  # the seed stays out of repr

    body = f"{NAME}\n5\n{b64(ROOT)}\n".encode()
    signature = base64.b64encode(key_id + private.sign(body))
    expected = body + b"\n" + b"\xe2\x80\x94 " + NAME.encode() + b" " + signature + b"\n"
    assert sign(Checkpoint(NAME, 5, ROOT), signer) == expected
    assert open_note(expected, verifier) == Checkpoint(NAME, 5, ROOT)


def test_go_reference_vectors() -> None:
    assert verifier_from_signer(GO_SIGNER) == GO_VERIFIER
    assert sign_note(GO_TEXT, GO_SIGNER) == GO_TEXT + b"\n" + GO_PETER_SIG
    both = GO_TEXT + b"\n" + GO_PETER_SIG + GO_ENOCH_SIG
    assert verify_note(both, GO_VERIFIER) == GO_TEXT
    assert verify_note(both, GO_ENOCH) == GO_TEXT
    with pytest.raises(CheckpointError, match="fewer than three lines"):
        open_note(both, GO_VERIFIER)  # signed, but not a checkpoint
    with pytest.raises(CheckpointError, match="no signature by PeterNeumann"):
        verify_note(GO_TEXT + b"\n" + GO_ENOCH_SIG, GO_VERIFIER)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"\n1234\n", b"\n1235\n"),
        (ROOT64, base64.b64encode(bytes(32))),
        (NAME.encode() + b"\n1234", b"selva.example/other\n1234"),
    ],
    ids=["size", "root", "origin"],
)
def test_edited_body_rejected(keys: Keys, note: bytes, old: bytes, new: bytes) -> None:
    assert note.count(old) == 1
    rejected(note.replace(old, new), keys[1], "does not verify")


def test_flipped_signature_byte_rejected(keys: Keys, note: bytes) -> None:
    line = last_sig_line(note)
    raw = base64.b64decode(line.split(b" ")[-1])
    for index in (4, 20, len(raw) - 1):
        flipped = bytearray(raw)
        flipped[index] ^= 0x01
        rejected(note.replace(line, with_sig_payload(line, bytes(flipped))), keys[1], "not verify")


def test_other_key_with_same_name_rejected(keys: Keys) -> None:
    other_signer, _ = generate_key(NAME)
    rejected(sign(CHECKPOINT, other_signer), keys[1], "no signature by")
    # The other key's signature presented under our key id: it is checked, and fails.
    good_id = parse_verifier_key(keys[1]).key_id
    forged = good_id + parse_signer_key(other_signer).sign(CHECKPOINT.body())
    line = DASH + f"{NAME} {b64(forged)}\n".encode()
    rejected(CHECKPOINT.body() + b"\n" + line, keys[1], "does not verify")


def test_wrong_key_id_rejected(keys: Keys, note: bytes) -> None:
    line = last_sig_line(note)
    raw = bytearray(base64.b64decode(line.split(b" ")[-1]))
    raw[0] ^= 0xFF
    rejected(note.replace(line, with_sig_payload(line, bytes(raw))), keys[1], "no signature by")


def test_unknown_signatures_next_to_a_good_one_accepted(keys: Keys, note: bytes) -> None:
    text = CHECKPOINT.body()
    stranger = last_sig_line(sign_note(text, generate_key("witness.example/w1")[0]))
    namesake = last_sig_line(sign_note(text, generate_key(NAME)[0]))
    cosignature = DASH + b"cosigner.example " + base64.b64encode(b"\x04" * 76) + b"\n"
    good = last_sig_line(note)
    for lines in ([stranger, good], [good, namesake, cosignature], [cosignature, namesake, good]):
        assert open_note(text + b"\n" + b"".join(lines), keys[1]) == CHECKPOINT
    assert open_note(note + good, keys[1]) == CHECKPOINT  # a repeated good signature is fine


def test_bad_signature_by_the_key_next_to_a_good_one_rejected(keys: Keys, note: bytes) -> None:
    key_id = parse_verifier_key(keys[1]).key_id
    for junk in (bytes(64), bytes(10)):
        line = DASH + f"{NAME} {b64(key_id + junk)}\n".encode()
        rejected(note + line, keys[1], "does not verify")


Mangle = Callable[[bytes], bytes]
MANGLES: dict[str, tuple[Mangle, str]] = {
    "missing blank line": (lambda n: n.replace(b"\n\n", b"\n"), "no blank line"),
    "blank line not empty": (lambda n: n.replace(b"\n\n", b"\n \n"), "no blank line"),
    "trailing garbage line": (lambda n: n + b"garbage\n", "em dash"),
    "trailing garbage": (lambda n: n + b"garbage", "end with a newline"),
    "trailing blank line": (lambda n: n + b"\n", "no signature lines"),
    "no final newline": (lambda n: n[:-1], "end with a newline"),
    "no signature lines": (lambda n: n[: n.rindex(b"\n\n") + 2], "no signature lines"),
    "ascii dashes": (lambda n: n.replace(DASH, b"-- "), "em dash"),
    "en dash": (lambda n: n.replace(DASH, "\u2013 ".encode()), "em dash"),
    "no space after dash": (lambda n: n.replace(DASH, DASH.strip()), "em dash"),
    "space in name": (lambda n: n.replace(DASH + NAME.encode(), DASH + b"bad name"), "base64"),
    "plus in name": (lambda n: n.replace(DASH + NAME.encode(), DASH + b"bad+name"), "key name"),
    "empty name": (lambda n: n.replace(DASH + NAME.encode() + b" ", DASH + b" "), "key name"),
    "bad base64": (lambda n: n[:-2] + b"!\n", "base64"),
    "truncated base64": (lambda n: n[:-2] + b"\n", "base64"),
    "short signature": (lambda n: n + DASH + b"x AAAA\n", "too short"),
    "crlf": (lambda n: n.replace(b"\n", b"\r\n"), "control character"),
    "control character": (lambda n: b"\x01" + n, "control character"),
    "not utf-8": (lambda n: b"\xff" + n, "UTF-8"),
    "101 signatures": (lambda n: n + last_sig_line(n) * 100, "more than 100"),
    "leading zero": (lambda n: n.replace(b"\n1234\n", b"\n01234\n"), "does not verify"),
}


@pytest.mark.parametrize(("mangle", "match"), MANGLES.values(), ids=MANGLES.keys())
def test_malformed_note_rejected(keys: Keys, note: bytes, mangle: Mangle, match: str) -> None:
    rejected(mangle(note), keys[1], match)


def test_sign_rejects_bad_text(keys: Keys) -> None:
    for text in (b"no newline", b"bad\xff\n", b"tab\there\n"):
        with pytest.raises(CheckpointError):
            sign_note(text, keys[0])


# --- key strings --------------------------------------------------------------------------


def test_generate_key_layout(keys: Keys) -> None:
    signer, verifier = keys
    assert signer.startswith(f"PRIVATE+KEY+{NAME}+") and verifier.startswith(f"{NAME}+")
    assert verifier_from_signer(signer) == verifier
    assert generate_key(NAME) != keys
    for name in ("", "a b", "a+b", "a\tb", "a\u00a0b", "a\nb", "a\x00b"):
        with pytest.raises(CheckpointError):
            generate_key(name)


def _manglings(key: str) -> list[str]:
    """Every proper substring, and every one-character bump, as Go's tests do."""
    n = len(key)
    subs = [key[i:j] for i in range(n + 1) for j in range(i + 1, n + 1) if (i, j) != (0, n)]
    bumps = [key[:i] + chr(ord(key[i]) + 1) + key[i + 1 :] for i in range(n)]
    return subs + bumps


def test_mangled_key_strings_rejected() -> None:
    parse_verifier_key(GO_VERIFIER)
    parse_signer_key(GO_SIGNER)
    for bad in _manglings(GO_VERIFIER):
        with pytest.raises(CheckpointError):
            parse_verifier_key(bad)
    for bad in _manglings(GO_SIGNER):
        with pytest.raises(CheckpointError):
            parse_signer_key(bad)


def _vkey(name: str, payload: bytes, key_id: bytes | None = None) -> str:
    """A verifier key string whose id is computed over payload unless given."""
    if key_id is None:
        key_id = hashlib.sha256(name.encode() + b"\n" + payload).digest()[:4]
    return f"{name}+{key_id.hex()}+{b64(payload)}"


@pytest.mark.parametrize(
    "key",
    [
        "",
        # From Go's tests: wrong key length, and unknown algorithm, each with a matching id.
        "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
        "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        GO_VERIFIER.replace("c74f20a3", "C74F20A3"),
        GO_VERIFIER.replace("c74f20a3", "c74f20a"),
        GO_VERIFIER + "\n",
        " " + GO_VERIFIER,
        GO_SIGNER,  # a private key where a public one belongs
        _vkey("a b", b"\x01" + ZERO_SEED_PUBLIC),
        _vkey("", b"\x01" + ZERO_SEED_PUBLIC),
        _vkey("n", b"\x02" + ZERO_SEED_PUBLIC),
        _vkey("n", b"\x01" + ZERO_SEED_PUBLIC[:31]),
        _vkey("n", b"\x01" + ZERO_SEED_PUBLIC, key_id=b"\0\0\0\0"),
        _vkey("n", b""),
    ],
)
def test_bad_verifier_keys_rejected(key: str) -> None:
    with pytest.raises(CheckpointError):
        parse_verifier_key(key)
    with pytest.raises(CheckpointError):
        open_note(GO_TEXT + b"\n" + GO_PETER_SIG, key)


@pytest.mark.parametrize(
    "key",
    [
        "",
        GO_VERIFIER,  # a public key where a private one belongs
        GO_SIGNER.replace("PRIVATE+KEY", "PRIVATE+KEX"),
        GO_SIGNER.replace("c74f20a3", "c74f20a4"),  # id does not match the derived public key
        GO_SIGNER.replace("+AY", "+Ag"),  # algorithm byte 0x02
        "PRIVATE+KEY+" + _vkey("n", b"\x01" + bytes(31)),
        "PRIVATE+KEY+" + _vkey("n", b"\x01" + bytes(32)),  # id over the seed, not the public key
    ],
)
def test_bad_signer_keys_rejected(key: str) -> None:
    with pytest.raises(CheckpointError) as caught:
        parse_signer_key(key)
    assert "AYEKFALV" not in str(caught.value)  # no key material in messages
    with pytest.raises(CheckpointError):
        sign(CHECKPOINT, key)
    with pytest.raises(CheckpointError):
        verifier_from_signer(key)


# --- key files ----------------------------------------------------------------------------


def test_write_and_load_keypair(tmp_path: Path) -> None:
    key_path, pub_path = write_keypair(tmp_path, NAME)
    assert key_path == tmp_path / "selva.example_ledger.key"
    assert pub_path == tmp_path / "selva.example_ledger.pub"
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert key_path.read_text().count("\n") == pub_path.read_text().count("\n") == 1
    signer, verifier = load_signer(key_path), load_verifier(pub_path)
    assert verifier_from_signer(signer) == verifier and not signer.endswith("\n")
    assert open_note(sign(CHECKPOINT, signer), verifier) == CHECKPOINT


def test_keypair_files_never_overwritten(tmp_path: Path) -> None:
    key_path, pub_path = write_keypair(tmp_path, "log")
    before = key_path.read_bytes(), pub_path.read_bytes()
    with pytest.raises(CheckpointError, match="refusing to overwrite"):
        write_keypair(tmp_path, "log")
    assert (key_path.read_bytes(), pub_path.read_bytes()) == before

    (tmp_path / "solo.pub").write_text("keep me\n")
    with pytest.raises(CheckpointError, match="refusing to overwrite"):
        write_keypair(tmp_path, "solo")
    assert not (tmp_path / "solo.key").exists()
    assert (tmp_path / "solo.pub").read_text() == "keep me\n"

    os.symlink(tmp_path / "nowhere", tmp_path / "dangling.key")
    with pytest.raises(CheckpointError, match="refusing to overwrite"):
        write_keypair(tmp_path, "dangling")
    assert not (tmp_path / "nowhere").exists()


def test_load_rejects_bad_files(tmp_path: Path, keys: Keys) -> None:
    signer, verifier = keys
    for stem, content in {"two": (signer + "\n\n").encode(), "pub": verifier.encode(),
                          "bin": b"\xff"}.items():
        (tmp_path / stem).write_bytes(content)
        with pytest.raises(CheckpointError):
            load_signer(tmp_path / stem)
    (tmp_path / "x.pub").write_text(signer + "\n")
    with pytest.raises(CheckpointError):
        load_verifier(tmp_path / "x.pub")
    (tmp_path / "bare.key").write_text(signer)  # no trailing newline is fine too
    assert load_signer(tmp_path / "bare.key") == signer


# --- fuzzing ------------------------------------------------------------------------------

_FRAGMENTS = [b"\n", b"\n\n", DASH, b" ", b"+", b"=", b"0", b"1234", NAME.encode(), ROOT64,
              b"\xff", b"\x00", b"A" * 92]


@given(
    data=st.one_of(
        st.binary(),
        st.text().map(lambda s: s.encode("utf-8", "surrogatepass")),
        st.lists(st.sampled_from(_FRAGMENTS)).map(b"".join),
    )
)
@settings(database=None)
def test_random_input_raises_only_checkpoint_error(keys: Keys, data: bytes) -> None:
    with pytest.raises(CheckpointError):
        open_note(data, keys[1])


@given(
    position=st.integers(0, 10_000),
    byte=st.integers(1, 255),
    action=st.sampled_from(["xor", "insert", "delete"]),
)
@settings(database=None)
def test_one_byte_edit_never_opens(
    keys: Keys, note: bytes, position: int, byte: int, action: str
) -> None:
    i = position % len(note)
    edits = {
        "xor": note[:i] + bytes([note[i] ^ byte]) + note[i + 1 :],
        "insert": note[:i] + bytes([byte]) + note[i:],
        "delete": note[:i] + note[i + 1 :],
    }
    with pytest.raises(CheckpointError):
        open_note(edits[action], keys[1])
