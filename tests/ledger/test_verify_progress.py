"""The offline verifier reports its progress: every 8,192 entries to a callback, and as a bar on
a terminal for exports of 100,000 entries or more."""

from __future__ import annotations

from typing import Any


def test_the_verifier_reports_progress(tmp_path: Any, monkeypatch: Any) -> None:
    from pathlib import Path

    from benchmarks.proofs_bench import build_export
    from ledger import verify

    export = build_export(Path(tmp_path) / "export", 20_000, 50)
    calls: list[tuple[int, int]] = []
    summary = verify.verify_export(Path(tmp_path) / "export", export.key,
                                   progress=lambda done, total: calls.append((done, total)))
    assert summary.entries == 20_000
    assert calls == [(8192, 20_000), (16_384, 20_000), (20_000, 20_000)]
    # A terminal gets a bar from 100,000 entries; a pipe, or a short export, does not.
    with verify._progress_bar(Path(tmp_path) / "export") as bar:
        assert bar is None
    monkeypatch.setattr(verify.sys.stderr, "isatty", lambda: True)
    (Path(tmp_path) / "big").mkdir()
    (Path(tmp_path) / "big" / "manifest.json").write_text('{"entries": 250000}')
    with verify._progress_bar(Path(tmp_path) / "big") as bar:
        assert bar is not None
        bar(8192, 250_000)
