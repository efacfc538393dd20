"""Certificate PDFs, rendered once and served from storage (``certificate_pdfs``).

A certificate is fixed when it is signed, but for three things: its beneficiary's name can be
erased, the origin registry can record its serials (the certificate then cites that evidence,
and a checkpoint covering it), and its links name the site's address. So a stored PDF carries

- a *stamp*: whether its beneficiary's name is erased, the newest origin record's seq, the
  site's address and ``RENDER_VERSION``. While the stamp is the current one, the stored PDF is
  served after one query (``stored``), without building the certificate;
- a *digest* of the certificate document it was rendered from (every field the PDF shows, and
  its proof). When the stamp has moved, the certificate is built again; if its digest is
  unchanged the PDF is kept (and re-stamped), otherwise it is rendered again and replaced.

An erasure deletes the row in the erasure's own transaction (``forget``). Rendering runs
outside any transaction; storing is its own short transaction, which stores nothing if the
stamp moved while the PDF was rendered (an erasure in between), and a concurrent first request
that stored the PDF first is simply used. Should an erasure still slip in between that check
and the commit, the stored stamp says "not erased" and is never served again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .database import db
from .models.rendered import CertificatePdf
from .pagecache import origin_head

RENDER_VERSION = "1"
"""Bump when the certificate print templates change, so stored PDFs are rendered again."""


@dataclass(frozen=True)
class StoredPdf:
    pdf: bytes
    digest: str


def digest(document: dict[str, Any]) -> str:
    """What the PDF of ``document`` is rendered from, as a SHA-256 hex digest."""
    body = json.dumps(document, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(f"{RENDER_VERSION}\n{body}".encode()).hexdigest()


def stamp(erased: object, origin_seq: object, site: str) -> str:
    return f"{RENDER_VERSION}|{bool(erased)}|{origin_seq or 0}|{site}"[:300]


def _current(session: Session, erased: Any, site: str) -> str:
    erased_now, origin_now = session.execute(select(erased, origin_head())).one()
    return stamp(erased_now, origin_now, site)


def stored(session: Session, kind: str, ref: str, site: str, erased: Any) -> StoredPdf | None:
    """The stored PDF if its stamp is current (one query), else None."""
    row = session.execute(
        select(CertificatePdf.pdf, CertificatePdf.digest, CertificatePdf.stamp, erased,
               origin_head())
        .where(CertificatePdf.kind == kind, CertificatePdf.ref == ref)
    ).first()
    if row is None or row[2] != stamp(row[3], row[4], site):
        return None
    return StoredPdf(bytes(row[0]), str(row[1]))


def pdf_for(kind: str, ref: str, site: str, erased: Any, build: Callable[[], dict[str, Any]],
            render: Callable[[dict[str, Any]], bytes]) -> StoredPdf:
    """The PDF of certificate ``kind``/``ref`` as served on ``site``: stored, or built with
    ``build`` (in a transaction of its own; it may raise to answer 404 or pending) and, unless
    the stored PDF was rendered from exactly that document, rendered with ``render`` and stored.
    ``erased``: a scalar SQL expression, true once the certificate's beneficiary is erased.
    Call outside a transaction."""
    with db.session.begin():
        found = stored(db.session, kind, ref, site, erased)
    if found is not None:
        return found
    with db.session.begin():
        document = build()
        current = _current(db.session, erased, site)
        row = db.session.get(CertificatePdf, (kind, ref))
        wanted = digest(document)
        if row is not None and row.digest == wanted:
            row.stamp = current  # unchanged: the stored PDF is still this certificate's
            return StoredPdf(bytes(row.pdf), wanted)
    pdf = render(document)
    try:
        with db.session.begin():
            if _current(db.session, erased, site) != current:
                return StoredPdf(pdf, wanted)  # it changed while rendering: serve, keep nothing
            db.session.execute(delete(CertificatePdf).where(CertificatePdf.kind == kind,
                                                            CertificatePdf.ref == ref))
            db.session.add(CertificatePdf(kind=kind, ref=ref, digest=wanted, stamp=current,
                                          pdf=pdf))
    except IntegrityError:
        pass  # another request stored it at the same moment: theirs is as good as ours
    return StoredPdf(pdf, wanted)


def forget(session: Session, kind: str, ref: str) -> None:
    """Delete a stored PDF in the caller's transaction (an erasure: no stored PDF may keep a
    withheld name)."""
    session.execute(delete(CertificatePdf).where(CertificatePdf.kind == kind,
                                                 CertificatePdf.ref == ref))
