"""Ingest as the CLI shows it: a progress bar with rows/s on stderr, a summary per file."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TextIO

import click
import duckdb
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from forensics.case.fingerprints import redact
from forensics.ingest.base import Options
from forensics.ingest.pipeline import FileResult, ingest_paths


def run_ingest(
    con: duckdb.DuckDBPyConnection,
    jobs: list[tuple[list[Path], str | None]],
    options: Options,
    *,
    show_progress: bool = True,
) -> list[FileResult]:
    """Ingest each (files, format) job in order, with one progress bar over all bytes."""
    total = sum(p.stat().st_size for files, _ in jobs for p in files)
    console = Console(stderr=True)
    progress = Progress(
        TextColumn("{task.description}", style="bold"),
        BarColumn(),
        DownloadColumn(),
        TextColumn("{task.fields[rows]:>12,} rows  {task.fields[rate]:>9,.0f} rows/s"),
        TimeElapsedColumn(),
        console=console,
        disable=not show_progress,
        transient=False,
    )
    results: list[FileResult] = []
    with progress:
        task = progress.add_task("ingest", total=total or 1, rows=0, rate=0.0)
        started = time.monotonic()
        rows = 0

        def advance(nbytes: int, nrows: int) -> None:
            nonlocal rows
            rows += nrows
            rate = rows / max(time.monotonic() - started, 1e-6)
            progress.update(task, advance=nbytes, rows=rows, rate=rate)

        def on_file(path: Path) -> None:
            progress.update(task, description=redact(path.name)[:32])

        for files, fmt in jobs:
            results.extend(
                ingest_paths(
                    con, files, fmt=fmt, options=options, progress=advance, on_file=on_file
                )
            )
        progress.update(task, description="ingest", completed=total or 1)
    return results


def print_summary(results: list[FileResult]) -> int:
    """Print one line per file to stdout, warnings and errors to stderr; return failures."""
    from forensics.output import write_table

    rows = [
        (
            r.status,
            r.format or "-",
            r.rows_read,
            r.rows_loaded,
            r.rows_quarantined,
            r.rows_skipped,
            "yes" if r.status != "loaded" or r.reconciles else "NO",
            redact(r.path),
        )
        for r in results
    ]
    out: TextIO = sys.stdout
    write_table(
        ["status", "format", "read", "loaded", "quarantined", "skipped", "reconciles", "file"],
        rows,
        out,
    )
    loaded = [r for r in results if r.status == "loaded"]
    skipped = [r for r in results if r.status == "skipped"]
    failed = [r for r in results if r.status == "failed"]
    out.write(
        f"{len(loaded)} loaded, {len(skipped)} skipped, {len(failed)} failed:"
        f" {sum(r.rows_read for r in loaded):,} read = {sum(r.rows_loaded for r in loaded):,}"
        f" loaded + {sum(r.rows_quarantined for r in loaded):,} quarantined\n"
    )
    for r in results:
        for w in r.warnings:
            click.echo(f"Warning: {redact(w)}", err=True)
        if r.replaced:
            earlier = ("sources " if len(r.replaced) > 1 else "source ") + ", ".join(
                str(i) for i in r.replaced
            )
            click.echo(
                f"Replaced: {redact(r.path)}: {earlier} removed, loaded again as source"
                f" {r.source_id} (`forensics sources --removed` lists removals)",
                err=True,
            )
        if r.geo_disagreements:
            click.echo(
                f"Note: {redact(r.path)}: {r.geo_disagreements:,} records: city's country"
                " disagreed with the log's country, country centroid used (geo_source centroid)",
                err=True,
            )
        if r.status == "skipped" and r.message:
            click.echo(f"Skipped: {redact(r.path)}: {redact(r.message)}", err=True)
        if r.status == "failed":
            click.echo(f"Error: {redact(r.message or '')}", err=True)
    return len(failed)
