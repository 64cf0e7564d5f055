"""The variants of a job's videos in `imagen-video serve`: the worker writes the job's format and a zip
of PNG frames; the gif (and the mp4 of a gif or png job) and the page's preview are encoded on first
request from those frames, kept, and reused; DELETE removes them and a restart keeps them."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402

from imagen_video.cascade.export import to_uint8_frames, write_video  # noqa: E402
from imagen_video.serve import requests, variants  # noqa: E402
from imagen_video.serve.app import load_cascades  # noqa: E402
from imagen_video.serve.store import JobStore, new_job_id  # noqa: E402
from serve_helpers import api_app, mp4_frames, png_frames, tiny_cascade_dir, wait_for  # noqa: E402
from test_cascade_helpers import single_thread  # noqa: E402

PROMPT = "a red circle moving right"
FAST = {"steps": 2}
SHAPE = (8, 16, 16, 3)  # the tiny cascade's videos: T, H, W, RGB


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    yield from single_thread()


@pytest.fixture(scope="module")
def cascades(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return load_cascades([str(tiny_cascade_dir(tmp_path_factory.mktemp("models")))])


def _content(client: TestClient, job_id: str, variant: str, index: int = 0):
    return client.get(f"/v1/videos/{job_id}/content", params={"variant": variant, "index": index})


def _gif_frames(data: bytes) -> np.ndarray:
    from PIL import Image, ImageSequence

    with Image.open(io.BytesIO(data)) as image:
        return np.stack([np.asarray(frame.convert("RGB")) for frame in ImageSequence.Iterator(image)])


def _files(store: Path, job_id: str) -> list[str]:
    return sorted(path.name for path in (store / "videos" / job_id).iterdir())


def test_an_mp4_job_serves_gif_and_png_made_on_request_from_its_source_frames(
    cascades: dict, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    with TestClient(api_app(cascades, store)) as client:
        job = client.post("/v1/videos", json={"prompt": PROMPT, "seed": 9, "num_videos": 2, **FAST}).json()
        assert wait_for(client, job["id"])["status"] == "completed"
        names = [f"video_{k}{end}" for k in (0, 1) for end in (".mp4", "_frames.zip")]
        written = ["preview_frames.zip", *names]
        assert _files(store, job["id"]) == written  # no gif until one is asked for

        png = _content(client, job["id"], "png", 1)
        assert png.status_code == 200 and png.headers["content-type"] == "application/zip"
        gif = _content(client, job["id"], "gif", 1)
        assert gif.status_code == 200 and gif.headers["content-type"] == "image/gif"
        assert gif.content[:6] == b"GIF89a"
        mp4 = _content(client, job["id"], "mp4", 1)
        assert _files(store, job["id"]) == sorted([*written, "video_1.gif"])

    # the zip holds the sampled frames exactly (batching aside: one video differs by float rounding)
    tiny = cascades["tiny"]
    steps = dict.fromkeys(tiny.config.stage_names, FAST["steps"])
    alone = tiny.generate(
        PROMPT,
        generator=[torch.Generator().manual_seed(9 + 1)],
        overrides=requests.overrides({"steps": steps, "guidance": {}, "sampler": {}}),
        progress=False,
    )
    source = to_uint8_frames(alone.video[0]).astype(int)
    frames = png_frames(png.content).astype(int)
    assert frames.shape == SHAPE and np.abs(frames - source).max() <= 1
    # the gif and the mp4 are those of the source frames: the gif's pixels are theirs up to its
    # 256-colour palette, and both decode exactly as the files encoded from the frames directly
    gif_frames = _gif_frames(gif.content)
    assert gif_frames.shape == SHAPE and np.abs(gif_frames.astype(int) - frames).mean() < 4.0
    direct_gif = write_video(frames.astype(np.uint8), tmp_path / "direct.gif", 8.0)
    assert np.array_equal(gif_frames, _gif_frames(direct_gif.read_bytes()))
    direct_mp4 = write_video(frames.astype(np.uint8), tmp_path / "direct.mp4", alone.fps)
    assert np.array_equal(mp4_frames(mp4.content), mp4_frames(direct_mp4.read_bytes()))


def test_a_variant_is_encoded_once_and_then_served_from_the_store(cascades: dict, tmp_path: Path) -> None:
    with TestClient(api_app(cascades, tmp_path)) as client:
        job = wait_for(client, client.post("/v1/videos", json={"prompt": PROMPT, **FAST}).json()["id"])
        first = _content(client, job["id"], "gif")
        cached = tmp_path / "videos" / job["id"] / "video_0.gif"
        stat = cached.stat()
        second = _content(client, job["id"], "gif")
        assert second.content == first.content == cached.read_bytes()
        assert (cached.stat().st_ino, cached.stat().st_mtime_ns) == (stat.st_ino, stat.st_mtime_ns)


def test_concurrent_first_requests_encode_a_variant_once(
    cascades: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = JobStore(tmp_path)
    job_id = new_job_id()
    frames = np.random.default_rng(0).integers(0, 256, SHAPE, dtype=np.uint8)
    variants.write_frames_zip(frames, store.video_path(job_id, 0, "png"), 8.0)
    encoded: list[Path] = []
    write_video = variants.write_video

    def counting(*args: object, **kwargs: object) -> Path:
        encoded.append(args[1])  # type: ignore[arg-type]
        return write_video(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(variants, "write_video", counting)
    start, paths = threading.Barrier(8), []

    def fetch() -> None:
        start.wait()
        paths.append(variants.video_file(store, job_id, 0, "gif"))

    threads = [threading.Thread(target=fetch) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert encoded == [store.video_path(job_id, 0, "gif")] and len(set(paths)) == 1 and len(paths) == 8
    assert _gif_frames(paths[0].read_bytes()).shape == SHAPE
    assert sorted(p.name for p in store.job_dir(job_id).iterdir()) == ["video_0.gif", "video_0_frames.zip"]


def test_unknown_variant_before_completion_and_after_delete(cascades: dict, tmp_path: Path) -> None:
    waiting = TestClient(api_app(cascades, tmp_path / "idle"))  # no lifespan: the worker never starts
    queued = waiting.post("/v1/videos", json={"prompt": PROMPT}).json()
    early = _content(waiting, queued["id"], "gif")
    assert early.status_code == 409 and "queued" in early.json()["error"]["message"]
    assert variants.preview_file(waiting.app.state.batcher.store, queued["id"]) is None

    store = tmp_path / "store"
    with TestClient(api_app(cascades, store)) as client:
        job = wait_for(client, client.post("/v1/videos", json={"prompt": PROMPT, **FAST}).json()["id"])
        unknown = _content(client, job["id"], "webp")
        assert unknown.status_code == 422 and "variant" in unknown.json()["error"]["message"]
        assert _content(client, job["id"], "gif").status_code == 200
        assert client.delete(f"/v1/videos/{job['id']}").status_code == 200
        for variant in ("gif", "png", "mp4"):
            assert _content(client, job["id"], variant).status_code == 404
    assert not (store / "videos" / job["id"]).exists()


def test_variants_are_served_after_a_restart(cascades: dict, tmp_path: Path) -> None:
    with TestClient(api_app(cascades, tmp_path)) as client:
        job = client.post("/v1/videos", json={"prompt": PROMPT, "seed": 3, "format": "gif", **FAST}).json()
        wait_for(client, job["id"])
        default = client.get(f"/v1/videos/{job['id']}/content")
        assert default.headers["content-type"] == "image/gif"
    assert _files(tmp_path, job["id"]) == ["preview_frames.zip", "video_0.gif", "video_0_frames.zip"]
    with TestClient(api_app(cascades, tmp_path)) as client:  # the server restarted on the same store
        assert client.get(f"/v1/videos/{job['id']}/content").content == default.content
        mp4 = _content(client, job["id"], "mp4")
        assert mp4.status_code == 200 and mp4_frames(mp4.content).shape == SHAPE
    frames, fps = variants.read_frames_zip(tmp_path / "videos" / job["id"] / "video_0_frames.zip")
    direct = write_video(frames, tmp_path / "direct.mp4", fps)
    assert np.array_equal(mp4_frames(mp4.content), mp4_frames(direct.read_bytes()))
    assert "video_0.mp4" in _files(tmp_path, job["id"])


def test_a_png_job_writes_only_its_frames_and_the_preview_is_encoded_when_shown(
    cascades: dict, tmp_path: Path
) -> None:
    with TestClient(api_app(cascades, tmp_path)) as client:
        job = client.post("/v1/videos", json={"prompt": PROMPT, "format": "png", **FAST}).json()
        store = client.app.state.batcher.store
        wait_for(client, job["id"])
        assert _files(tmp_path, job["id"]) == ["preview_frames.zip", "video_0_frames.zip"]
        preview = variants.preview_file(store, job["id"])
    assert preview == tmp_path / "videos" / job["id"] / "preview.mp4"
    clip = mp4_frames(preview.read_bytes())
    assert clip.shape == (4, 64, 64, 3)  # the tiny base stage's 4x8x8 clip, upscaled 8x to 64 pixels


def test_frames_zip_round_trip_keeps_frames_and_rate(tmp_path: Path) -> None:
    frames = np.random.default_rng(1).integers(0, 256, (5, 6, 10, 3), dtype=np.uint8)
    path = tmp_path / "clip_frames.zip"
    variants.write_frames_zip(frames, path, 12.5)
    read, fps = variants.read_frames_zip(path)
    assert fps == 12.5 and read.dtype == np.uint8 and np.array_equal(read, frames)
    assert np.array_equal(png_frames(path.read_bytes()), frames)


def test_the_pages_downloads_and_gallery_encode_the_missing_variants(cascades: dict, tmp_path: Path) -> None:
    from imagen_video.serve.page import _finished

    with TestClient(api_app(cascades, tmp_path)) as client:
        job_id = client.post("/v1/videos", json={"prompt": PROMPT, "num_videos": 2, **FAST}).json()["id"]
        wait_for(client, job_id)
        batcher = client.app.state.batcher
        preview, video, downloads, note, gallery = _finished(batcher, batcher.store.get(job_id))
    folder = tmp_path / "videos" / job_id
    assert preview == str(folder / "preview.mp4") and video == str(folder / "video_0.mp4")
    names = [f"video_{k}{end}" for k in (0, 1) for end in (".mp4", ".gif", "_frames.zip")]
    assert downloads == [str(folder / name) for name in names] and all(Path(p).is_file() for p in downloads)
    assert gallery == [(str(folder / "video_0.gif"), PROMPT)] and job_id in note
