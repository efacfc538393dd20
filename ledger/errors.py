"""One error class per broken rule, all under :class:`LedgerError`.

The edge (web views, API, CLI) maps these to a message, an HTTP status or an exit code in one
place; the ledger itself never formats output for a user.
"""

from __future__ import annotations


class LedgerError(Exception):
    """Base of every error the ledger raises on purpose."""


class InvalidQuantityError(LedgerError):
    """Invariant 2: a quantity is a positive whole number of tonnes, within sane bounds."""


class SerialRangeError(LedgerError):
    """A serial range is empty, inverted, out of bounds or outside its batch."""


class OverlapError(LedgerError):
    """Invariant 1: unspent blocks of one batch may not overlap (nor may batches of one scheme)."""


class CoverageError(LedgerError):
    """Invariant 1: the unspent blocks of a batch must cover its serial range exactly."""


class FinalStateError(LedgerError):
    """Invariant 3: retired and cancelled blocks never move again."""


class DoubleSpendError(LedgerError):
    """Invariant 4: a block is spent at most once."""


class InsufficientCreditsError(LedgerError):
    """Invariant 5: the holder does not have enough tradable credits for the operation."""


class NotHolderError(LedgerError):
    """Invariant 5: only the holder of a block can move it."""


class AppendOnlyError(LedgerError):
    """Invariant 6: journal entries are never updated or deleted."""


class ReplayMismatchError(LedgerError):
    """Invariant 7: replaying the journal does not rebuild the blocks table."""


class ChainError(LedgerError):
    """Invariant 8 and the hash chain: a gap, a fork, or a hash that does not match its record."""


class UnknownAccountError(LedgerError):
    """The account named does not exist."""


class UnknownProjectError(LedgerError):
    """The project named does not exist."""


class UnknownBatchError(LedgerError):
    """The batch named does not exist."""


class DuplicateOriginError(LedgerError):
    """A batch with this origin reference was already issued: nothing is imported twice."""


class AccountKindError(LedgerError):
    """The account's kind does not allow this operation (e.g. moving the buffer pool)."""


class RetirementDetailsError(LedgerError):
    """A retirement's beneficiary, purpose, country or period is missing or malformed."""


class SerialFormatError(LedgerError):
    """A serial string does not parse, or its fields are out of range."""


class CanonicalFormError(LedgerError):
    """A value cannot be written as canonical JSON (a float, a huge integer, a bad string)."""


class OriginRecordError(LedgerError):
    """Evidence from an origin registry is malformed: an unknown action, a missing reference."""


class OriginRangeError(LedgerError):
    """An origin record's serials lie outside its batch's mirrored range, or overlap another
    origin record: the origin registry retires each serial at most once."""


class LabelError(LedgerError):
    """A batch's quality labels hold a value outside their fixed lists, or contradict
    themselves (a CCP label with no date, an adjustment completed but never committed)."""


class UnknownEntryError(LedgerError):
    """No journal entry (or no retirement) at that seq."""


class ErasedError(LedgerError):
    """The beneficiary's name was erased on request and can no longer be shown."""


class PoolError(LedgerError):
    """A kilogram allocation draws from an entry that is no pool retirement, or a pool
    retirement spends credits of another project than its pool's."""


class OverAllocationError(LedgerError):
    """Allocating these grams would take more from a pool retirement than the tonnes retired
    into it hold (1,000,000 g a tonne)."""
