"""Shared pieces of the `serve` tests (no tests here): a tiny random cascade directory, an app on a
store, polling a job until it finishes, and decoding the files the server returns."""

from __future__ import annotations

import io
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from imagen_video.cli import main


def tiny_cascade_dir(root: Path) -> Path:
    """A tiny random-initialised cascade (base 4x8x8, tsr 8x8x8, ssr 8x16x16) saved under ``root``."""
    directory = root / "tiny"
    assert main(["cascade", "init", str(directory), "--preset", "tiny", "--seed", "0"]) == 0
    return directory


def wait_for(client: Any, job_id: str, *, timeout: float = 60.0, until: tuple[str, ...] = ("completed",)) -> dict:
    """Poll ``GET /v1/videos/{id}`` until its status is in ``until`` (or failed); return the job."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/videos/{job_id}").json()
        if job["status"] in until or job["status"] == "failed":
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not reach {until} in {timeout} s: {job}")


def png_frames(archive: bytes) -> np.ndarray:
    """The frames (T, H, W, 3) uint8 of a ``?variant=png`` zip, in name order."""
    from PIL import Image

    with zipfile.ZipFile(io.BytesIO(archive)) as zipped:
        names = sorted(zipped.namelist())
        return np.stack([np.asarray(Image.open(io.BytesIO(zipped.read(n))).convert("RGB")) for n in names])


def mp4_frames(data: bytes) -> np.ndarray:
    """The decoded frames (T, H, W, 3) uint8 of an mp4 file's bytes."""
    import av

    with av.open(io.BytesIO(data)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(container.streams.video[0])])
