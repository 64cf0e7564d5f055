"""``manifest.jsonl`` of a batch-generation output directory: one JSON line per video.

Each line records the video's id, prompt, positions, generator seed, file name, SHA-256, the run's
settings (cascade, per-stage sampling settings, format), the rank that made it and the wall time of
its batch (and the batch's index). While a job runs, every rank appends its lines to its own part file
(``manifest.part-<rank>.jsonl``, one ``write`` + ``fsync`` per batch); at the end rank 0 merges the
manifest and every part into a new ``manifest.jsonl`` (written atomically) and removes the parts.
A run killed at any point leaves a manifest and parts that a re-run reads back: a video is done when
its file exists, its SHA-256 matches its latest line, and that line has the run's settings.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from imagen_video.cascade.jobs import VideoJob
from imagen_video.serialization import atomic_write_text

MANIFEST = "manifest.jsonl"
PART_GLOB = "manifest.part-*.jsonl"


def part_path(directory: Path, rank: int) -> Path:
    """The part file rank ``rank`` appends to while the job runs."""
    return directory / f"manifest.part-{rank}.jsonl"


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes; of a PNG frame folder, of each frame's name and bytes in name order."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(file.name.encode() + b"\0")
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def entry(job: VideoJob, settings: dict[str, Any], rank: int, batch: int, seconds: float) -> dict[str, Any]:
    """The manifest line of a written video, sampled by ``rank`` in batch ``batch`` in ``seconds``."""
    return {
        "id": job.id,
        "prompt": job.prompt,
        "prompt_index": job.prompt_index,
        "video_index": job.video_index,
        "seed": job.seed,
        "file": job.path.name,
        "sha256": file_sha256(job.path),
        "settings": settings,
        "rank": rank,
        "batch": batch,
        "batch_seconds": round(seconds, 3),
    }


def append_entries(path: Path, entries: Iterable[dict[str, Any]]) -> None:
    """Append lines to a part file and fsync it, so a line that is read back was fully written."""
    text = "".join(json.dumps(e, sort_keys=True) + "\n" for e in entries)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def _read_lines(path: Path) -> list[dict[str, Any]]:
    """The JSON-object lines of one manifest file; a torn or foreign line (a killed writer) is skipped."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    records = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and isinstance(record.get("id"), str):
            records.append(record)
    return records


def read_entries(directory: Path) -> dict[str, dict[str, Any]]:
    """The latest line per video id across ``manifest.jsonl`` and the part files of a directory."""
    latest: dict[str, dict[str, Any]] = {}
    for path in [directory / MANIFEST, *sorted(directory.glob(PART_GLOB))]:
        for record in _read_lines(path):
            latest[record["id"]] = record
    return latest


def is_done(job: VideoJob, record: dict[str, Any] | None, settings: dict[str, Any]) -> bool:
    """True when ``job``'s file exists, matches the SHA-256 of its manifest line, and that line was
    made with ``settings`` and the job's seed and prompt."""
    if record is None or record.get("settings") != settings:
        return False
    if (record.get("seed"), record.get("prompt"), record.get("file")) != (
        job.seed,
        job.prompt,
        job.path.name,
    ):
        return False
    return job.path.exists() and file_sha256(job.path) == record.get("sha256")


def remove_temporaries(directory: Path) -> list[Path]:
    """Remove the temporary files of atomic writes (``.<name>.*.tmp*``) that a killed run left behind;
    call it only while no rank is writing. Returns what was removed."""
    import shutil

    removed = sorted(directory.glob(".*.tmp*")) if directory.is_dir() else []
    for path in removed:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    return removed


def merge(directory: Path, jobs: Sequence[VideoJob]) -> Path:
    """Write ``manifest.jsonl`` (atomically): the latest line of each of ``jobs`` in job order, then
    lines of other videos the directory's manifest already held; then remove the part files."""
    latest = read_entries(directory)
    ids = [job.id for job in jobs if job.id in latest]
    ids += [ident for ident in latest if ident not in {job.id for job in jobs}]
    text = "".join(json.dumps(latest[ident], sort_keys=True) + "\n" for ident in ids)
    path = atomic_write_text(directory / MANIFEST, text)
    for part in directory.glob(PART_GLOB):
        part.unlink()
    return path
