"""The offline verifier (``python -m ledger.verify``) against a real export, and against every
way of damaging or forging one.

One export per backend is built through the app's CLI (the demo data, a sale, a retirement and
a cancellation: 12 entries) and copied for each test, which changes one thing and checks that
``ledger.verify.main`` exits 1 and names the right place.

Which place is "right": an entry whose bytes no longer match its hash is blamed on itself; an
entry edited *and re-hashed* is blamed on itself only if it now breaks a rule of the ledger
(changing a transfer's quantity without its blocks does), otherwise on the next entry, whose
``prev`` no longer matches, or, for the last entry or a journal re-chained to the end, on the
checkpoint, whose root no longer matches. A missing entry is blamed on its own number.

Every journal forgery also rewrites the manifest to match, as a forger would (it is not signed),
so that what catches it is the chain, the replay or the checkpoint, never the manifest. The
replay tests go further: they re-chain the whole journal and re-sign the checkpoint with the
operator's real key, so that only the ledger's rules are left to catch them.

Layout of the export (the account ids are read from the records, not assumed):

    seq 1       issue VCS-944 2016 (700,000 t, 84,000 to the buffer pool)
    seq 2       transfer 25 t, inventory -> demo buyer
    seq 3       retire 12 t, demo buyer, for "Café Tunki, Lima"
    seq 4..9    issue the other six demo batches, 2..7 (VCS-944, VCS-868 as batch 4 at seq 6,
                SLV-1001)
    seq 10      retire 8 t, demo buyer, for "Andean Trails Trekking Co." (pending at origin)
    seq 11      transfer 10 t of VCS-868 2014 (batch 4), inventory -> demo buyer
    seq 12      retire those 10 t for "Lima Running Club" (5 t in conflict at origin)
    seq 13      origin: Verra retired 12 t of batch 1 into Selva's name (covers seq 3)
    seq 14      origin: Verra retired 54 t of batch 4 for another buyer (freezes 49 t)
    seq 15..21  label each of the seven batches
    seq 22      transfer 500 t of VCS-868, inventory -> acme
    seq 23      retire 120 t, acme, for "Acme Coffee Ltd"
    seq 24      cancel 30 t, acme
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from ledger import bundle, canonical, queries, tree
from ledger.checkpoint import Checkpoint, load_signer, open_note, sign, write_keypair
from ledger.db import make_engine
from ledger.merkle import Frontier, leaf_hash
from ledger.replay import Replay
from ledger.rules import beneficiary_commitment, plan_spend
from ledger.schema import Beneficiary, Entry, Project
from ledger.verify import Invalid, load_key, main, verify_certificate
from marketplace import create_app

ROOT = Path(__file__).resolve().parents[2]
ORIGIN = "selva.example/ledger"
SIZE = 24
TRANSFER, RETIRE, CANCEL, DEMO_RETIRE = 22, 23, 24, 3
ORIGIN_OURS, ORIGIN_ELSEWHERE, FIRST_LABEL = 13, 14, 15
ACME = "acme-coffee"
ACME_NAME = "Acme Coffee Ltd"
TUNKI_NAME = "Café Tunki, Lima"
KINDS = (["issue", "transfer", "retire"] + ["issue"] * 6 + ["retire", "transfer", "retire"]
         + ["origin"] * 2 + ["label"] * 7 + ["transfer", "retire", "cancel"])

COMMANDS = [
    ["demo", "load"],
    ["ledger", "open-account", ACME],
    ["ledger", "transfer", "--from", "marketplace-inventory", "--to", ACME, "--quantity", "500",
     "--project", "VCS-868"],
    ["ledger", "retire", "--account", ACME, "--quantity", "120", "--beneficiary", ACME_NAME,
     "--purpose", "net_zero", "--note", "Scope 3: roasting", "--country", "GB",
     "--period", "2025-01-01:2025-12-31"],
    ["ledger", "cancel", "--account", ACME, "--quantity", "30", "--reason", "Issuance correction"],
]

# (issued, retired, cancelled, buffer, frozen, tradable) per project, from the numbers the data
# was made with.
EXPECTED_TOTALS = {
    "VCS-944": (3 * 700_000, 20, 0, 3 * 84_000, 0, 3 * 700_000 - 20 - 3 * 84_000),
    "VCS-868": (2 * 2_086_089, 130, 30, 2 * 312_913, 49,
                2 * 2_086_089 - 130 - 30 - 2 * 312_913 - 49),
    "SLV-1001": (100_000, 0, 0, 10_000, 0, 90_000),
}
# (retired here, covered, pending, conflict, frozen) per mirrored project.
EXPECTED_ORIGIN = {"VCS-944": (20, 12, 8, 0, 0), "VCS-868": (130, 0, 125, 5, 49)}


# -- building the export once per backend ------------------------------------------------------


@dataclass(frozen=True)
class Built:
    backend: str
    export: Path
    signer: Path
    verifier: Path
    other_signer: Path  # another key pair under the same name
    other_verifier: Path
    db_totals: dict[str, tuple[int, int, int, int, int, int]]
    certificates: dict[int, dict[str, Any]]  # seq -> a valid certificate
    older_certificate: dict[str, Any]  # seq 11 against a checkpoint of 11 entries
    transfer_certificate: dict[str, Any]  # the shape of a certificate, for the transfer at seq 10


_BUILT: dict[str, Built] = {}


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _build(url: str, root: Path, backend: str) -> Built:
    signer, verifier = write_keypair(root, ORIGIN)
    (root / "other").mkdir()
    other_signer, other_verifier = write_keypair(root / "other", ORIGIN)
    export_dir = root / "export"
    # Both secrets given, so that the app writes no development secret into instance/.
    app = create_app({"DATABASE_URL": url, "CHECKPOINT_KEY": str(signer), "SECRET_KEY": "test",
                      "STRIPE_WEBHOOK_SECRET": "whsec_test", "TESTING": True})
    try:
        with app.app_context():
            runner = app.test_cli_runner()
            for args in [*COMMANDS, ["ledger", "export", str(export_dir)]]:
                result = runner.invoke(args=args)
                assert result.exit_code == 0, (args, result.output, result.exception)
            assert result.output.strip() == f"exported {SIZE} entries to {export_dir}"
    finally:
        app.extensions["selva_db"].kw["bind"].dispose()

    note = (export_dir / bundle.CHECKPOINT).read_text(encoding="utf-8")
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            assert tree.size(session) == SIZE
            latest = tree.latest_checkpoint(session)
            assert latest is not None and latest.note == note and latest.size == SIZE
            db_totals = {}
            for project_id, t in queries.project_totals(session).items():
                project = session.get(Project, project_id)
                assert project is not None
                db_totals[project.ref] = (t.issued, t.retired, t.cancelled, t.buffer, t.frozen,
                                          t.tradable)

            def certificate(seq: int, size: int, checkpoint_note: str) -> dict[str, Any]:
                entry = session.get(Entry, seq)
                assert entry is not None
                doc: dict[str, Any] = {
                    "format": bundle.CERTIFICATE_FORMAT,
                    "seq": seq,
                    "hash": entry.hash,
                    "record": bytes(entry.record).decode("utf-8"),
                    "checkpoint": checkpoint_note,
                    "inclusion_proof": [_b64(p) for p in tree.inclusion(session, seq, size)],
                }
                beneficiary = session.get(Beneficiary, seq)
                if beneficiary is not None:
                    doc["beneficiary"] = {"name": beneficiary.name, "salt": beneficiary.salt}
                return doc

            certificates = {seq: certificate(seq, SIZE, note) for seq in (DEMO_RETIRE, RETIRE)}
            older_note = sign(Checkpoint(ORIGIN, SIZE - 1, tree.head_at(session, SIZE - 1)),
                              load_signer(signer)).decode("utf-8")
            older = certificate(RETIRE, SIZE - 1, older_note)
            transfer = certificate(TRANSFER, SIZE, note)
            session.rollback()
    finally:
        engine.dispose()
    assert certificates[RETIRE]["beneficiary"]["name"] == ACME_NAME
    assert certificates[DEMO_RETIRE]["beneficiary"]["name"] == TUNKI_NAME
    return Built(backend, export_dir, signer, verifier, other_signer, other_verifier, db_totals,
                 certificates, older, transfer)


def _built(databases: Any, backend: str, tmp_path_factory: pytest.TempPathFactory) -> Built:
    if backend not in _BUILT:
        root = tmp_path_factory.mktemp(f"offline-verify-{backend}")
        _BUILT[backend] = _build(databases.fresh(backend), root, backend)
    return _BUILT[backend]


@pytest.fixture
def built(databases: Any, backend: str, tmp_path_factory: pytest.TempPathFactory) -> Built:
    """The export of this backend, built on first use (a fresh database, committed to)."""
    return _built(databases, backend, tmp_path_factory)


@pytest.fixture
def sqlite_built(databases: Any, tmp_path_factory: pytest.TempPathFactory) -> Built:
    """The SQLite export, for tests where the backend makes no difference."""
    return _built(databases, "sqlite", tmp_path_factory)


def _copy(built: Built, tmp_path: Path) -> Path:
    target = tmp_path / "export"
    shutil.copytree(built.export, target)
    return target


@pytest.fixture
def export(built: Built, tmp_path: Path) -> Path:
    """A private copy of the export, to damage."""
    return _copy(built, tmp_path)


@pytest.fixture
def sqlite_export(sqlite_built: Built, tmp_path: Path) -> Path:
    return _copy(sqlite_built, tmp_path)


def verify(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def assert_invalid(code: int, out: str, err: str, where: str, reason: str) -> None:
    """Exit 1, nothing on stdout, and one line ``INVALID: <where>: <reason>`` on stderr."""
    assert (code, out) == (1, ""), err
    assert re.fullmatch(rf"INVALID: {re.escape(where)}: {reason}\n", err), err


def parse_summary(out: str) -> tuple[str, dict[str, tuple[int, ...]]]:
    head, header, *rows = out.split("\n\n")[0].splitlines()
    assert header.split() == ["project", "issued", "retired", "cancelled", "buffer", "frozen",
                              "tradable"]
    return head, _rows(rows)


def _rows(rows: list[str]) -> dict[str, tuple[int, ...]]:
    table = {}
    for row in rows:
        name, *numbers = row.split()
        table[name] = tuple(int(n.replace(",", "")) for n in numbers)
    return table


def parse_origin(out: str) -> dict[str, tuple[int, ...]]:
    """The verifier's second table: per project, tonnes at the origin registry."""
    header, *rows = out.split("\n\n")[1].strip().splitlines()
    assert header.split() == ["at", "origin", "retired", "here", "covered", "pending",
                              "conflict", "frozen"]
    return _rows(rows)


# -- reading and forging journals ------------------------------------------------------------


class Journal:
    """The lines of an export's journal, to edit and write back."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / bundle.JOURNAL
        self.lines = self.path.read_bytes().splitlines(keepends=True)
        self.dirty = False

    def entry(self, seq: int) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.lines[seq - 1])
        return value

    def record(self, seq: int) -> dict[str, Any]:
        value: dict[str, Any] = canonical.loads(self.entry(seq)["record"].encode("utf-8"))
        return value

    def hash(self, seq: int) -> str:
        return str(self.entry(seq)["hash"])

    def put(self, seq: int, record: dict[str, Any], *, digest: str | None = None) -> None:
        """Write ``record`` as entry ``seq`` (appending if it is the next one), re-hashed
        unless ``digest`` is given."""
        encoded = canonical.dumps(record)
        line = bundle.journal_line(seq, record["kind"], encoded,
                                   digest or hashlib.sha256(encoded).hexdigest())
        if seq == len(self.lines) + 1:
            self.lines.append(line)
        else:
            self.lines[seq - 1] = line
        self.dirty = True

    def set_lines(self, lines: list[bytes]) -> None:
        self.lines = lines
        self.dirty = True

    def state_before(self, seq: int) -> Replay:
        """The ledger as the replay sees it after entries 1..seq-1."""
        state = Replay()
        for s in range(1, seq):
            state.apply(s, self.entry(s)["record"].encode("utf-8"), self.hash(s))
        return state

    def rewrite(self, seq: int, edit: Callable[[dict[str, Any]], None]) -> None:
        """Edit entry ``seq``, then re-hash it and re-chain every entry after it."""
        for s in range(seq, len(self.lines) + 1):
            record = self.record(s)
            if s == seq:
                edit(record)
            record["prev"] = self.hash(s - 1) if s > 1 else "0" * 64
            self.put(s, record)

    def root(self, size: int | None = None) -> bytes:
        frontier = Frontier()
        for line in self.lines[:size]:
            frontier.append(leaf_hash(json.loads(line)["record"].encode("utf-8")))
        return frontier.root()

    def save(self) -> None:
        if self.dirty:
            self.path.write_bytes(b"".join(self.lines))


def sign_checkpoint(directory: Path, size: int, root: bytes, signer: Path) -> None:
    (directory / bundle.CHECKPOINT).write_bytes(
        sign(Checkpoint(ORIGIN, size, root), load_signer(signer)))


def refresh_manifest(directory: Path) -> None:
    """Make the (unsigned) manifest agree with whatever the files now hold."""
    path = directory / bundle.MANIFEST
    manifest = json.loads(path.read_text(encoding="utf-8"))
    lines = (directory / bundle.JOURNAL).read_bytes().splitlines(keepends=True)
    manifest["entries"] = len(lines)
    try:
        manifest["head"] = json.loads(lines[-1])["hash"] if lines else "0" * 64
    except ValueError:
        pass
    for name in list(manifest["files"]):
        if (directory / name).exists():
            manifest["files"][name] = hashlib.sha256((directory / name).read_bytes()).hexdigest()
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def accounts(journal: Journal) -> dict[str, int]:
    return {
        "inventory": journal.record(TRANSFER)["data"]["from"],
        "acme": journal.record(TRANSFER)["data"]["to"],
        "buyer": journal.record(2)["data"]["to"],
        "buffer": journal.record(1)["data"]["buffer"]["account"],
    }


def unspent(state: Replay, account: int, block_state: str = "tradable",
            batch: int | None = None) -> int:
    [block_id] = [i for i, b in state.blocks.items()
                  if b.spent_by is None and b.range.account == account
                  and b.range.state == block_state and batch in (None, b.range.batch)]
    return block_id


def forged_retirement(journal: Journal, quantity: int) -> dict[str, Any]:
    """A retirement of ``quantity`` t of acme's remaining credits, correct in every respect,
    to follow the last entry."""
    seq = len(journal.lines) + 1
    state = journal.state_before(seq)
    acme = accounts(journal)["acme"]
    block = unspent(state, acme)
    created = plan_spend([state.blocks[block].range], quantity, holder=acme, to_account=acme,
                         to_state="retired", next_id=state.next_block)
    return {
        "v": 1, "seq": seq, "kind": "retire", "time": "2026-01-02T03:04:05Z", "prev": state.head,
        "data": {
            "account": acme, "quantity": quantity, "spent": [block],
            "created": [b.as_record() for b in created],
            "beneficiary": beneficiary_commitment("00" * 16, "Mallory"),
            "purpose": "voluntary", "note": "", "country": "GB",
            "period_start": "2025-01-01", "period_end": "2025-12-31", "date": "2026-01-02",
        },
    }


# -- the unmodified export ---------------------------------------------------------------------


def test_the_export_verifies_and_prints_the_totals(built: Built,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    journal = Journal(built.export)
    assert [journal.entry(s)["kind"] for s in range(1, SIZE + 1)] == KINDS
    code, out, err = verify(capsys, built.export, "--key", built.verifier)
    assert (code, err) == (0, "")
    head, table = parse_summary(out)
    assert head == (f"journal OK: {SIZE} entries, head {journal.hash(SIZE)[:16]}, checkpoint of "
                    f"{SIZE} entries from {ORIGIN} verified")
    assert table == EXPECTED_TOTALS
    assert table == built.db_totals
    for issued, retired, cancelled, buffer, frozen, tradable in table.values():
        assert issued == retired + cancelled + buffer + frozen + tradable
    assert parse_origin(out) == EXPECTED_ORIGIN


def test_the_key_may_be_given_as_a_string(built: Built, capsys: pytest.CaptureFixture[str]) -> None:
    key = built.verifier.read_text(encoding="utf-8").strip()
    code, out, err = verify(capsys, built.export, "--key", key)
    assert (code, err) == (0, "")
    assert parse_summary(out)[1] == EXPECTED_TOTALS


def test_without_a_key_the_exports_own_key_is_trusted_with_a_warning(
        built: Built, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = verify(capsys, built.export)
    assert code == 0
    assert err.startswith("note: trusting key.pub from the export")
    assert parse_summary(out)[1] == EXPECTED_TOTALS


def test_the_exports_key_file_is_not_needed_when_the_key_is_given(
        export: Path, built: Built, capsys: pytest.CaptureFixture[str]) -> None:
    (export / bundle.KEY).unlink()
    code, out, err = verify(capsys, export, "--key", built.verifier)
    assert (code, err) == (0, "")


# -- damaged and forged exports ------------------------------------------------------------------


@dataclass
class Tamper:
    directory: Path
    built: Built
    journal: Journal
    key: Path | str | None  # None: no --key
    refresh: bool = True  # rewrite the manifest to match, as a forger would


def _edit_record(seq: int, edit: Callable[[dict[str, Any]], None], *,
                 rehash: bool) -> Callable[[Tamper], None]:
    def mutate(t: Tamper) -> None:
        old = t.journal.hash(seq)
        record = t.journal.record(seq)
        edit(record)
        t.journal.put(seq, record, digest=None if rehash else old)
    return mutate


def _set_quantity(value: int) -> Callable[[dict[str, Any]], None]:
    def edit(record: dict[str, Any]) -> None:
        record["data"]["quantity"] = value
    return edit


def _grow_spend(by: int) -> Callable[[dict[str, Any]], None]:
    """Move ``by`` more tonnes, with the blocks adjusted to match: an entry that is sound."""
    def edit(record: dict[str, Any]) -> None:
        data = record["data"]
        data["quantity"] += by
        taken, remainder = data["created"]
        taken["last"] += by
        remainder["first"] += by
    return edit


def _shift_range(record: dict[str, Any]) -> None:
    block = record["data"]["created"][0]
    block["first"] += 1
    block["last"] += 1


def _grow_batch(record: dict[str, Any]) -> None:
    record["data"]["batch"]["last"] += 1


def _new_beneficiary(record: dict[str, Any]) -> None:
    record["data"]["beneficiary"] = beneficiary_commitment("ff" * 16, "Someone Else")


def _origin_says_someone_else(record: dict[str, Any]) -> None:
    record["data"]["beneficiary"] = "Someone Else Ltd"


def _label_drops_ccp(record: dict[str, Any]) -> None:
    record["data"]["labels"].update(ccp=False, ccp_since=None)


def _new_issuance_date(record: dict[str, Any]) -> None:
    record["data"]["batch"]["issued"] = "2016-03-09"


def _rewrite(seq: int, edit: Callable[[dict[str, Any]], None]) -> Callable[[Tamper], None]:
    def mutate(t: Tamper) -> None:
        t.journal.rewrite(seq, edit)
    return mutate


def _lines(change: Callable[[list[bytes]], list[bytes]]) -> Callable[[Tamper], None]:
    def mutate(t: Tamper) -> None:
        t.journal.set_lines(change(list(t.journal.lines)))
    return mutate


def _delete(seq: int) -> Callable[[Tamper], None]:
    return _lines(lambda lines: lines[:seq - 1] + lines[seq:])


def _duplicate(seq: int) -> Callable[[Tamper], None]:
    return _lines(lambda lines: lines[:seq] + [lines[seq - 1]] + lines[seq:])


def _swap(seq: int) -> Callable[[Tamper], None]:
    return _lines(lambda lines: lines[:seq - 1] + [lines[seq], lines[seq - 1]] + lines[seq + 1:])


def _cut_mid_line(seq: int) -> Callable[[Tamper], None]:
    return _lines(lambda lines: lines[:seq - 1] + [lines[seq - 1][: len(lines[seq - 1]) // 2]])


def _replace_line(seq: int, line: bytes) -> Callable[[Tamper], None]:
    return _lines(lambda lines: lines[:seq - 1] + [line] + lines[seq:])


def _line_with_extra_field(t: Tamper) -> None:
    entry = t.journal.entry(7)
    entry["note"] = "hello"
    t.journal.set_lines(t.journal.lines[:6] + [canonical.dumps(entry) + b"\n"]
                        + t.journal.lines[7:])


def _line_kind_differs(t: Tamper) -> None:
    entry = t.journal.entry(TRANSFER)
    line = bundle.journal_line(TRANSFER, "retire", entry["record"].encode("utf-8"), entry["hash"])
    t.journal.set_lines(t.journal.lines[:TRANSFER - 1] + [line] + t.journal.lines[TRANSFER:])


def _record_not_canonical(t: Tamper) -> None:
    record = json.dumps(t.journal.record(TRANSFER)).encode("utf-8")  # spaces after , and :
    line = bundle.journal_line(TRANSFER, "transfer", record, hashlib.sha256(record).hexdigest())
    t.journal.set_lines(t.journal.lines[:TRANSFER - 1] + [line] + t.journal.lines[TRANSFER:])


def _record_names_other_seq(record: dict[str, Any]) -> None:
    record["seq"] = TRANSFER + 1


def _append_forged(t: Tamper) -> None:
    t.journal.put(SIZE + 1, forged_retirement(t.journal, 10))


def _fork_checkpoint(t: Tamper) -> None:
    """A checkpoint of another journal of the same size, signed with the operator's real key."""
    fork = Journal(t.directory)
    fork.rewrite(RETIRE, _new_beneficiary)
    assert fork.root() != t.journal.root()
    sign_checkpoint(t.directory, SIZE, fork.root(), t.built.signer)


def _checkpoint_of_prefix(t: Tamper) -> None:
    sign_checkpoint(t.directory, SIZE - 1, t.journal.root(SIZE - 1), t.built.signer)


def _checkpoint_claims_more(t: Tamper) -> None:
    sign_checkpoint(t.directory, SIZE + 1, hashlib.sha256(b"thirteen").digest(), t.built.signer)


def _checkpoint_by_other_key(t: Tamper) -> None:
    sign_checkpoint(t.directory, SIZE, t.journal.root(), t.built.other_signer)


def _flip_signature_byte(t: Tamper) -> None:
    path = t.directory / bundle.CHECKPOINT
    text = path.read_text(encoding="utf-8")
    body, _, signature_line = text[:-1].rpartition("\n")
    prefix, _, encoded = signature_line.rpartition(" ")
    raw = bytearray(base64.b64decode(encoded))
    raw[20] ^= 0x01  # inside the signature, past the 4-byte key id
    path.write_text(f"{body}\n{prefix} {_b64(bytes(raw))}\n", encoding="utf-8")


def _edit_checkpoint_root(t: Tamper) -> None:
    path = t.directory / bundle.CHECKPOINT
    lines = path.read_text(encoding="utf-8").split("\n")
    lines[2] = _b64(hashlib.sha256(b"another root").digest())
    path.write_text("\n".join(lines), encoding="utf-8")


def _remove(name: str) -> Callable[[Tamper], None]:
    def mutate(t: Tamper) -> None:
        (t.directory / name).unlink()
        t.refresh = False
    return mutate


def _write(name: str, content: bytes) -> Callable[[Tamper], None]:
    def mutate(t: Tamper) -> None:
        (t.directory / name).write_bytes(content)
        t.refresh = False
    return mutate


def _manifest(edit: Callable[[dict[str, Any]], None]) -> Callable[[Tamper], None]:
    def mutate(t: Tamper) -> None:
        path = t.directory / bundle.MANIFEST
        manifest = json.loads(path.read_text(encoding="utf-8"))
        edit(manifest)
        path.write_text(json.dumps(manifest), encoding="utf-8")
        t.refresh = False
    return mutate


def _reformat_line_keep_manifest(t: Tamper) -> None:
    """Re-encode one line with whitespace: same entry, same record bytes, other file bytes."""
    entry = t.journal.entry(7)
    t.journal.set_lines(t.journal.lines[:6] + [json.dumps(entry).encode("utf-8") + b"\n"]
                        + t.journal.lines[7:])
    t.refresh = False


def _use_key(attr: str) -> Callable[[Tamper], None]:
    def mutate(t: Tamper) -> None:
        t.key = getattr(t.built, attr)
    return mutate


def _no_key_and_no_key_file(t: Tamper) -> None:
    (t.directory / bundle.KEY).unlink()
    t.key = None


def _key_text(text: str) -> Callable[[Tamper], None]:
    def mutate(t: Tamper) -> None:
        t.key = text
    return mutate


def _forgery_with_its_own_key(t: Tamper) -> None:
    """A rewritten journal, its checkpoint signed by the forger, and the forger's key.pub."""
    t.journal.rewrite(RETIRE, _new_beneficiary)
    sign_checkpoint(t.directory, SIZE, t.journal.root(), t.built.other_signer)
    shutil.copy(t.built.other_verifier, t.directory / bundle.KEY)


HASH_MISMATCH = r"the entry hash [0-9a-f]{16}\.\.\. is not the SHA-256 of its record"
BLOCKS_MISMATCH = r"the blocks the entry created are not the ones its operation yields: .*"
PREV_MISMATCH = r"the record's previous hash is not the hash of the entry before it"
ROOT_MISMATCH = (r"its root hash is not the journal's tree head: the log was forked or "
                 r"rewritten")
NO_SIGNATURE = rf"note has no signature by {re.escape(ORIGIN)}\+[0-9a-f]{{8}}"
BAD_SIGNATURE = rf"signature by {re.escape(ORIGIN)}\+[0-9a-f]{{8}} does not verify"


def _missing(seq: int, ends: int, covers: int = SIZE) -> tuple[str, str]:
    return (f"seq {seq}", rf"is missing: the signed checkpoint covers {covers} entries, the "
                          rf"journal ends at {ends} \(truncated\?\)")


MUTATIONS: list[Any] = [
    # one entry changed
    pytest.param(_edit_record(TRANSFER, _set_quantity(501), rehash=False),
                 f"seq {TRANSFER}", HASH_MISMATCH, id="quantity-edited"),
    pytest.param(_edit_record(TRANSFER, _set_quantity(501), rehash=True),
                 f"seq {TRANSFER}", BLOCKS_MISMATCH, id="quantity-edited-rehashed"),
    pytest.param(_edit_record(TRANSFER, _grow_spend(1), rehash=True),
                 f"seq {TRANSFER + 1}", PREV_MISMATCH, id="transfer-and-blocks-edited-rehashed"),
    pytest.param(_edit_record(CANCEL, _grow_spend(1), rehash=True),
                 "checkpoint", ROOT_MISMATCH, id="last-entry-edited-rehashed"),
    pytest.param(_edit_record(CANCEL, _set_quantity(31), rehash=False),
                 f"seq {CANCEL}", HASH_MISMATCH, id="last-entry-quantity-edited"),
    pytest.param(_edit_record(TRANSFER, _shift_range, rehash=False),
                 f"seq {TRANSFER}", HASH_MISMATCH, id="serial-range-edited"),
    pytest.param(_edit_record(TRANSFER, _shift_range, rehash=True),
                 f"seq {TRANSFER}", BLOCKS_MISMATCH, id="serial-range-edited-rehashed"),
    pytest.param(_edit_record(5, _grow_batch, rehash=True),
                 "seq 5", BLOCKS_MISMATCH, id="batch-range-edited-rehashed"),
    pytest.param(_edit_record(RETIRE, _new_beneficiary, rehash=False),
                 f"seq {RETIRE}", HASH_MISMATCH, id="beneficiary-edited"),
    pytest.param(_edit_record(RETIRE, _new_beneficiary, rehash=True),
                 f"seq {RETIRE + 1}", PREV_MISMATCH, id="beneficiary-edited-rehashed"),
    pytest.param(_edit_record(DEMO_RETIRE, _new_beneficiary, rehash=True),
                 f"seq {DEMO_RETIRE + 1}", PREV_MISMATCH, id="first-beneficiary-edited-rehashed"),
    pytest.param(_edit_record(TRANSFER, _record_names_other_seq, rehash=True),
                 f"seq {TRANSFER}", rf"the record says seq {TRANSFER + 1}, its position is "
                                    rf"{TRANSFER}", id="record-names-another-seq"),
    pytest.param(_record_not_canonical, f"seq {TRANSFER}", "the bytes are not in canonical form",
                 id="record-not-canonical-rehashed"),
    pytest.param(_line_kind_differs, f"seq {TRANSFER}", "the line's kind differs from its record's",
                 id="line-kind-differs"),
    # the origin registry's evidence and the labels
    pytest.param(_edit_record(ORIGIN_OURS, _origin_says_someone_else, rehash=False),
                 f"seq {ORIGIN_OURS}", HASH_MISMATCH, id="origin-beneficiary-edited"),
    pytest.param(_edit_record(ORIGIN_OURS, _origin_says_someone_else, rehash=True),
                 f"seq {ORIGIN_OURS + 1}", PREV_MISMATCH, id="origin-beneficiary-edited-rehashed"),
    pytest.param(_edit_record(FIRST_LABEL + 2, _label_drops_ccp, rehash=True),
                 f"seq {FIRST_LABEL + 3}", PREV_MISMATCH, id="label-edited-rehashed"),
    pytest.param(_rewrite(ORIGIN_ELSEWHERE, _origin_says_someone_else), "checkpoint",
                 ROOT_MISMATCH, id="rewritten-from-an-origin-entry"),
    pytest.param(_delete(ORIGIN_ELSEWHERE), f"seq {ORIGIN_ELSEWHERE}",
                 rf"is missing \(the next line holds seq {ORIGIN_ELSEWHERE + 1}\)",
                 id="origin-line-deleted"),
    # internally valid rewrites: only the checkpoint can tell
    pytest.param(_rewrite(RETIRE, _new_beneficiary), "checkpoint", ROOT_MISMATCH,
                 id="rewritten-from-retirement"),
    pytest.param(_rewrite(4, _new_issuance_date), "checkpoint", ROOT_MISMATCH,
                 id="rewritten-from-seq-4"),
    pytest.param(_rewrite(1, _new_issuance_date), "checkpoint", ROOT_MISMATCH,
                 id="rewritten-from-seq-1"),
    # lines lost, repeated, reordered, cut
    pytest.param(_delete(7), "seq 7", r"is missing \(the next line holds seq 8\)",
                 id="line-deleted"),
    pytest.param(_delete(1), "seq 1", r"is missing \(the next line holds seq 2\)",
                 id="first-line-deleted"),
    pytest.param(_delete(SIZE), *_missing(SIZE, SIZE - 1), id="last-line-deleted"),
    pytest.param(_lines(lambda lines: lines[:9]), *_missing(10, 9),
                 id="truncated-at-line-boundary"),
    pytest.param(_lines(lambda lines: []), *_missing(1, 0), id="journal-emptied"),
    pytest.param(_duplicate(7), "seq 7",
                 r"appears again after seq 7 \(a duplicated or reordered line\)",
                 id="line-duplicated"),
    pytest.param(_duplicate(SIZE), f"seq {SIZE}",
                 rf"appears again after seq {SIZE} \(a duplicated or reordered line\)",
                 id="last-line-duplicated"),
    pytest.param(_swap(7), "seq 7", r"is missing \(the next line holds seq 8\)",
                 id="line-swapped-with-next"),
    pytest.param(_swap(SIZE - 1), f"seq {SIZE - 1}",
                 rf"is missing \(the next line holds seq {SIZE}\)", id="last-lines-swapped"),
    pytest.param(_cut_mid_line(SIZE), f"seq {SIZE}",
                 r"the last line is cut short \(the file is truncated\)",
                 id="truncated-mid-line"),
    pytest.param(_cut_mid_line(7), "seq 7", r"the last line is cut short \(the file is truncated\)",
                 id="truncated-mid-line-7"),
    pytest.param(_lines(lambda lines: lines[:-1] + [lines[-1].rstrip(b"\n")]), f"seq {SIZE}",
                 r"the last line is cut short \(the file is truncated\)",
                 id="final-newline-removed"),
    pytest.param(_replace_line(7, b"{not json\n"), "seq 7",
                 r"the line is not valid JSON \(truncated or damaged\)", id="line-garbled"),
    pytest.param(_replace_line(7, b"\n"), "seq 7",
                 r"the line is not valid JSON \(truncated or damaged\)", id="line-blank"),
    pytest.param(_replace_line(7, b"\xff\xfe\n"), "seq 7",
                 r"the line is not valid JSON \(truncated or damaged\)", id="line-not-utf8"),
    pytest.param(_line_with_extra_field, "seq 7",
                 r"the line is not an entry \{seq, kind, record, hash\}", id="line-extra-field"),
    pytest.param(_replace_line(7, b"[7]\n"), "seq 7",
                 r"the line is not an entry \{seq, kind, record, hash\}", id="line-not-object"),
    # a forged entry after the last one, with a correct chain
    pytest.param(_append_forged, f"seq {SIZE + 1}",
                 rf"is not covered by the signed checkpoint, which ends at seq {SIZE}",
                 id="forged-entry-appended"),
    # the checkpoint
    pytest.param(_fork_checkpoint, "checkpoint", ROOT_MISMATCH, id="checkpoint-of-a-fork"),
    pytest.param(_checkpoint_of_prefix, f"seq {SIZE}",
                 rf"is not covered by the signed checkpoint, which ends at seq {SIZE - 1}",
                 id="checkpoint-of-a-prefix"),
    pytest.param(_checkpoint_claims_more, *_missing(SIZE + 1, SIZE, SIZE + 1),
                 id="checkpoint-claims-more"),
    pytest.param(_use_key("other_verifier"), "checkpoint", NO_SIGNATURE, id="wrong-key"),
    pytest.param(_checkpoint_by_other_key, "checkpoint", NO_SIGNATURE,
                 id="checkpoint-signed-by-another-key"),
    pytest.param(_forgery_with_its_own_key, "checkpoint", NO_SIGNATURE,
                 id="forgery-with-its-own-key-pub"),
    pytest.param(_flip_signature_byte, "checkpoint", BAD_SIGNATURE, id="signature-byte-flipped"),
    pytest.param(_edit_checkpoint_root, "checkpoint", BAD_SIGNATURE, id="checkpoint-root-edited"),
    pytest.param(_write(bundle.CHECKPOINT, b"hello\n"), "checkpoint",
                 "note has no blank line before its signatures", id="checkpoint-garbled"),
    pytest.param(_remove(bundle.CHECKPOINT), "checkpoint",
                 "cannot read checkpoint.txt: No such file or directory", id="no-checkpoint"),
    pytest.param(_remove(bundle.JOURNAL), "journal",
                 "cannot read journal.jsonl: No such file or directory", id="no-journal"),
    # the manifest
    pytest.param(_manifest(lambda m: m.update(entries=SIZE + 1)), "manifest",
                 "its entry count or head hash differs from the journal", id="manifest-entries"),
    pytest.param(_manifest(lambda m: m.update(head="ab" * 32)), "manifest",
                 "its entry count or head hash differs from the journal", id="manifest-head"),
    pytest.param(_manifest(lambda m: m["files"].update({bundle.JOURNAL: "cd" * 32})), "manifest",
                 "the SHA-256 of journal.jsonl differs from the manifest's",
                 id="manifest-journal-digest"),
    pytest.param(_manifest(lambda m: m.update(format="selva-journal/2")), "manifest",
                 "not a selva-journal/1 export", id="manifest-format"),
    pytest.param(_reformat_line_keep_manifest, "manifest",
                 "the SHA-256 of journal.jsonl differs from the manifest's",
                 id="journal-reformatted-manifest-kept"),
    pytest.param(_write(bundle.MANIFEST, b"{"), "manifest", "cannot read manifest.json: .*",
                 id="manifest-garbled"),
    pytest.param(_remove(bundle.MANIFEST), "manifest", "cannot read manifest.json: .*",
                 id="no-manifest"),
    # the key
    pytest.param(_no_key_and_no_key_file, "key", r"cannot read .*key\.pub: .*",
                 id="no-key-and-no-key-pub"),
    pytest.param(_use_key("signer"), "key", "verifier key: this is a private signer key",
                 id="signer-key-given"),
    pytest.param(_key_text("nonsense"), "key", "cannot read nonsense: .*", id="key-not-a-file"),
    pytest.param(_key_text("name+0000+AAAA"), "key",
                 "verifier key: key id is not 8 lowercase hex digits", id="key-malformed"),
]


@pytest.mark.parametrize(("mutate", "where", "reason"), MUTATIONS)
def test_a_damaged_or_forged_export_is_refused(
        mutate: Callable[[Tamper], None], where: str, reason: str, export: Path, built: Built,
        capsys: pytest.CaptureFixture[str]) -> None:
    t = Tamper(export, built, Journal(export), built.verifier)
    mutate(t)
    t.journal.save()
    if t.refresh:
        refresh_manifest(export)
    args: list[str | Path] = [export] + (["--key", t.key] if t.key is not None else [])
    code, out, err = verify(capsys, *args)
    if t.key is None:
        assert err.startswith("note: trusting key.pub")
        err = err.partition("\n")[2]
    assert_invalid(code, out, err, where, reason)


def test_the_forgery_with_its_own_key_passes_only_without_key(
        export: Path, built: Built, capsys: pytest.CaptureFixture[str]) -> None:
    """Why --key matters: a forger ships his own key.pub; trusting it, the forgery verifies."""
    t = Tamper(export, built, Journal(export), None)
    _forgery_with_its_own_key(t)
    t.journal.save()
    refresh_manifest(export)
    code, out, err = verify(capsys, export)
    assert code == 0 and err.startswith("note: trusting key.pub")
    code, out, err = verify(capsys, export, "--key", built.verifier)
    assert_invalid(code, out, err, "checkpoint", NO_SIGNATURE)


def test_whatever_the_real_key_signs_and_obeys_the_rules_verifies(
        export: Path, built: Built, capsys: pytest.CaptureFixture[str]) -> None:
    """The control for the tests below: a rewrite that obeys every rule, re-chained, re-signed
    with the real key and given a matching manifest, verifies. So when they fail, only the rule
    each one breaks can be the reason. An appended retirement shows up in the totals."""
    journal = Journal(export)
    journal.rewrite(RETIRE, _new_beneficiary)
    journal.put(SIZE + 1, forged_retirement(journal, 10))
    journal.save()
    sign_checkpoint(export, SIZE + 1, journal.root(), built.signer)
    refresh_manifest(export)
    code, out, err = verify(capsys, export, "--key", built.verifier)
    assert (code, err) == (0, "")
    head, table = parse_summary(out)
    assert head.startswith(f"journal OK: {SIZE + 1} entries, head {journal.hash(SIZE + 1)[:16]}")
    issued, retired, cancelled, buffer, frozen, tradable = EXPECTED_TOTALS["VCS-868"]
    assert table["VCS-868"] == (issued, retired + 10, cancelled, buffer, frozen, tradable - 10)


# -- replay: rule breaks with every hash, the checkpoint and the manifest intact -----------------


Edit = Callable[[dict[str, Any], Replay, dict[str, int]], None]


def _spend_block_of_another_account(record: dict[str, Any], state: Replay,
                                    ids: dict[str, int]) -> None:
    record["data"]["spent"] = [unspent(state, ids["buyer"])]


def _spend_a_spent_block(record: dict[str, Any], state: Replay, ids: dict[str, int]) -> None:
    record["data"]["spent"] = [1]


def _spend_an_unknown_block(record: dict[str, Any], state: Replay, ids: dict[str, int]) -> None:
    record["data"]["spent"] = [999]


def _move_the_buffer(record: dict[str, Any], state: Replay, ids: dict[str, int]) -> None:
    data = record["data"]
    data["from"] = ids["buffer"]
    data["spent"] = [unspent(state, ids["buffer"], batch=4)]


def _retire_from_the_buffer(record: dict[str, Any], state: Replay, ids: dict[str, int]) -> None:
    data = record["data"]
    data["account"] = ids["buffer"]
    data["spent"] = [unspent(state, ids["buffer"], batch=4)]


def _cancel_the_retired_block(record: dict[str, Any], state: Replay, ids: dict[str, int]) -> None:
    record["data"]["spent"] = [unspent(state, ids["acme"], "retired")]


def _overspend(record: dict[str, Any], state: Replay, ids: dict[str, int]) -> None:
    record["data"]["quantity"] = 2_000_000


def _give_the_highest_serials(record: dict[str, Any], state: Replay, ids: dict[str, int]) -> None:
    taken, remainder = record["data"]["created"]
    size = taken["last"] - taken["first"] + 1
    first, last = taken["first"], remainder["last"]
    taken["first"], taken["last"] = last - size + 1, last
    remainder["first"], remainder["last"] = first, last - size


def _transfer_to_self(record: dict[str, Any], state: Replay, ids: dict[str, int]) -> None:
    record["data"]["to"] = record["data"]["from"]


def _zero_quantity(record: dict[str, Any], state: Replay, ids: dict[str, int]) -> None:
    record["data"]["quantity"] = 0


def _issue_an_origin_again(record: dict[str, Any], state: Replay, ids: dict[str, int]) -> None:
    record["data"]["batch"]["origin"] = state.batches[max(state.batches)].origin


def _issue_overlapping_serials(record: dict[str, Any], state: Replay, ids: dict[str, int]) -> None:
    batch, before = record["data"]["batch"], state.batches[max(state.batches)]
    batch["first"], batch["last"] = before.first + 1, before.last + 1


def _skip_a_batch_id(record: dict[str, Any], state: Replay, ids: dict[str, int]) -> None:
    record["data"]["batch"]["id"] += 1


def _buffer_takes_all(record: dict[str, Any], state: Replay, ids: dict[str, int]) -> None:
    batch = record["data"]["batch"]
    record["data"]["buffer"]["quantity"] = batch["last"] - batch["first"] + 1


def _other_purpose_without_note(record: dict[str, Any], state: Replay, ids: dict[str, int]) -> None:
    record["data"].update(purpose="other", note="")


def _bad_country(record: dict[str, Any], state: Replay, ids: dict[str, int]) -> None:
    record["data"]["country"] = "XX"


def _period_backwards(record: dict[str, Any], state: Replay, ids: dict[str, int]) -> None:
    record["data"].update(period_start="2025-12-31", period_end="2025-01-01")


def _unknown_kind(record: dict[str, Any], state: Replay, ids: dict[str, int]) -> None:
    record["kind"] = "burn"


def _bad_time(record: dict[str, Any], state: Replay, ids: dict[str, int]) -> None:
    record["time"] = "2026-13-01T00:00:00Z"


def _origin_below_the_batch(record: dict[str, Any], state: Replay, ids: dict[str, int]) -> None:
    record["data"]["first"] -= 1


def _origin_over_the_earlier_one(record: dict[str, Any], state: Replay,
                                 ids: dict[str, int]) -> None:
    record["data"].update(batch=1, first=61_407_220, last=61_407_225, spent=[], created=[])


def _origin_freezes_nothing(record: dict[str, Any], state: Replay, ids: dict[str, int]) -> None:
    record["data"].update(spent=[], created=[])


def _origin_freezes_too_much(record: dict[str, Any], state: Replay, ids: dict[str, int]) -> None:
    frozen = next(b for b in record["data"]["created"] if b["state"] == "frozen")
    above = next(b for b in record["data"]["created"] if b["first"] == frozen["last"] + 1)
    frozen["last"] += 1
    above["first"] += 1


def _origin_on_a_native_batch(record: dict[str, Any], state: Replay, ids: dict[str, int]) -> None:
    native = state.batches[6]
    record["data"].update(batch=6, first=native.first, last=native.first)


def _origin_unknown_action(record: dict[str, Any], state: Replay, ids: dict[str, int]) -> None:
    record["data"]["action"] = "unretired"


def _spend_the_frozen_block(record: dict[str, Any], state: Replay, ids: dict[str, int]) -> None:
    record["data"]["spent"] = [unspent(state, ids["inventory"], "frozen")]


def _label_contradicts_itself(record: dict[str, Any], state: Replay, ids: dict[str, int]) -> None:
    record["data"]["labels"].update(ca_declaration="Unknown", ca_status="Completed")


def _label_for_unknown_batch(record: dict[str, Any], state: Replay, ids: dict[str, int]) -> None:
    record["data"]["batch"] = 99


RULE_BREAKS: list[Any] = [
    pytest.param(TRANSFER, _spend_block_of_another_account,
                 r"block \d+ is held by account \d+, not \d+", id="spends-another-accounts-block"),
    pytest.param(TRANSFER, _spend_a_spent_block, "block 1 was already spent by seq 2",
                 id="double-spend"),
    pytest.param(TRANSFER, _spend_an_unknown_block, "block 999 does not exist", id="unknown-block"),
    pytest.param(TRANSFER, _move_the_buffer,
                 "credits in the buffer pool cannot be transferred or retired", id="moves-buffer"),
    pytest.param(RETIRE, _retire_from_the_buffer,
                 "credits in the buffer pool cannot be transferred or retired",
                 id="retires-from-buffer"),
    pytest.param(CANCEL, _cancel_the_retired_block, r"block \d+ is retired and can never move",
                 id="cancels-a-retired-block"),
    pytest.param(TRANSFER, _overspend,
                 "not enough tradable credits: 2000000 t asked, 1773117 t held", id="overspends"),
    pytest.param(TRANSFER, _give_the_highest_serials, BLOCKS_MISMATCH,
                 id="split-gives-highest-serials"),
    pytest.param(TRANSFER, _transfer_to_self, "a transfer must go to another account",
                 id="transfer-to-self"),
    pytest.param(CANCEL, _zero_quantity, "quantity must be at least 1 tonne, not 0",
                 id="zero-quantity"),
    pytest.param(5, _issue_an_origin_again, "origin 'VCS:944:5903' was already issued",
                 id="issued-twice"),
    pytest.param(5, _issue_overlapping_serials,
                 r"serials \[88120456, 88820455\] overlap batch 2 \[88120455, 88820454\]",
                 id="overlapping-serials"),
    pytest.param(5, _skip_a_batch_id, "batch id 4 should be 3", id="batch-id-skipped"),
    pytest.param(4, _buffer_takes_all,
                 "the buffer share must be smaller than the batch, in its own account",
                 id="buffer-takes-the-whole-batch"),
    pytest.param(RETIRE, _other_purpose_without_note,
                 "a purpose of 'other' needs a note describing it", id="other-without-note"),
    pytest.param(RETIRE, _bad_country, "country must be an ISO 3166-1 alpha-2 code, not 'XX'",
                 id="unknown-country"),
    pytest.param(RETIRE, _period_backwards, r"the period starts \(2025-12-31\) after it ends .*",
                 id="period-backwards"),
    pytest.param(CANCEL, _unknown_kind, "unknown entry kind 'burn'", id="unknown-kind"),
    pytest.param(CANCEL, _bad_time, "time is not a valid instant: '2026-13-01T00:00:00Z'",
                 id="impossible-time"),
    # origin records: inside their mirrored batch, never overlapping, freezing what they must
    pytest.param(ORIGIN_OURS, _origin_below_the_batch,
                 r"serials \[61407210, 61407222\] are not inside batch 1's mirrored range "
                 r"\[61407211, 62107210\]", id="origin-outside-its-batch"),
    pytest.param(ORIGIN_ELSEWHERE, _origin_over_the_earlier_one,
                 r"serials \[61407220, 61407225\] overlap the origin record at seq 13 "
                 r"\[61407211, 61407222\]: the origin retires a serial once",
                 id="origin-records-overlap"),
    pytest.param(ORIGIN_ELSEWHERE, _origin_freezes_nothing,
                 r"the origin record spends blocks \[\], but the tradable blocks holding its "
                 r"serials are \[\d+\]", id="origin-elsewhere-freezes-nothing"),
    pytest.param(ORIGIN_ELSEWHERE, _origin_freezes_too_much, BLOCKS_MISMATCH,
                 id="origin-freezes-more-than-its-range"),
    pytest.param(ORIGIN_OURS, _origin_on_a_native_batch,
                 "batch 6 does not mirror the verra registry", id="origin-on-a-native-batch"),
    pytest.param(ORIGIN_OURS, _origin_unknown_action,
                 "the origin action must be one of retired, cancelled, not 'unretired'",
                 id="origin-un-retires"),
    pytest.param(TRANSFER, _spend_the_frozen_block, r"block \d+ is frozen and can never move",
                 id="spends-a-frozen-block"),
    pytest.param(FIRST_LABEL, _label_contradicts_itself,
                 "a corresponding adjustment can only be pending or completed once it is "
                 "committed", id="label-completed-never-committed"),
    pytest.param(FIRST_LABEL, _label_for_unknown_batch, "no batch 99",
                 id="label-for-an-unknown-batch"),
]


@pytest.mark.parametrize(("seq", "edit", "reason"), RULE_BREAKS)
def test_the_replay_names_the_entry_that_breaks_a_rule(
        seq: int, edit: Edit, reason: str, export: Path, built: Built,
        capsys: pytest.CaptureFixture[str]) -> None:
    journal = Journal(export)
    state, ids = journal.state_before(seq), accounts(journal)
    journal.rewrite(seq, lambda record: edit(record, state, ids))
    journal.save()
    sign_checkpoint(export, SIZE, journal.root(), built.signer)
    refresh_manifest(export)
    code, out, err = verify(capsys, export, "--key", built.verifier)
    assert_invalid(code, out, err, f"seq {seq}", reason)


# -- certificates ----------------------------------------------------------------------------


def check_certificate(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                      certificate: dict[str, Any], key: Path) -> tuple[int, str, str]:
    path = tmp_path / "certificate.json"
    path.write_text(json.dumps(certificate), encoding="utf-8")
    return verify(capsys, "--certificate", path, "--key", key)


@pytest.mark.parametrize(("seq", "name", "quantity"), [
    pytest.param(RETIRE, ACME_NAME, 120, id="acme"),
    pytest.param(DEMO_RETIRE, TUNKI_NAME, 12, id="demo-buyer"),
])
def test_a_certificate_verifies_and_names_the_beneficiary(
        seq: int, name: str, quantity: int, built: Built, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    certificate = built.certificates[seq]
    code, out, err = check_certificate(capsys, tmp_path, certificate, built.verifier)
    assert (code, err) == (0, "")
    date = json.loads(certificate["record"])["data"]["date"]
    assert out == (f"certificate OK: seq {seq}, {quantity} t retired for {name} on {date}, "
                   f"included in the signed log of {SIZE} entries ({ORIGIN})\n")


@pytest.mark.parametrize("beneficiary", [None, {"name": None, "salt": None}],
                         ids=["omitted", "erased"])
def test_a_certificate_without_the_name_says_it_was_withheld(
        beneficiary: dict[str, Any] | None, built: Built, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    certificate = dict(built.certificates[RETIRE])
    if beneficiary is None:
        del certificate["beneficiary"]
    else:
        certificate["beneficiary"] = beneficiary
    code, out, err = check_certificate(capsys, tmp_path, certificate, built.verifier)
    assert (code, err) == (0, "")
    assert "120 t retired for a beneficiary whose name was withheld" in out


def test_a_certificate_against_an_older_checkpoint(built: Built, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = check_certificate(capsys, tmp_path, built.older_certificate, built.verifier)
    assert (code, err) == (0, "")
    assert f"included in the signed log of {SIZE - 1} entries" in out


def _cert_proof_byte_flipped(c: dict[str, Any], b: Built) -> None:
    raw = bytearray(base64.b64decode(c["inclusion_proof"][0]))
    raw[0] ^= 0x80
    c["inclusion_proof"][0] = _b64(bytes(raw))


def _cert_proof_shortened(c: dict[str, Any], b: Built) -> None:
    c["inclusion_proof"].pop()


def _cert_proof_of_other_size(c: dict[str, Any], b: Built) -> None:
    c["inclusion_proof"] = list(b.older_certificate["inclusion_proof"])


def _cert_seq(seq: int) -> Callable[[dict[str, Any], Built], None]:
    def edit(c: dict[str, Any], b: Built) -> None:
        c["seq"] = seq
    return edit


def _cert_record_edited(rehash: bool) -> Callable[[dict[str, Any], Built], None]:
    def edit(c: dict[str, Any], b: Built) -> None:
        record = canonical.loads(c["record"].encode("utf-8"))
        record["data"]["quantity"] = 1200
        c["record"] = canonical.dumps(record).decode("utf-8")
        if rehash:
            c["hash"] = hashlib.sha256(canonical.dumps(record)).hexdigest()
    return edit


def _cert_record_not_canonical(c: dict[str, Any], b: Built) -> None:
    c["record"] = json.dumps(json.loads(c["record"]))
    c["hash"] = hashlib.sha256(c["record"].encode("utf-8")).hexdigest()


def _cert_of_a_transfer(c: dict[str, Any], b: Built) -> None:
    c.clear()
    c.update(json.loads(json.dumps(b.transfer_certificate)))


def _cert_signature_flipped(c: dict[str, Any], b: Built) -> None:
    body, _, signature_line = c["checkpoint"][:-1].rpartition("\n")
    prefix, _, encoded = signature_line.rpartition(" ")
    raw = bytearray(base64.b64decode(encoded))
    raw[-1] ^= 0x01
    c["checkpoint"] = f"{body}\n{prefix} {_b64(bytes(raw))}\n"


def _cert_checkpoint_by_other_key(c: dict[str, Any], b: Built) -> None:
    body, _, _ = c["checkpoint"].partition("\n\n")
    checkpoint = Checkpoint.parse_body((body + "\n").encode("utf-8"))
    c["checkpoint"] = sign(checkpoint, load_signer(b.other_signer)).decode("utf-8")


def _cert_beneficiary(**changes: str) -> Callable[[dict[str, Any], Built], None]:
    def edit(c: dict[str, Any], b: Built) -> None:
        c["beneficiary"].update(changes)
    return edit


def _cert_other_beneficiary(c: dict[str, Any], b: Built) -> None:
    c["beneficiary"] = dict(b.certificates[DEMO_RETIRE]["beneficiary"])


def _cert_set(**changes: Any) -> Callable[[dict[str, Any], Built], None]:
    def edit(c: dict[str, Any], b: Built) -> None:
        c.update(changes)
    return edit


def _cert_drop(name: str) -> Callable[[dict[str, Any], Built], None]:
    def edit(c: dict[str, Any], b: Built) -> None:
        del c[name]
    return edit


def _cert_wrong_key(c: dict[str, Any], b: Built) -> None:
    c["_key"] = str(b.other_verifier)


NOT_PROVEN = r"not proven to be in the signed log: .*"
NOT_THIS_RETIREMENT = "the record is not the retirement this certificate names"
NAME_MISMATCH = "the beneficiary's name does not match the record's commitment"
MALFORMED = "a field is missing or malformed"

CERTIFICATE_MUTATIONS: list[Any] = [
    pytest.param(_cert_proof_byte_flipped, f"seq {RETIRE}",
                 rf"not proven to be in the signed log: inclusion proof for leaf {RETIRE - 1} "
                 "does not lead to the root", id="proof-byte-flipped"),
    pytest.param(_cert_proof_shortened, f"seq {RETIRE}", NOT_PROVEN, id="proof-shortened"),
    pytest.param(_cert_proof_of_other_size, f"seq {RETIRE}", NOT_PROVEN,
                 id="proof-for-another-tree-size"),
    pytest.param(_cert_seq(TRANSFER), f"seq {TRANSFER}", NOT_THIS_RETIREMENT, id="wrong-seq"),
    pytest.param(_cert_seq(DEMO_RETIRE), f"seq {DEMO_RETIRE}", NOT_THIS_RETIREMENT,
                 id="seq-of-another-retirement"),
    pytest.param(_cert_record_edited(rehash=False), f"seq {RETIRE}",
                 "the entry hash is not the SHA-256 of the record", id="record-edited"),
    pytest.param(_cert_record_edited(rehash=True), f"seq {RETIRE}", NOT_PROVEN,
                 id="record-edited-rehashed"),
    pytest.param(_cert_record_not_canonical, f"seq {RETIRE}", "the bytes are not in canonical form",
                 id="record-not-canonical"),
    pytest.param(_cert_of_a_transfer, f"seq {TRANSFER}", NOT_THIS_RETIREMENT,
                 id="certificate-of-a-transfer"),
    pytest.param(_cert_wrong_key, "checkpoint", NO_SIGNATURE, id="wrong-key"),
    pytest.param(_cert_checkpoint_by_other_key, "checkpoint", NO_SIGNATURE,
                 id="checkpoint-signed-by-another-key"),
    pytest.param(_cert_signature_flipped, "checkpoint", BAD_SIGNATURE,
                 id="checkpoint-signature-flipped"),
    pytest.param(_cert_beneficiary(name="Acme Coffee Limited"), f"seq {RETIRE}", NAME_MISMATCH,
                 id="beneficiary-renamed"),
    pytest.param(_cert_beneficiary(salt="00" * 16), f"seq {RETIRE}", NAME_MISMATCH,
                 id="beneficiary-salt-changed"),
    pytest.param(_cert_other_beneficiary, f"seq {RETIRE}", NAME_MISMATCH,
                 id="another-retirements-beneficiary"),
    pytest.param(_cert_set(format="selva-certificate/2"), "certificate",
                 "not a selva-certificate/1 document", id="wrong-format"),
    pytest.param(_cert_drop("inclusion_proof"), "certificate", MALFORMED, id="no-proof"),
    pytest.param(_cert_drop("checkpoint"), "certificate", MALFORMED, id="no-checkpoint"),
    pytest.param(_cert_set(inclusion_proof=["***"]), "certificate", MALFORMED,
                 id="proof-not-base64"),
    pytest.param(_cert_set(record=17), "certificate", MALFORMED, id="record-not-text"),
]


@pytest.mark.parametrize(("mutate", "where", "reason"), CERTIFICATE_MUTATIONS)
def test_a_forged_certificate_is_refused(
        mutate: Callable[[dict[str, Any], Built], None], where: str, reason: str, built: Built,
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    certificate = json.loads(json.dumps(built.certificates[RETIRE]))
    mutate(certificate, built)
    key = Path(certificate.pop("_key", built.verifier))
    code, out, err = check_certificate(capsys, tmp_path, certificate, key)
    assert_invalid(code, out, err, where, reason)


def test_an_unreadable_certificate_is_refused(built: Built, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "certificate.json"
    path.write_text("{not json", encoding="utf-8")
    code, out, err = verify(capsys, "--certificate", path, "--key", built.verifier)
    assert_invalid(code, out, err, "certificate", f"cannot read {re.escape(str(path))}: .*")
    code, out, err = verify(capsys, "--certificate", tmp_path / "absent.json",
                            "--key", built.verifier)
    assert_invalid(code, out, err, "certificate", "cannot read .*absent.json: .*")


def test_a_certificate_needs_a_key(built: Built, tmp_path: Path) -> None:
    path = tmp_path / "certificate.json"
    path.write_text(json.dumps(built.certificates[RETIRE]), encoding="utf-8")
    with pytest.raises(SystemExit) as exc:
        main(["--certificate", str(path)])
    assert exc.value.code == 2


# -- damaged input: the verifier exits 1 and names what is wrong, never an exception -------------
# (the backend makes no difference here: these run on the SQLite export only)


def test_a_journal_record_with_a_lone_surrogate_is_invalid(
        sqlite_export: Path, sqlite_built: Built, capsys: pytest.CaptureFixture[str]) -> None:
    """A journal record that is not valid Unicode text (``"record": "\\ud800"``, valid JSON)
    is reported as damage: ``main`` returns 1 with ``INVALID: seq 5: ...``, never a
    UnicodeEncodeError."""
    journal = Journal(sqlite_export)
    entry = journal.entry(5)
    entry["record"] = "\ud800"
    journal.set_lines(journal.lines[:4] + [json.dumps(entry).encode("ascii") + b"\n"]
                      + journal.lines[5:])
    journal.save()
    code, out, err = verify(capsys, sqlite_export, "--key", sqlite_built.verifier)
    assert code == 1 and err.startswith("INVALID: seq 5: "), err


def test_a_deeply_nested_journal_line_is_invalid(
        sqlite_export: Path, sqlite_built: Built, capsys: pytest.CaptureFixture[str]) -> None:
    """A journal line nested too deeply to parse (100,000 ``[``) is not valid JSON: ``main``
    returns 1 with ``INVALID: seq 5: ...``, never a RecursionError."""
    journal = Journal(sqlite_export)
    journal.set_lines(journal.lines[:4] + [b"[" * 100_000 + b"\n"] + journal.lines[5:])
    journal.save()
    code, out, err = verify(capsys, sqlite_export, "--key", sqlite_built.verifier)
    assert code == 1 and err.startswith("INVALID: seq 5: "), err


@pytest.mark.parametrize("changes", [
    pytest.param({"inclusion_proof": ["\u00e9"]}, id="proof-not-ascii"),
    pytest.param({"record": "\ud800"}, id="record-lone-surrogate"),
    pytest.param({"checkpoint": "\ud800"}, id="checkpoint-lone-surrogate"),
    pytest.param({"seq": float(RETIRE)}, id="seq-a-float"),
])
def test_a_malformed_certificate_is_invalid(
        changes: dict[str, Any], sqlite_built: Built, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A certificate with a non-ASCII proof element, a lone surrogate in its record or
    checkpoint, or a float ``seq`` is malformed: ``main`` returns 1 with
    ``INVALID: certificate: ...``, never a ValueError, UnicodeEncodeError or TypeError."""
    certificate = json.loads(json.dumps(sqlite_built.certificates[RETIRE]))
    certificate.update(changes)
    code, out, err = check_certificate(capsys, tmp_path, certificate, sqlite_built.verifier)
    assert code == 1 and err.startswith("INVALID: "), err


# -- as a program ------------------------------------------------------------------------------


def test_the_verifier_imports_neither_flask_nor_sqlalchemy() -> None:
    script = (
        "import ledger.verify, sys\n"
        "heavy = {'flask', 'sqlalchemy', 'marketplace', 'psycopg', 'alembic', 'werkzeug'}\n"
        "loaded = sorted(heavy & {name.partition('.')[0] for name in sys.modules})\n"
        "print(loaded)\n"
        "sys.exit(1 if loaded else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert (result.returncode, result.stdout, result.stderr) == (0, "[]\n", "")


def test_python_m_ledger_verify(export: Path, built: Built, tmp_path: Path) -> None:
    def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "ledger.verify", *map(str, args)], cwd=ROOT,
                              capture_output=True, text=True, timeout=60)

    good = run(export, "--key", built.verifier)
    assert (good.returncode, good.stderr) == (0, "")
    assert parse_summary(good.stdout)[1] == EXPECTED_TOTALS

    certificate = tmp_path / "certificate.json"
    certificate.write_text(json.dumps(built.certificates[RETIRE]), encoding="utf-8")
    cert = run("--certificate", certificate, "--key", built.verifier)
    assert (cert.returncode, cert.stderr) == (0, "")
    assert f"retired for {ACME_NAME}" in cert.stdout

    journal = Journal(export)
    _edit_record(TRANSFER, _set_quantity(501), rehash=False)(
        Tamper(export, built, journal, built.verifier))
    journal.save()
    bad = run(export, "--key", built.verifier)
    assert (bad.returncode, bad.stdout) == (1, "")
    assert bad.stderr.startswith(f"INVALID: seq {TRANSFER}: the entry hash ")


# -- the checkpoint's origin -------------------------------------------------------------------


def _resigned_under(directory: Path, signer: Path, origin: str) -> None:
    """Re-sign the export's checkpoint (same size and root) with ``signer`` under ``origin``."""
    note = (directory / bundle.CHECKPOINT).read_bytes()
    checkpoint = open_note(note, load_key(str(directory / bundle.KEY)))
    (directory / bundle.CHECKPOINT).write_bytes(
        sign(Checkpoint(origin, checkpoint.size, checkpoint.root), load_signer(signer)))
    refresh_manifest(directory)


def test_a_checkpoint_re_signed_under_another_origin_is_rejected(
        built: Built, export: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The operator's own key signed it, but for another log's name: a verifier that only
    checked the signature would take another log's checkpoint for this one."""
    _resigned_under(export, built.signer, "selva.example/other-log")
    code, out, err = verify(capsys, export, "--key", built.verifier)
    assert_invalid(code, out, err, "checkpoint",
                   re.escape("checkpoint origin 'selva.example/other-log' is not "
                             "'selva.example/ledger'"))
    # The origin can be named on purpose: then it is that log which must have signed.
    code, out, err = verify(capsys, export, "--key", built.verifier,
                            "--origin", "selva.example/other-log")
    assert code == 0, err
    code, out, err = verify(capsys, export, "--key", built.verifier,
                            "--origin", "selva.example/third-log")
    assert_invalid(code, out, err, "checkpoint", ".*is not 'selva.example/third-log'")


def test_a_certificate_re_signed_under_another_origin_is_rejected(
        built: Built, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    certificate = dict(built.certificates[RETIRE])
    checkpoint = open_note(certificate["checkpoint"].encode("utf-8"),
                           load_key(str(built.verifier)))
    certificate["checkpoint"] = sign(Checkpoint("selva.example/test-ledger", checkpoint.size,
                                                checkpoint.root),
                                     load_signer(built.signer)).decode("utf-8")
    code, out, err = check_certificate(capsys, tmp_path, certificate, built.verifier)
    assert_invalid(code, out, err, "checkpoint",
                   re.escape("checkpoint origin 'selva.example/test-ledger' is not "
                             "'selva.example/ledger'"))
    with pytest.raises(Invalid, match="is not 'selva.example/ledger'"):
        verify_certificate(certificate, load_key(str(built.verifier)))
