"""The job API of `imagen-video serve` on a tiny random cascade through FastAPI's test client:
every endpoint, every refused input, batching equivalence, API keys and restart recovery."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402

from imagen_video.serve.app import load_cascades  # noqa: E402
from imagen_video.serve.batcher import StoreBusy  # noqa: E402
from imagen_video.serve.store import JobStore  # noqa: E402
from serve_helpers import api_app, mp4_frames, png_frames, tiny_cascade_dir, wait_for  # noqa: E402
from test_cascade_helpers import single_thread  # noqa: E402

PROMPT = "a red circle moving right"
FAST = {"steps": 2}


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    yield from single_thread()


@pytest.fixture(scope="module")
def cascades(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return load_cascades([str(tiny_cascade_dir(tmp_path_factory.mktemp("models")))])


def test_create_poll_download_list_delete(cascades: dict, tmp_path: Path) -> None:
    with TestClient(api_app(cascades, tmp_path / "store")) as client:
        created = client.post("/v1/videos", json={"prompt": PROMPT, "seed": 7, "num_videos": 2, **FAST})
        assert created.status_code == 202
        job = created.json()
        assert job["object"] == "video" and job["status"] in ("queued", "in_progress")
        assert job["id"].startswith("video_") and job["seed"] == 7 and job["model"] == "tiny"
        done = wait_for(client, job["id"])
        assert done["status"] == "completed" and done["progress"] == 100
        assert done["completed_at"] >= done["created_at"] and done["error"] is None

        mp4 = client.get(f"/v1/videos/{job['id']}/content")
        assert mp4.status_code == 200 and mp4.headers["content-type"] == "video/mp4"
        assert mp4_frames(mp4.content).shape == (8, 16, 16, 3)
        gif = client.get(f"/v1/videos/{job['id']}/content", params={"variant": "gif", "index": 1})
        assert gif.headers["content-type"] == "image/gif" and gif.content[:6] == b"GIF89a"
        frames = png_frames(client.get(f"/v1/videos/{job['id']}/content", params={"variant": "png"}).content)
        assert frames.shape == (8, 16, 16, 3)
        assert client.get(f"/v1/videos/{job['id']}/content", params={"index": 2}).status_code == 404

        second = client.post("/v1/videos", json={"prompt": "a blue square", **FAST}).json()
        listing = client.get("/v1/videos", params={"limit": 1}).json()
        assert [v["id"] for v in listing["data"]] == [second["id"]] and listing["has_more"]
        rest = client.get("/v1/videos", params={"after": listing["last_id"]}).json()
        assert [v["id"] for v in rest["data"]] == [job["id"]] and not rest["has_more"]

        deleted = client.delete(f"/v1/videos/{job['id']}")
        assert deleted.json() == {"id": job["id"], "object": "video.deleted", "deleted": True}
        assert client.get(f"/v1/videos/{job['id']}").status_code == 404
        assert not (tmp_path / "store" / "videos" / job["id"]).exists()
        health = client.get("/health").json()
        assert health["status"] == "ok" and health["models"] == ["tiny"]
        docs = client.get("/docs")
        assert docs.status_code == 200 and "swagger" in docs.text.lower() and "https://" not in docs.text
        assert "/v1/videos" in client.get("/openapi.json").json()["paths"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"prompt": "   "}, "prompt is empty"),
        ({"prompt": PROMPT, "num_videos": 0}, "num_videos"),
        ({"prompt": PROMPT, "num_videos": 17}, "num_videos"),
        ({"prompt": PROMPT, "steps": 0}, "outside 1..1024"),
        ({"prompt": PROMPT, "steps": 1025}, "outside 1..1024"),
        ({"prompt": PROMPT, "steps": {"nope": 3}}, "steps: unknown stage 'nope'; stages: base, tsr, ssr"),
        ({"prompt": PROMPT, "guidance": {"ssr9": 1.0}}, "guidance: unknown stage 'ssr9'"),
        ({"prompt": PROMPT, "sampler": "euler"}, "sampler"),
        ({"prompt": PROMPT, "model": "other"}, "model 'other' is not loaded; loaded: tiny"),
        ({"prompt": PROMPT, "colour": "red"}, "colour"),
        ({"seed": 1}, "prompt"),
    ],
)
def test_bad_requests_are_422_with_one_message(
    cascades: dict, tmp_path: Path, body: dict, message: str
) -> None:
    client = TestClient(api_app(cascades, tmp_path))
    response = client.post("/v1/videos", json=body)
    assert response.status_code == 422
    error = response.json()["error"]
    assert message in error["message"] and "\n" not in error["message"]
    assert client.get("/health").json()["queued"] == 0


def test_malformed_json_unknown_ids_and_content_before_completion(cascades: dict, tmp_path: Path) -> None:
    client = TestClient(api_app(cascades, tmp_path))  # no lifespan: the worker never starts
    bad = client.post("/v1/videos", content=b'{"prompt": ', headers={"content-type": "application/json"})
    assert bad.status_code == 422 and bad.json()["error"]["message"].startswith("malformed JSON body")
    for unknown in ("video_" + "0" * 32, "..%2F..%2Fetc", "jobs.sqlite3"):
        assert client.get(f"/v1/videos/{unknown}").status_code == 404
        assert client.get(f"/v1/videos/{unknown}/content").status_code == 404
        assert client.delete(f"/v1/videos/{unknown}").status_code == 404
    job = client.post("/v1/videos", json={"prompt": PROMPT}).json()
    early = client.get(f"/v1/videos/{job['id']}/content")
    assert early.status_code == 409 and "queued" in early.json()["error"]["message"]


def test_full_queue_is_429_with_retry_after(cascades: dict, tmp_path: Path) -> None:
    client = TestClient(api_app(cascades, tmp_path, queue_size=2))
    for _ in range(2):
        assert client.post("/v1/videos", json={"prompt": PROMPT}).status_code == 202
    full = client.post("/v1/videos", json={"prompt": PROMPT})
    assert full.status_code == 429 and int(full.headers["retry-after"]) >= 1
    assert client.get("/health").json()["queued"] == 2


def test_batched_videos_equal_videos_sampled_alone(cascades: dict, tmp_path: Path) -> None:
    with TestClient(api_app(cascades, tmp_path, batch_wait_ms=1000, max_batch=8)) as client:
        alone = client.post("/v1/videos", json={"prompt": PROMPT, "seed": 11, "num_videos": 2, **FAST}).json()
        alone = wait_for(client, alone["id"])
        bodies = [
            {"prompt": "a blue square moving up", "seed": 3, **FAST},
            {"prompt": PROMPT, "seed": 11, "num_videos": 2, **FAST},
            {"prompt": "a green triangle", "seed": 4, **FAST},
        ]
        ids = [client.post("/v1/videos", json=body).json()["id"] for body in bodies]
        jobs = [wait_for(client, job_id) for job_id in ids]
    assert alone["batch_size"] == 2 and [job["batch_size"] for job in jobs] == [4, 4, 4]
    for index in (0, 1):
        params = {"variant": "png", "index": index}
        with TestClient(api_app(cascades, tmp_path)) as client:
            single = png_frames(client.get(f"/v1/videos/{alone['id']}/content", params=params).content)
            batched = png_frames(client.get(f"/v1/videos/{ids[1]}/content", params=params).content)
        # the same noise; the batched forwards differ from single ones only by float rounding
        assert np.abs(single.astype(int) - batched.astype(int)).max() <= 1
    assert not np.array_equal(
        png_frames_of(tmp_path, alone["id"], 0), png_frames_of(tmp_path, alone["id"], 1)
    )


def png_frames_of(store: Path, job_id: str, index: int) -> np.ndarray:
    return png_frames((store / "videos" / job_id / f"video_{index}_frames.zip").read_bytes())


def test_long_prompt_is_truncated_with_a_warning(
    cascades: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    long_prompt = " ".join(["a red circle moving right"] * 10)  # far over the tiny cascade's 16 tokens
    encoder = cascades["tiny"].text_encoder.encoder  # the encoder the served cascade's one wraps
    encoded: list[list[str]] = []
    encode = encoder.encode
    monkeypatch.setattr(
        encoder, "encode", lambda prompts, **kw: encoded.append(list(prompts)) or encode(prompts, **kw)
    )
    with TestClient(api_app(cascades, tmp_path, batch_wait_ms=1000)) as client:
        job = client.post("/v1/videos", json={"prompt": long_prompt, "steps": 1}).json()
        short = client.post("/v1/videos", json={"prompt": PROMPT, "steps": 1}).json()
        done, plain = wait_for(client, job["id"]), wait_for(client, short["id"])
    assert done["status"] == "completed" and "16 tokens and was truncated" in done["warning"]
    assert plain["warning"] is None and done["batch_size"] == 2
    assert encoded == [[long_prompt, PROMPT]]  # once for the batch: the warnings reuse its flags


def test_api_key_is_required_everywhere(cascades: dict, tmp_path: Path) -> None:
    client = TestClient(api_app(cascades, tmp_path, api_key="s3cret"))
    for path in ("/health", "/v1/videos", "/docs"):
        missing = client.get(path)
        assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
        assert client.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get(path, headers={"Authorization": "Bearer s3cret"}).status_code == 200


def test_a_job_interrupted_by_a_stop_completes_once_after_restart(cascades: dict, tmp_path: Path) -> None:
    with TestClient(api_app(cascades, tmp_path)) as client:
        job = client.post(
            "/v1/videos", json={"prompt": PROMPT, "seed": 5, "steps": {"base": 100, "tsr": 1, "ssr": 1}}
        ).json()
        assert wait_for(client, job["id"], until=("in_progress",))["status"] == "in_progress"
    # leaving the client stopped the server mid-batch; the job is still in progress in the store
    store = JobStore(tmp_path)
    assert store.get(job["id"]).status == "in_progress"
    assert not (tmp_path / "videos" / job["id"] / "video_0.mp4").exists()
    with TestClient(api_app(cascades, tmp_path)) as client:
        done = wait_for(client, job["id"])
        assert done["status"] == "completed" and done["seed"] == 5
        assert client.get(f"/v1/videos/{job['id']}/content").status_code == 200
    assert store.get(job["id"]).completions == 1
    assert zipfile.is_zipfile(
        io.BytesIO((tmp_path / "videos" / job["id"] / "video_0_frames.zip").read_bytes())
    )


def test_a_job_for_a_model_no_longer_loaded_fails_and_the_worker_goes_on(
    cascades: dict, tmp_path: Path
) -> None:
    stale = JobStore(tmp_path).add(
        "video_" + "a" * 32,
        {
            "prompt": PROMPT,
            "seed": 1,
            "num_videos": 1,
            "steps": {},
            "guidance": {},
            "sampler": {},
            "format": "mp4",
            "model": "gone",
        },
    )
    with TestClient(api_app(cascades, tmp_path)) as client:
        failed = wait_for(client, stale.id)
        fresh = wait_for(client, client.post("/v1/videos", json={"prompt": PROMPT, **FAST}).json()["id"])
        assert client.get(f"/v1/videos/{stale.id}/content").status_code == 409
    assert failed["status"] == "failed" and failed["error"] == "model 'gone' is not loaded; loaded: tiny"
    assert fresh["status"] == "completed"


def test_a_second_server_cannot_take_a_store_in_use(cascades: dict, tmp_path: Path) -> None:
    first, second = api_app(cascades, tmp_path), api_app(cascades, tmp_path)
    busy = pytest.raises(StoreBusy, match="another server is using the store")
    with TestClient(first), busy, TestClient(second):
        pass
    with TestClient(api_app(cascades, tmp_path)) as client:  # free again once the first one stopped
        assert client.get("/health").status_code == 200


def test_several_cascades_share_one_text_encoder_and_are_chosen_by_name(
    cascades: dict, tmp_path: Path
) -> None:
    first, second = tiny_cascade_dir(tmp_path / "a"), tiny_cascade_dir(tmp_path / "b")
    with pytest.raises(ValueError, match="two models are both named 'tiny'"):
        load_cascades([str(first), str(second)])
    renamed = second.rename(tmp_path / "other")
    loaded = load_cascades([str(first), str(renamed)])
    assert list(loaded) == ["tiny", "other"]
    assert loaded["tiny"].text_encoder is loaded["other"].text_encoder
    with TestClient(api_app(loaded, tmp_path / "store")) as client:
        job = client.post("/v1/videos", json={"prompt": PROMPT, "model": "other", **FAST}).json()
        assert wait_for(client, job["id"])["model"] == "other"
