"""Signed checkpoints of the journal's Merkle tree.

A checkpoint commits to the tree's size and root hash. It is published as a C2SP
``tlog-checkpoint`` body wrapped in a C2SP ``signed-note``, the format of Go's
``golang.org/x/mod/sumdb/note``, so any tool of that ecosystem can check it::

    selva.example/ledger            <- origin
    1234                            <- tree size, decimal
    Gx3m...base64 root hash...=     <- RFC 9162 root, 32 bytes
                                    <- blank line
    — selva.example/ledger Ab12...  <- em dash, key name, base64(key id || Ed25519 signature)

Keys are Ed25519 only (signature type 0x01) and travel as the same strings Go uses:
``<name>+<key id hex>+<base64(0x01 || public key)>`` for verifiers and
``PRIVATE+KEY+<name>+<key id hex>+<base64(0x01 || seed)>`` for signers, the key id being
the first 4 bytes of SHA-256(name || 0x0A || 0x01 || public key).

Parsing is strict: base64 must be canonical, sizes have no leading zeros, lines may not be
empty, and every signature line from the verifier's key must verify, not just one.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from .errors import LedgerError

ALG_ED25519 = 0x01
MAX_TREE_SIZE = 2**64 - 1  # a uint64, as every other tlog implementation reads it
MAX_SIGNATURES = 100  # Go's limit; the spec asks verifiers to accept at least 16
_SIGNATURE_PREFIX = "\u2014 "  # em dash, space
_SIZE = re.compile(r"0|[1-9][0-9]{0,19}")
_KEY_ID = re.compile(r"[0-9a-f]{8}")
_PRIVATE_PREFIX = "PRIVATE+KEY+"


class CheckpointError(LedgerError):
    """A checkpoint or key is malformed, or its signature does not verify."""


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _unb64(text: str, what: str) -> bytes:
    """Decode standard base64, refusing anything but the one canonical spelling."""
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError:  # binascii.Error, or a non-ASCII character
        raise CheckpointError(f"{what} is not valid base64") from None
    if _b64(raw) != text:
        raise CheckpointError(f"{what} is not canonical base64")
    return raw


def _has_control(text: str) -> bool:
    return any(ch < " " and ch != "\n" for ch in text)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        return False
    return True


def _valid_name(name: str) -> bool:
    return (
        bool(name)
        and "+" not in name
        and not any(ch.isspace() or ch < " " for ch in name)
        and _encodable(name)
    )


def _check_line(value: object, what: str) -> None:
    if not isinstance(value, str) or not value:
        raise CheckpointError(f"checkpoint {what} is empty or not a string")
    if "\n" in value or _has_control(value) or not _encodable(value):
        raise CheckpointError(f"checkpoint {what} holds a newline, control char or lone surrogate")


def _key_id(name: str, public_key: bytes) -> bytes:
    preimage = name.encode("utf-8") + b"\n" + bytes([ALG_ED25519]) + public_key
    return hashlib.sha256(preimage).digest()[:4]


@dataclass(frozen=True)
class Checkpoint:
    """The tree head a log signs: origin, number of leaves, root hash, optional extension lines."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_line(self.origin, "origin")
        if isinstance(self.size, bool) or not isinstance(self.size, int):
            raise CheckpointError("checkpoint size is not an integer")
        if not 0 <= self.size <= MAX_TREE_SIZE:
            raise CheckpointError(f"checkpoint size {self.size} is outside 0..2**64-1")
        if not isinstance(self.root, bytes) or len(self.root) != 32:
            raise CheckpointError("checkpoint root hash is not 32 bytes")
        if not isinstance(self.extensions, tuple):
            raise CheckpointError("checkpoint extensions must be a tuple of lines")
        for line in self.extensions:
            _check_line(line, "extension line")

    def body(self) -> bytes:
        """Return the note text: origin, size, base64 root and extensions, one per line."""
        lines = [self.origin, str(self.size), _b64(self.root), *self.extensions]
        return "".join(line + "\n" for line in lines).encode("utf-8")

    @classmethod
    def parse_body(cls, text: bytes) -> Checkpoint:
        """Parse a note text into a checkpoint; raise CheckpointError unless it is well formed."""
        try:
            decoded = text.decode("utf-8")
        except UnicodeDecodeError:
            raise CheckpointError("checkpoint body is not valid UTF-8") from None
        if not decoded.endswith("\n"):
            raise CheckpointError("checkpoint body does not end with a newline")
        lines = decoded[:-1].split("\n")
        if len(lines) < 3:
            raise CheckpointError("checkpoint body has fewer than three lines")
        origin, size, root, *extensions = lines
        if not _SIZE.fullmatch(size):
            raise CheckpointError("checkpoint size is not a decimal number without leading zeros")
        root_hash = _unb64(root, "checkpoint root hash")
        return cls(origin, int(size), root_hash, tuple(extensions))


parse_body = Checkpoint.parse_body


@dataclass(frozen=True)
class VerifierKey:
    """A public Ed25519 key with its note name and 4-byte key id."""

    name: str
    key_id: bytes
    public_key: bytes

    def __post_init__(self) -> None:
        if not _valid_name(self.name):
            raise CheckpointError("key name is empty or holds a space, '+' or control character")
        if len(self.public_key) != 32:
            raise CheckpointError("Ed25519 public key is not 32 bytes")
        if self.key_id != _key_id(self.name, self.public_key):
            raise CheckpointError(f"key id does not match the key named {self.name}")
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key)
        except ValueError:
            raise CheckpointError("not a valid Ed25519 public key") from None

    def encode(self) -> str:
        """Return the verifier key string ``<name>+<key id>+<base64(0x01 || key)>``."""
        return f"{self.name}+{self.key_id.hex()}+{_b64(bytes([ALG_ED25519]) + self.public_key)}"


@dataclass(frozen=True)
class SignerKey:
    """A private Ed25519 seed with its note name and key id; the seed is kept out of repr."""

    name: str
    key_id: bytes
    seed: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.seed) != 32:
            raise CheckpointError("Ed25519 seed is not 32 bytes")
        VerifierKey(self.name, self.key_id, self._private().public_key().public_bytes_raw())

    @classmethod
    def from_seed(cls, name: str, seed: bytes) -> SignerKey:
        """Build a signer key from a name and a 32-byte seed, deriving its key id."""
        if len(seed) != 32:
            raise CheckpointError("Ed25519 seed is not 32 bytes")
        public = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()
        return cls(name, _key_id(name, public), seed)

    def _private(self) -> Ed25519PrivateKey:
        return Ed25519PrivateKey.from_private_bytes(self.seed)

    def verifier(self) -> VerifierKey:
        """Return the matching public key."""
        return VerifierKey(self.name, self.key_id, self._private().public_key().public_bytes_raw())

    def encode(self) -> str:
        """Return the secret key string ``PRIVATE+KEY+<name>+<key id>+<base64(0x01 || seed)>``."""
        encoded = _b64(bytes([ALG_ED25519]) + self.seed)
        return f"{_PRIVATE_PREFIX}{self.name}+{self.key_id.hex()}+{encoded}"

    def sign(self, message: bytes) -> bytes:
        """Return the 64-byte Ed25519 signature of message."""
        return self._private().sign(message)


def _split_key(text: str, what: str) -> tuple[str, bytes, bytes]:
    """Split ``<name>+<hex id>+<base64 key>``, drop the algorithm byte; never echo key material."""
    name, _, rest = text.partition("+")
    hex_id, _, key64 = rest.partition("+")
    if not _valid_name(name):
        raise CheckpointError(f"{what}: name is empty or holds a space, '+' or control character")
    if not _KEY_ID.fullmatch(hex_id):
        raise CheckpointError(f"{what}: key id is not 8 lowercase hex digits")
    raw = _unb64(key64, what)
    if not raw or raw[0] != ALG_ED25519:
        raise CheckpointError(f"{what}: not an Ed25519 key (algorithm byte 0x01)")
    if len(raw) != 33:
        raise CheckpointError(f"{what}: key is not 32 bytes")
    return name, bytes.fromhex(hex_id), raw[1:]


def parse_verifier_key(text: str) -> VerifierKey:
    """Parse and check a verifier key string; raise CheckpointError if it is malformed."""
    if text.startswith(_PRIVATE_PREFIX):
        raise CheckpointError("verifier key: this is a private signer key")
    return VerifierKey(*_split_key(text, "verifier key"))


def parse_signer_key(text: str) -> SignerKey:
    """Parse and check a signer key string; raise CheckpointError if it is malformed."""
    if not text.startswith(_PRIVATE_PREFIX):
        raise CheckpointError(f"signer key: does not start with {_PRIVATE_PREFIX}")
    return SignerKey(*_split_key(text[len(_PRIVATE_PREFIX) :], "signer key"))


def verifier_from_signer(signer_key: str) -> str:
    """Return the verifier key string matching a signer key string."""
    return parse_signer_key(signer_key).verifier().encode()


def generate_key(name: str) -> tuple[str, str]:
    """Generate a fresh Ed25519 key named name; return (signer key, verifier key) strings."""
    signer = SignerKey.from_seed(name, Ed25519PrivateKey.generate().private_bytes_raw())
    return signer.encode(), signer.verifier().encode()


def sign_note(text: bytes, signer_key: str | SignerKey) -> bytes:
    """Sign a note text (UTF-8, ending in a newline) and return the signed note."""
    signer = parse_signer_key(signer_key) if isinstance(signer_key, str) else signer_key
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError:
        raise CheckpointError("note text is not valid UTF-8") from None
    if not decoded.endswith("\n") or _has_control(decoded):
        raise CheckpointError("note text does not end with a newline or holds a control character")
    signature = _b64(signer.key_id + signer.sign(text))
    return text + f"\n{_SIGNATURE_PREFIX}{signer.name} {signature}\n".encode("utf-8")


def _parse_signature_line(line: str) -> tuple[str, bytes, bytes]:
    if not line.startswith(_SIGNATURE_PREFIX):
        raise CheckpointError("note signature line does not start with an em dash and a space")
    name, _, encoded = line[len(_SIGNATURE_PREFIX) :].partition(" ")
    if not _valid_name(name):
        raise CheckpointError("note signature line has an invalid key name")
    raw = _unb64(encoded, "note signature")
    if len(raw) < 5:
        raise CheckpointError("note signature is too short")
    return name, raw[:4], raw[4:]


def verify_note(note: bytes, verifier_key: str | VerifierKey) -> bytes:
    """Check a signed note against one key and return its text; raise CheckpointError otherwise.

    Signatures by other keys (another name or another key id) are ignored. At least one
    signature by the key must be present and every one of them must verify.
    """
    key = parse_verifier_key(verifier_key) if isinstance(verifier_key, str) else verifier_key
    try:
        decoded = note.decode("utf-8")
    except UnicodeDecodeError:
        raise CheckpointError("note is not valid UTF-8") from None
    if _has_control(decoded):
        raise CheckpointError("note holds a control character")
    split = decoded.rfind("\n\n")
    if split < 0:
        raise CheckpointError("note has no blank line before its signatures")
    text, block = decoded[: split + 1], decoded[split + 2 :]
    if not block.endswith("\n"):
        raise CheckpointError("note has no signature lines or does not end with a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise CheckpointError(f"note has more than {MAX_SIGNATURES} signatures")
    message = text.encode("utf-8")
    public = Ed25519PublicKey.from_public_bytes(key.public_key)
    label = f"{key.name}+{key.key_id.hex()}"
    verified = False
    for line in lines:
        name, key_id, signature = _parse_signature_line(line)
        if name != key.name or key_id != key.key_id:
            continue
        try:
            public.verify(signature, message)
        except InvalidSignature:
            raise CheckpointError(f"signature by {label} does not verify") from None
        verified = True
    if not verified:
        raise CheckpointError(f"note has no signature by {label}")
    return message


def sign(checkpoint: Checkpoint, signer_key: str | SignerKey) -> bytes:
    """Return the checkpoint as a signed note."""
    return sign_note(checkpoint.body(), signer_key)


def open_note(
    note: bytes, verifier_key: str | VerifierKey, *, origin: str | None = None
) -> Checkpoint:
    """Verify a signed checkpoint and parse it; raise CheckpointError with the reason if it fails.

    Pass origin to also require the checkpoint to come from that log.
    """
    checkpoint = Checkpoint.parse_body(verify_note(note, verifier_key))
    if origin is not None and checkpoint.origin != origin:
        raise CheckpointError(f"checkpoint origin {checkpoint.origin!r} is not {origin!r}")
    return checkpoint


def _create(path: Path, content: str, mode: int) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise CheckpointError(f"{path} already exists; refusing to overwrite it") from None
    with open(fd, "w", encoding="utf-8") as handle:
        os.fchmod(fd, mode)  # whatever the umask
        handle.write(content)


def write_keypair(directory: Path, name: str) -> tuple[Path, Path]:
    """Generate a key and write ``<name>.key`` (signer, mode 0600) and ``<name>.pub`` (verifier).

    A '/' in the name (names are often URL-like) becomes '_' in the file names. Existing
    files are never overwritten: CheckpointError is raised and nothing is written.
    """
    signer, verifier = generate_key(name)
    stem = name.replace("/", "_")
    key_path, pub_path = directory / f"{stem}.key", directory / f"{stem}.pub"
    for path in (key_path, pub_path):
        if os.path.lexists(path):
            raise CheckpointError(f"{path} already exists; refusing to overwrite it")
    _create(key_path, signer + "\n", 0o600)
    try:
        _create(pub_path, verifier + "\n", 0o644)
    except BaseException:
        key_path.unlink()
        raise
    return key_path, pub_path


def _read_key(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8").removesuffix("\n")
    except UnicodeDecodeError:
        raise CheckpointError(f"{path} is not UTF-8 text") from None


def load_signer(path: Path) -> str:
    """Read and check a signer key file; return the key string without its trailing newline."""
    text = _read_key(path)
    parse_signer_key(text)
    return text


def load_verifier(path: Path) -> str:
    """Read and check a verifier key file; return the key string without its trailing newline."""
    text = _read_key(path)
    parse_verifier_key(text)
    return text
