"""The offline verifier checks the journal's lines in chunks, in a pool of processes, and
replays what they found in order in the main process. Whichever chunk a fault falls in, and
whichever process sees it, it must be found at the same place and for the same reason as when
one process reads every line.

These tests run the whole mutation suite of ``test_offline_verify`` again with chunks of four
entries checked by two worker processes, so that faults land on the first line of a chunk
(where only the main process can check the chain), in the middle of one, and in the last,
short one; and they check that every chunk size gives the same tree and totals.
"""

from __future__ import annotations

import hashlib
import marshal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ledger import bundle
from ledger import verify as verifier
from ledger.replay import Replay
from ledger.verify import Invalid, load_key, verify_export

from .test_offline_verify import (  # noqa: F401  (built and export are fixtures)
    FIRST_LABEL,
    MUTATIONS,
    RULE_BREAKS,
    SIZE,
    Built,
    Edit,
    Journal,
    Tamper,
    built,
    export,
    refresh_manifest,
    sign_checkpoint,
)
from .test_offline_verify import \
    test_a_damaged_or_forged_export_is_refused as refused  # the same test, in chunks
from .test_offline_verify import \
    test_the_replay_names_the_entry_that_breaks_a_rule as breaks_a_rule

POOLED: list[int] = []


@pytest.fixture(autouse=True)
def four_to_a_chunk(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Chunks of 4 entries, 2 worker processes, and a note of every pool that ran."""
    real = verifier._in_pool

    def in_pool(pool: Any, tasks: Any, ahead: int) -> Any:
        POOLED.append(ahead)
        return real(pool, tasks, ahead)

    monkeypatch.setattr(verifier, "CHUNK", 4)
    monkeypatch.setattr(verifier, "_workers", lambda requested: requested or 2)
    monkeypatch.setattr(verifier, "_in_pool", in_pool)
    POOLED.clear()
    yield


@pytest.mark.parametrize(("mutate", "where", "reason"), MUTATIONS)
def test_a_damaged_or_forged_export_is_refused_in_chunks(
        mutate: Callable[[Tamper], None], where: str, reason: str, export: Path, built: Built,
        capsys: pytest.CaptureFixture[str]) -> None:
    refused(mutate, where, reason, export, built, capsys)


@pytest.mark.parametrize(("seq", "edit", "reason"), RULE_BREAKS)
def test_the_replay_names_the_entry_that_breaks_a_rule_in_chunks(
        seq: int, edit: Edit, reason: str, export: Path, built: Built,
        capsys: pytest.CaptureFixture[str]) -> None:
    breaks_a_rule(seq, edit, reason, export, built, capsys)
    assert POOLED, "the chunks were not checked in a pool of processes"


@pytest.mark.parametrize("chunk", [1, 2, 4, 8, 16, 32, 64])
@pytest.mark.parametrize("workers", [1, 2])
def test_every_chunk_size_gives_the_same_tree_and_totals(export: Path, built: Built,
                                                        chunk: int, workers: int) -> None:
    """The tree's root must match the signed checkpoint however the 24 entries are cut up
    (24 = 16 + 8: chunks of 16 and 32 leave a short last chunk of several subtrees), and the
    totals must be those of one process reading every line."""
    whole = verify_export(export, load_key(str(built.verifier)), workers=1, chunk=1 << 20)
    progress: list[tuple[int, int]] = []
    summary = verify_export(export, load_key(str(built.verifier)), workers=workers, chunk=chunk,
                            progress=lambda done, total: progress.append((done, total)))
    assert (summary.entries, summary.head, summary.totals, summary.origin, summary.pending) == \
        (whole.entries, whole.head, whole.totals, whole.origin, whole.pending)
    assert progress[-1] == (SIZE, SIZE)
    assert [done for done, _ in progress] == sorted(done for done, _ in progress)
    assert bool(POOLED) == (workers > 1 and chunk < SIZE)


def test_a_chunk_size_must_be_a_power_of_two(export: Path, built: Built) -> None:
    with pytest.raises(ValueError, match="power of two"):
        verify_export(export, load_key(str(built.verifier)), chunk=3)


def test_a_chunk_that_does_not_chain_onto_the_one_before_is_refused(
        export: Path, built: Built) -> None:
    """The first record of a chunk names the previous hash; only the main process knows what
    that must be. A fifth record (the first of the second chunk) naming another previous hash,
    re-hashed, is caught there."""
    journal = Journal(export)
    journal.put(5, {**journal.record(5), "prev": "0" * 64})
    journal.save()
    refresh_manifest(export)
    with pytest.raises(Invalid) as caught:
        verify_export(export, load_key(str(built.verifier)))
    assert (caught.value.where, caught.value.reason) == (
        "seq 5", "the record's previous hash is not the hash of the entry before it")
    assert POOLED


def test_the_main_process_keeps_the_state_of_every_chunk(export: Path, built: Built) -> None:
    """What the replay rebuilt in the main process from the workers' steps is the state one
    ``Replay.apply`` per line rebuilds."""
    journal = Journal(export)
    serial = Replay()
    for seq in range(1, SIZE + 1):
        serial.apply(seq, journal.entry(seq)["record"].encode("utf-8"), journal.hash(seq))
    state = Replay()
    tree, _ = verifier._replay_journal(export / "journal.jsonl", state, SIZE, workers=2)
    assert tree.size == SIZE and POOLED
    assert (state.seq, state.head, state.blocks, state.batches, state.retirements,
            state.origin_records, state.labels, state.next_block) == \
        (serial.seq, serial.head, serial.blocks, serial.batches, serial.retirements,
         serial.origin_records, serial.labels, serial.next_block)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_null_previous_hash_at_the_start_of_a_chunk_is_refused(
        export: Path, built: Built, workers: int) -> None:
    """A first record of a chunk whose ``prev`` is null is checked like any other."""
    journal = Journal(export)
    journal.put(5, {**journal.record(5), "prev": None})
    journal.save()
    refresh_manifest(export)
    with pytest.raises(Invalid) as caught:
        verify_export(export, load_key(str(built.verifier)), workers=workers)
    assert (caught.value.where, caught.value.reason) == (
        "seq 5", "the record's previous hash is not the hash of the entry before it")


@pytest.mark.parametrize("workers", [1, 2])
def test_a_broken_rule_is_named_before_a_line_of_the_wrong_kind(
        export: Path, built: Built, workers: int) -> None:
    """An entry that breaks a rule of the ledger and whose line names another kind is refused
    for the rule, as when one process replays every line."""
    journal = Journal(export)
    journal.rewrite(FIRST_LABEL, lambda record: record["data"].update(batch=99))
    entry = journal.entry(FIRST_LABEL)
    journal.lines[FIRST_LABEL - 1] = bundle.journal_line(
        FIRST_LABEL, "issue", entry["record"].encode("utf-8"), entry["hash"])
    journal.save()
    sign_checkpoint(export, SIZE, journal.root(), built.signer)
    refresh_manifest(export)
    with pytest.raises(Invalid) as caught:
        verify_export(export, load_key(str(built.verifier)), workers=workers)
    assert (caught.value.where, caught.value.reason) == (f"seq {FIRST_LABEL}", "no batch 99")


@pytest.mark.parametrize("workers", [1, 2])
def test_a_record_nested_too_deep_is_invalid_not_a_crash(
        export: Path, built: Built, workers: int) -> None:
    """A re-hashed record holding 1,100 nested lists is refused as not canonical, in a worker
    process as in this one."""
    journal = Journal(export)
    record = journal.entry(6)["record"].encode("utf-8")
    deep = record.replace(b'"data":{', b'"data":' + b"[" * 1100 + b"]" * 1100 + b',"x":{', 1)
    lines = list(journal.lines)
    lines[5] = bundle.journal_line(6, "issue", deep, hashlib.sha256(deep).hexdigest())
    journal.set_lines(lines)
    journal.save()
    refresh_manifest(export)
    with pytest.raises(Invalid) as caught:
        verify_export(export, load_key(str(built.verifier)), workers=workers)
    assert caught.value.where == "seq 6"
    assert caught.value.reason.startswith("not valid JSON")


def test_steps_of_plain_values_travel_packed_and_come_back_the_same(export: Path) -> None:
    """A worker packs a chunk's steps with marshal when every one is plain values (transfers,
    retirements, cancellations), and leaves a chunk holding a record object (an issue) as it
    is; either way the main process replays the same steps."""
    path = str(export / "journal.jsonl")
    data = Path(path).read_bytes()
    ends = [i + 1 for i, byte in enumerate(data) if byte == ord("\n")]
    starts = [0, *ends[:-1]]
    kinds = [Journal(export).entry(seq)["kind"] for seq in range(1, len(ends) + 1)]
    plain = next(seq for seq in range(2, len(ends) - 1)
                 if {kinds[seq - 1], kinds[seq]} <= {"transfer", "retire", "cancel"})
    for seq, count, packed in ((1, 2, False), (plain, 2, True)):
        start, end = starts[seq - 1], ends[seq + count - 2]
        loose = verifier.check_chunk(path, start, end, seq, SIZE)
        tight = verifier.check_chunk(path, start, end, seq, SIZE, pack=True)
        assert isinstance(loose.steps, list) and loose.error is None
        assert isinstance(tight.steps, bytes) is packed
        assert (marshal.loads(tight.steps) if packed else tight.steps) == loose.steps
        assert tight._replace(steps=None) == loose._replace(steps=None)
