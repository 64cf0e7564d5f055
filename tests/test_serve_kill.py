"""`imagen-video serve` killed with SIGKILL while jobs are in flight: after a restart on the same store
every accepted job completes exactly once and no partial file is ever served."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("gradio", reason="serve needs the 'serve' extra")

from imagen_video.serve.store import JobStore  # noqa: E402
from serve_helpers import mp4_frames, start_server, tiny_cascade_dir, wait_for  # noqa: E402

JOBS = 8


def _statuses(client: httpx.Client, ids: list[str]) -> dict[str, str]:
    return {job_id: client.get(f"/v1/videos/{job_id}").json()["status"] for job_id in ids}


@pytest.mark.slow
def test_kill_9_in_flight_then_restart_completes_each_job_once(tmp_path: Path) -> None:
    model_dir, store = tiny_cascade_dir(tmp_path), tmp_path / "store"
    options = ("--max-batch", "2", "--batch-wait-ms", "0")
    process, url = start_server(model_dir, store, *options)
    try:
        with httpx.Client(base_url=url, timeout=30.0) as client:
            bodies = [
                {"prompt": f"a red circle number {k}", "seed": k, "steps": {"base": 40}} for k in range(JOBS)
            ]
            ids = [client.post("/v1/videos", json=body).json()["id"] for body in bodies]
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                statuses = _statuses(client, ids)
                if "completed" in statuses.values() and "in_progress" in statuses.values():
                    break
                for job_id, status in statuses.items():  # content only once complete, and then whole
                    if status != "completed":
                        content = client.get(f"/v1/videos/{job_id}/content")
                        if content.status_code != 409:  # it completed since the status was read
                            assert mp4_frames(content.content).shape == (8, 16, 16, 3)
                time.sleep(0.05)
            before = _statuses(client, ids)
        process.send_signal(signal.SIGKILL)
        process.wait(30)
    finally:
        if process.poll() is None:
            process.kill()
    assert "in_progress" in before.values() and "queued" in before.values()

    process, url = start_server(model_dir, store, *options)
    try:
        with httpx.Client(base_url=url, timeout=30.0) as client:
            finished = [wait_for(client, job_id, timeout=180) for job_id in ids]
            listed = client.get("/v1/videos", params={"limit": 100}).json()["data"]
            contents = [client.get(f"/v1/videos/{job_id}/content").content for job_id in ids]
    finally:
        process.terminate()
        process.wait(30)
    assert [job["status"] for job in finished] == ["completed"] * JOBS
    assert sorted(job["id"] for job in listed) == sorted(ids)
    assert [JobStore(store).get(job_id).completions for job_id in ids] == [1] * JOBS
    assert all(mp4_frames(data).shape == (8, 16, 16, 3) for data in contents)
    assert not list((store / "videos").glob("*/.*.tmp*"))
