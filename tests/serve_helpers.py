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


def api_app(cascades: dict, store: Path, **options: Any) -> Any:
    """The server's app without the page, on a job store at ``store`` (``options`` go to ``build_app``)."""
    from imagen_video.serve.app import build_app
    from imagen_video.serve.store import JobStore

    return build_app(cascades, JobStore(store), page=False, **options)


def wait_for(
    client: Any, job_id: str, *, timeout: float = 60.0, until: tuple[str, ...] = ("completed",)
) -> dict:
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


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(model_dir: Path, store: Path, *options: str, timeout: float = 120.0) -> tuple[Any, str]:
    """Start ``imagen-video serve`` on a free loopback port; return (the process, its base URL) once
    ``/health`` answers. The caller stops the process."""
    import os
    import subprocess
    import sys

    import httpx

    port = free_port()
    command = [
        sys.executable,
        "-m",
        "imagen_video.cli",
        "serve",
        "--model",
        str(model_dir),
        "--store",
        str(store),
    ]
    command += ["--port", str(port), "--threads", "1", *options]
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "OMP_NUM_THREADS": "1"}
    log = store.parent / f"serve-{port}.log"
    with open(log, "wb") as output:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited: {log.read_text(errors='replace')}")
        try:
            if httpx.get(f"{url}/health", timeout=1.0).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.kill()
    raise AssertionError(f"the server did not answer /health in {timeout} s")
