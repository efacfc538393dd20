"""The rules the database enforces itself, so that no code path (or person with psql) can
break them: append-only entries and batches, blocks spent once and otherwise untouchable,
unspent blocks of a batch never overlapping and always inside the batch.

The migration installs them; tamper tests drop them to prove ``verify`` catches what they
would have stopped.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

_BLOCK_UNCHANGED = " AND ".join(
    f"NEW.{col} = OLD.{col}"
    for col in ("id", "batch_id", "account_id", "first_serial", "last_serial", "state",
                "created_by")
)

SQLITE_NO_OVERLAP = """CREATE TRIGGER ledger_blocks_no_overlap BEFORE INSERT ON ledger_blocks
       WHEN (SELECT o.last_serial FROM ledger_blocks o
             WHERE o.batch_id = NEW.batch_id AND o.spent_by IS NULL
               AND o.first_serial <= NEW.last_serial
             ORDER BY o.first_serial DESC LIMIT 1) >= NEW.first_serial
       BEGIN SELECT RAISE(ABORT, 'unspent ledger blocks of a batch may not overlap'); END"""
"""Unspent blocks never overlap, so only the unspent block starting nearest below the new
block's end can overlap it: one index probe instead of a scan of the batch."""

SQLITE_INSTALL = [
    """CREATE TRIGGER ledger_entries_no_update BEFORE UPDATE ON ledger_entries
       BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only: UPDATE refused'); END""",
    """CREATE TRIGGER ledger_entries_no_delete BEFORE DELETE ON ledger_entries
       BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only: DELETE refused'); END""",
    """CREATE TRIGGER ledger_batches_no_update BEFORE UPDATE ON ledger_batches
       BEGIN SELECT RAISE(ABORT, 'ledger batches are immutable: UPDATE refused'); END""",
    """CREATE TRIGGER ledger_batches_no_delete BEFORE DELETE ON ledger_batches
       BEGIN SELECT RAISE(ABORT, 'ledger batches are immutable: DELETE refused'); END""",
    """CREATE TRIGGER ledger_blocks_no_delete BEFORE DELETE ON ledger_blocks
       BEGIN SELECT RAISE(ABORT, 'ledger blocks are never deleted'); END""",
    f"""CREATE TRIGGER ledger_blocks_spend_once BEFORE UPDATE ON ledger_blocks
       WHEN NOT (OLD.spent_by IS NULL AND NEW.spent_by IS NOT NULL AND {_BLOCK_UNCHANGED})
       BEGIN SELECT RAISE(ABORT, 'a ledger block is only updated once, to mark it spent'); END""",
    """CREATE TRIGGER ledger_blocks_inside_batch BEFORE INSERT ON ledger_blocks
       WHEN NOT EXISTS (SELECT 1 FROM ledger_batches b WHERE b.id = NEW.batch_id
                        AND NEW.first_serial >= b.first_serial AND NEW.last_serial <= b.last_serial)
       BEGIN SELECT RAISE(ABORT, 'a ledger block must lie inside its batch'); END""",
    SQLITE_NO_OVERLAP,
    """CREATE TRIGGER ledger_batches_no_overlap BEFORE INSERT ON ledger_batches
       WHEN EXISTS (SELECT 1 FROM ledger_batches o WHERE o.scheme = NEW.scheme
                    AND o.first_serial <= NEW.last_serial AND NEW.first_serial <= o.last_serial)
       BEGIN SELECT RAISE(ABORT, 'ledger batches of one serial scheme may not overlap'); END""",
    """CREATE TRIGGER ledger_chain_head_no_delete BEFORE DELETE ON ledger_chain_head
       BEGIN SELECT RAISE(ABORT, 'the chain head is never deleted'); END""",
]

SQLITE_INSTALL_TREE = [
    f"""CREATE TRIGGER {table}_no_{op.lower()} BEFORE {op} ON {table}
       BEGIN SELECT RAISE(ABORT, '{table} is append-only: {op} refused'); END"""
    for table in ("ledger_merkle_nodes", "ledger_checkpoints")
    for op in ("UPDATE", "DELETE")
]
SQLITE_DROP_TREE = [
    f"DROP TRIGGER IF EXISTS {table}_no_{op}"
    for table in ("ledger_merkle_nodes", "ledger_checkpoints")
    for op in ("update", "delete")
]
POSTGRES_INSTALL_TREE = [
    f"""CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table}
       FOR EACH ROW EXECUTE FUNCTION ledger_refuse()"""
    for table in ("ledger_merkle_nodes", "ledger_checkpoints")
] + [
    f"""CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}
       FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse()"""
    for table in ("ledger_merkle_nodes", "ledger_checkpoints")
]
POSTGRES_DROP_TREE = [
    f"DROP TRIGGER IF EXISTS {table}_{what} ON {table}"
    for table in ("ledger_merkle_nodes", "ledger_checkpoints")
    for what in ("append_only", "no_truncate")
]

SQLITE_DROP = [
    f"DROP TRIGGER IF EXISTS {name}"
    for name in (
        "ledger_entries_no_update", "ledger_entries_no_delete", "ledger_batches_no_update",
        "ledger_batches_no_delete", "ledger_blocks_no_delete", "ledger_blocks_spend_once",
        "ledger_blocks_inside_batch", "ledger_blocks_no_overlap", "ledger_batches_no_overlap",
        "ledger_chain_head_no_delete",
    )
]

POSTGRES_INSTALL = [
    "CREATE EXTENSION IF NOT EXISTS btree_gist",
    """CREATE FUNCTION ledger_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         RAISE EXCEPTION 'ledger table % is append-only: % refused', TG_TABLE_NAME, TG_OP
           USING ERRCODE = 'restrict_violation';
       END $$""",
    """CREATE FUNCTION ledger_block_spend_once() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         IF OLD.spent_by IS NULL AND NEW.spent_by IS NOT NULL AND """
    + _BLOCK_UNCHANGED
    + """ THEN
           RETURN NEW;
         END IF;
         RAISE EXCEPTION 'a ledger block is only updated once, to mark it spent'
           USING ERRCODE = 'restrict_violation';
       END $$""",
    """CREATE FUNCTION ledger_block_inside_batch() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         IF NOT EXISTS (SELECT 1 FROM ledger_batches b WHERE b.id = NEW.batch_id
                        AND NEW.first_serial >= b.first_serial
                        AND NEW.last_serial <= b.last_serial) THEN
           RAISE EXCEPTION 'a ledger block must lie inside its batch'
             USING ERRCODE = 'check_violation';
         END IF;
         RETURN NEW;
       END $$""",
    """CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE ON ledger_entries
       FOR EACH ROW EXECUTE FUNCTION ledger_refuse()""",
    """CREATE TRIGGER ledger_entries_no_truncate BEFORE TRUNCATE ON ledger_entries
       FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse()""",
    """CREATE TRIGGER ledger_batches_append_only BEFORE UPDATE OR DELETE ON ledger_batches
       FOR EACH ROW EXECUTE FUNCTION ledger_refuse()""",
    """CREATE TRIGGER ledger_batches_no_truncate BEFORE TRUNCATE ON ledger_batches
       FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse()""",
    """CREATE TRIGGER ledger_blocks_no_delete BEFORE DELETE ON ledger_blocks
       FOR EACH ROW EXECUTE FUNCTION ledger_refuse()""",
    """CREATE TRIGGER ledger_blocks_no_truncate BEFORE TRUNCATE ON ledger_blocks
       FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse()""",
    """CREATE TRIGGER ledger_blocks_spend_once BEFORE UPDATE ON ledger_blocks
       FOR EACH ROW EXECUTE FUNCTION ledger_block_spend_once()""",
    """CREATE TRIGGER ledger_blocks_inside_batch BEFORE INSERT ON ledger_blocks
       FOR EACH ROW EXECUTE FUNCTION ledger_block_inside_batch()""",
    """CREATE TRIGGER ledger_chain_head_no_delete BEFORE DELETE OR TRUNCATE ON ledger_chain_head
       FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse()""",
    """ALTER TABLE ledger_blocks ADD CONSTRAINT ex_ledger_blocks_unspent_overlap
       EXCLUDE USING gist (batch_id WITH =, int8range(first_serial, last_serial, '[]') WITH &&)
       WHERE (spent_by IS NULL)""",
    """ALTER TABLE ledger_batches ADD CONSTRAINT ex_ledger_batches_overlap
       EXCLUDE USING gist (scheme WITH =, int8range(first_serial, last_serial, '[]') WITH &&)""",
]

POSTGRES_DROP = [
    "ALTER TABLE ledger_batches DROP CONSTRAINT IF EXISTS ex_ledger_batches_overlap",
    "ALTER TABLE ledger_blocks DROP CONSTRAINT IF EXISTS ex_ledger_blocks_unspent_overlap",
    "DROP TRIGGER IF EXISTS ledger_chain_head_no_delete ON ledger_chain_head",
    "DROP TRIGGER IF EXISTS ledger_blocks_inside_batch ON ledger_blocks",
    "DROP TRIGGER IF EXISTS ledger_blocks_spend_once ON ledger_blocks",
    "DROP TRIGGER IF EXISTS ledger_blocks_no_truncate ON ledger_blocks",
    "DROP TRIGGER IF EXISTS ledger_blocks_no_delete ON ledger_blocks",
    "DROP TRIGGER IF EXISTS ledger_batches_no_truncate ON ledger_batches",
    "DROP TRIGGER IF EXISTS ledger_batches_append_only ON ledger_batches",
    "DROP TRIGGER IF EXISTS ledger_entries_no_truncate ON ledger_entries",
    "DROP TRIGGER IF EXISTS ledger_entries_append_only ON ledger_entries",
    "DROP FUNCTION IF EXISTS ledger_block_inside_batch()",
    "DROP FUNCTION IF EXISTS ledger_block_spend_once()",
    "DROP FUNCTION IF EXISTS ledger_refuse()",
]


# -- origin evidence and labels (migration 0008) ------------------------------------------------

_EVIDENCE = ("ledger_origin_records", "ledger_batch_labels")

SQLITE_INSTALL_ORIGIN = [
    f"""CREATE TRIGGER {table}_no_{op.lower()} BEFORE {op} ON {table}
       BEGIN SELECT RAISE(ABORT, '{table} is append-only: {op} refused'); END"""
    for table in _EVIDENCE
    for op in ("UPDATE", "DELETE")
] + [
    """CREATE TRIGGER ledger_origin_records_no_overlap BEFORE INSERT ON ledger_origin_records
       WHEN EXISTS (SELECT 1 FROM ledger_origin_records o WHERE o.batch_id = NEW.batch_id
                    AND o.first_serial <= NEW.last_serial AND NEW.first_serial <= o.last_serial)
       BEGIN SELECT RAISE(ABORT, 'origin records of a batch may not overlap'); END""",
    """CREATE TRIGGER ledger_origin_records_inside_batch BEFORE INSERT ON ledger_origin_records
       WHEN NOT EXISTS (SELECT 1 FROM ledger_batches b WHERE b.id = NEW.batch_id
                        AND b.scheme = 'verra' AND NEW.first_serial >= b.first_serial
                        AND NEW.last_serial <= b.last_serial)
       BEGIN SELECT RAISE(ABORT, 'an origin record must lie inside its mirrored batch'); END""",
]
SQLITE_DROP_ORIGIN = [
    f"DROP TRIGGER IF EXISTS {table}_no_{op}" for table in _EVIDENCE for op in ("update", "delete")
] + [
    "DROP TRIGGER IF EXISTS ledger_origin_records_no_overlap",
    "DROP TRIGGER IF EXISTS ledger_origin_records_inside_batch",
]
POSTGRES_INSTALL_ORIGIN = [
    f"""CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table}
       FOR EACH ROW EXECUTE FUNCTION ledger_refuse()"""
    for table in _EVIDENCE
] + [
    f"""CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}
       FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse()"""
    for table in _EVIDENCE
] + [
    """CREATE FUNCTION ledger_origin_inside_batch() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         IF NOT EXISTS (SELECT 1 FROM ledger_batches b WHERE b.id = NEW.batch_id
                        AND b.scheme = 'verra' AND NEW.first_serial >= b.first_serial
                        AND NEW.last_serial <= b.last_serial) THEN
           RAISE EXCEPTION 'an origin record must lie inside its mirrored batch'
             USING ERRCODE = 'check_violation';
         END IF;
         RETURN NEW;
       END $$""",
    """CREATE TRIGGER ledger_origin_records_inside_batch BEFORE INSERT ON ledger_origin_records
       FOR EACH ROW EXECUTE FUNCTION ledger_origin_inside_batch()""",
    """ALTER TABLE ledger_origin_records ADD CONSTRAINT ex_ledger_origin_records_overlap
       EXCLUDE USING gist (batch_id WITH =, int8range(first_serial, last_serial, '[]') WITH &&)""",
]
POSTGRES_DROP_ORIGIN = [
    "ALTER TABLE ledger_origin_records DROP CONSTRAINT IF EXISTS ex_ledger_origin_records_overlap",
    "DROP TRIGGER IF EXISTS ledger_origin_records_inside_batch ON ledger_origin_records",
    "DROP FUNCTION IF EXISTS ledger_origin_inside_batch()",
] + [
    f"DROP TRIGGER IF EXISTS {table}_{what} ON {table}"
    for table in _EVIDENCE
    for what in ("append_only", "no_truncate")
]


# -- kilogram pools (migration 0014) --------------------------------------------------------------

_POOL_TABLES = ("ledger_pool_retirements", "ledger_allocation_draws")
_ALLOCATION_KEPT = " AND ".join(
    f"NEW.{col} = OLD.{col}"
    for col in ("seq", "idx", "grams", "commitment", "purpose", "note", "country",
                "period_start", "period_end"))
_DRAW_WITHIN_POOL = """(SELECT coalesce(sum(d.grams), 0) FROM ledger_allocation_draws d
                           WHERE d.pool_seq = NEW.pool_seq) + NEW.grams
                         > (SELECT p.quantity * 1000000 FROM ledger_pool_retirements p
                            WHERE p.seq = NEW.pool_seq)"""
"""Invariant of the pools: no pool retirement gives more grams than its tonnes hold."""

SQLITE_INSTALL_POOLS = [
    f"""CREATE TRIGGER {table}_no_{op.lower()} BEFORE {op} ON {table}
       BEGIN SELECT RAISE(ABORT, '{table} is append-only: {op} refused'); END"""
    for table in _POOL_TABLES
    for op in ("UPDATE", "DELETE")
] + [
    """CREATE TRIGGER ledger_allocations_no_delete BEFORE DELETE ON ledger_allocations
       BEGIN SELECT RAISE(ABORT, 'ledger_allocations is append-only: DELETE refused'); END""",
    f"""CREATE TRIGGER ledger_allocations_erase_only BEFORE UPDATE ON ledger_allocations
       WHEN NOT ({_ALLOCATION_KEPT})
       BEGIN SELECT RAISE(ABORT, 'an allocation changes only to erase its beneficiary'); END""",
    f"""CREATE TRIGGER ledger_allocation_draws_within_pool BEFORE INSERT
       ON ledger_allocation_draws WHEN {_DRAW_WITHIN_POOL}
       BEGIN SELECT RAISE(ABORT, 'a pool retirement may not give more grams than it holds');
       END""",
]
SQLITE_DROP_POOLS = [
    f"DROP TRIGGER IF EXISTS {table}_no_{op}" for table in _POOL_TABLES
    for op in ("update", "delete")
] + [
    "DROP TRIGGER IF EXISTS ledger_allocations_no_delete",
    "DROP TRIGGER IF EXISTS ledger_allocations_erase_only",
    "DROP TRIGGER IF EXISTS ledger_allocation_draws_within_pool",
]
POSTGRES_INSTALL_POOLS = [
    f"""CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table}
       FOR EACH ROW EXECUTE FUNCTION ledger_refuse()"""
    for table in _POOL_TABLES
] + [
    f"""CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}
       FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse()"""
    for table in (*_POOL_TABLES, "ledger_allocations")
] + [
    """CREATE TRIGGER ledger_allocations_no_delete BEFORE DELETE ON ledger_allocations
       FOR EACH ROW EXECUTE FUNCTION ledger_refuse()""",
    f"""CREATE FUNCTION ledger_allocation_erase_only() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         IF NOT ({_ALLOCATION_KEPT}) THEN
           RAISE EXCEPTION 'an allocation changes only to erase its beneficiary'
             USING ERRCODE = 'restrict_violation';
         END IF;
         RETURN NEW;
       END $$""",
    """CREATE TRIGGER ledger_allocations_erase_only BEFORE UPDATE ON ledger_allocations
       FOR EACH ROW EXECUTE FUNCTION ledger_allocation_erase_only()""",
    f"""CREATE FUNCTION ledger_draw_within_pool() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         IF {_DRAW_WITHIN_POOL} THEN
           RAISE EXCEPTION 'a pool retirement may not give more grams than it holds'
             USING ERRCODE = 'check_violation';
         END IF;
         RETURN NEW;
       END $$""",
    """CREATE TRIGGER ledger_allocation_draws_within_pool BEFORE INSERT
       ON ledger_allocation_draws FOR EACH ROW EXECUTE FUNCTION ledger_draw_within_pool()""",
]
POSTGRES_DROP_POOLS = [
    "DROP TRIGGER IF EXISTS ledger_allocation_draws_within_pool ON ledger_allocation_draws",
    "DROP FUNCTION IF EXISTS ledger_draw_within_pool()",
    "DROP TRIGGER IF EXISTS ledger_allocations_erase_only ON ledger_allocations",
    "DROP FUNCTION IF EXISTS ledger_allocation_erase_only()",
    "DROP TRIGGER IF EXISTS ledger_allocations_no_delete ON ledger_allocations",
] + [
    f"DROP TRIGGER IF EXISTS {table}_{what} ON {table}"
    for table in (*_POOL_TABLES, "ledger_allocations")
    for what in ("append_only", "no_truncate")
]


GUARDS = {
    # (dialect, part): (install, drop). "core" came with the first migration, "tree" with the
    # Merkle tree's; the tree's PostgreSQL triggers use ledger_refuse() from "core".
    ("sqlite", "core"): (SQLITE_INSTALL, SQLITE_DROP),
    ("sqlite", "tree"): (SQLITE_INSTALL_TREE, SQLITE_DROP_TREE),
    ("postgresql", "core"): (POSTGRES_INSTALL, POSTGRES_DROP),
    ("postgresql", "tree"): (POSTGRES_INSTALL_TREE, POSTGRES_DROP_TREE),
    ("sqlite", "origin"): (SQLITE_INSTALL_ORIGIN, SQLITE_DROP_ORIGIN),
    ("postgresql", "origin"): (POSTGRES_INSTALL_ORIGIN, POSTGRES_DROP_ORIGIN),
    ("sqlite", "pools"): (SQLITE_INSTALL_POOLS, SQLITE_DROP_POOLS),
    ("postgresql", "pools"): (POSTGRES_INSTALL_POOLS, POSTGRES_DROP_POOLS),
}

ALL_PARTS = ("core", "tree", "origin", "pools")


def install(connection: Connection, parts: tuple[str, ...] = ALL_PARTS) -> None:
    """Install the guards for the connection's dialect."""
    for part in parts:
        for statement in _pair(connection, part)[0]:
            connection.execute(text(statement))


def drop(connection: Connection,
         parts: tuple[str, ...] = ("pools", "origin", "tree", "core")) -> None:
    """Remove the guards (migration downgrades, and tamper tests)."""
    for part in parts:
        for statement in _pair(connection, part)[1]:
            connection.execute(text(statement))


def sqlite_widen_check(connection: Connection, table: str, old: str, new: str) -> None:
    """Replace the text ``old`` of a CHECK constraint in a SQLite table's definition by ``new``.

    SQLite cannot alter a constraint, and rebuilding a table that others reference needs
    foreign keys off, which cannot be switched inside the migration's transaction. For a
    change that only widens a CHECK (every stored row still satisfies it) SQLite documents
    editing the schema text in place ("Making Other Kinds Of Table Schema Changes"): the
    table, its indexes and its triggers stay exactly as they are.
    """
    sql = connection.execute(
        text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = :name"),
        {"name": table},
    ).scalar_one()
    if old not in sql:
        raise RuntimeError(f"{table}: the constraint text {old!r} is not in its definition")
    version = connection.execute(text("PRAGMA schema_version")).scalar_one()
    connection.execute(text("PRAGMA writable_schema = ON"))
    connection.execute(
        text("UPDATE sqlite_master SET sql = :sql WHERE type = 'table' AND name = :name"),
        {"sql": sql.replace(old, new), "name": table},
    )
    connection.execute(text(f"PRAGMA schema_version = {int(version) + 1}"))
    connection.execute(text("PRAGMA writable_schema = OFF"))
    problems = connection.execute(text("PRAGMA integrity_check")).scalars().all()
    if problems != ["ok"]:
        raise RuntimeError(f"{table}: integrity check failed after the change: {problems}")


def _pair(connection: Connection, part: str) -> tuple[list[str], list[str]]:
    name = connection.dialect.name
    if (name, part) not in GUARDS:
        raise NotImplementedError(f"no ledger guards for {name}")
    return GUARDS[(name, part)]
