"""Rendered certificate PDFs, stored so that each is rendered once.

A row holds the PDF of one certificate, the digest of exactly what it was rendered from (the
certificate document and the renderer's version) and a stamp of what the certificate can still
change with (records from the origin registry, the site's address). While the stamp holds, the
stored bytes are served as they are; when it moves, the certificate is built again and, if its
digest moved too, rendered again and replaced. Erasing a name deletes the row in the erasure's
transaction, so no stored PDF keeps a name the registry has withheld. One table per mode, like
the certificates."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import CheckConstraint, DateTime, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from ledger.schema import Base, one_of, utcnow

PDF_KINDS = ("retirement", "allocation")


class CertificatePdf(Base):
    __tablename__ = "certificate_pdfs"
    __table_args__ = (CheckConstraint(one_of("kind", PDF_KINDS), name="kind"),)

    kind: Mapped[str] = mapped_column(String(12), primary_key=True)
    ref: Mapped[str] = mapped_column(String(40), primary_key=True)
    """The retirement's seq, or the allocation's reference."""
    digest: Mapped[str] = mapped_column(String(64))
    """SHA-256 of what the PDF was rendered from (``pdfstore.digest``)."""
    stamp: Mapped[str] = mapped_column(String(300))
    """What else the certificate can change with (``pdfstore.stamp``): while it is the same,
    the stored PDF is served without building the certificate again."""
    pdf: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
