"""The HTTP job API of ``imagen-video serve`` (FastAPI), in the shape video-generation clients use.

``POST /v1/videos`` queues a job and answers 202 with the job object; ``GET /v1/videos/{id}`` polls
it; ``GET /v1/videos/{id}/content`` downloads the mp4 (``?variant=gif|png``, ``?index=k`` for the
k-th video of a job; 409 until completed; a variant other than the job's format is encoded on its
first request, :mod:`imagen_video.serve.variants`); ``GET /v1/videos`` lists jobs newest first (cursor
pagination with ``after``); ``DELETE /v1/videos/{id}`` removes a job and its files; ``GET /health``.
Bad input is 422 with one message, a full queue 429 with ``Retry-After``, an unknown id 404; every
error body is ``{"error": {"message": ..., "type": ...}}``. See docs/serve.md.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response

from imagen_video.serve import requests
from imagen_video.serve.batcher import Batcher, QueueFull
from imagen_video.serve.store import Job, is_job_id, new_job_id
from imagen_video.serve.variants import video_file

_MEDIA_TYPES = {"mp4": "video/mp4", "gif": "image/gif", "png": "application/zip"}


class APIError(Exception):
    """An HTTP error answered as ``{"error": {"message", "type"}}`` with ``status`` and ``headers``."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        """Store the status, the one-line message and any extra headers."""
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


_ERROR_TYPES = {401: "authentication_error", 404: "not_found", 409: "conflict", 422: "invalid_request_error"}


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    kind = _ERROR_TYPES.get(status, "rate_limit_error" if status == 429 else "server_error")
    return JSONResponse({"error": {"message": message, "type": kind}}, status_code=status, headers=headers)


def _validation_message(err: RequestValidationError) -> str:
    """One line for a request FastAPI could not parse: malformed JSON or the first bad field."""
    first = err.errors()[0]
    if first.get("type") == "json_invalid":
        return f"malformed JSON body: {first.get('ctx', {}).get('error', 'cannot be parsed')}"
    location = ".".join(str(part) for part in first.get("loc", ())[1:] if not isinstance(part, int))
    location = location.split(".")[0] if location else "body"
    return f"{location}: {first.get('msg', 'invalid value')}"


def job_object(job: Job, batcher: Batcher) -> dict[str, Any]:
    """The job as the API shows it (``object: "video"``, progress 0-100, Unix-second timestamps)."""
    progress = batcher.progress(job)
    request = job.request
    return {
        "id": job.id,
        "object": "video",
        "status": job.status,
        "progress": progress.percent,
        "stage": progress.stage,
        "created_at": int(job.created_at),
        "completed_at": int(job.completed_at) if job.completed_at is not None else None,
        "error": job.error,
        "warning": job.warning,
        "model": request["model"],
        "prompt": request["prompt"],
        "seed": request["seed"],
        "num_videos": request["num_videos"],
        "format": request["format"],
        "batch_size": job.batch_size,
    }


def bearer_guard(
    api_key: str,
) -> Callable[[Request, Callable[[Request], Awaitable[Response]]], Awaitable[Response]]:
    """HTTP middleware refusing (401) any request without ``Authorization: Bearer <api_key>``; the
    comparison takes constant time (:func:`hmac.compare_digest`)."""
    expected = f"Bearer {api_key}".encode()

    async def guard(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        given = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            return _error(
                401,
                "missing or wrong API key: send 'Authorization: Bearer <key>'",
                {"WWW-Authenticate": "Bearer"},
            )
        return await call_next(request)

    return guard


def create_api(batcher: Batcher) -> FastAPI:
    """The FastAPI app serving the job API over ``batcher`` (its store and loaded cascades)."""
    from fastapi_offline import FastAPIOffline  # the docs pages' scripts are served locally, not from a CDN

    app = FastAPIOffline(title="imagen-video serve", description="Text-to-video jobs (Imagen Video cascade)")
    store = batcher.store
    configs = {name: cascade.config for name, cascade in batcher.cascades.items()}

    @app.exception_handler(APIError)
    async def _api_error(_: Request, err: APIError) -> JSONResponse:
        return _error(err.status, err.message, err.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, err: RequestValidationError) -> JSONResponse:
        return _error(422, _validation_message(err))

    def find(video_id: str) -> Job:
        job = store.get(video_id) if is_job_id(video_id) else None
        if job is None:
            raise APIError(404, f"no video job {video_id!r}")
        return job

    @app.post("/v1/videos", status_code=202, summary="Queue a video generation job")
    def create_video(body: requests.VideoRequest) -> dict[str, Any]:
        try:
            request = requests.normalize(body, configs)
            job = batcher.submit(new_job_id(), request)
        except requests.RequestError as err:
            raise APIError(422, str(err)) from None
        except QueueFull as err:
            raise APIError(429, str(err), {"Retry-After": str(err.retry_after)}) from None
        return job_object(job, batcher)

    @app.get("/v1/videos/{video_id}", summary="A job's status and progress")
    async def get_video(video_id: str) -> dict[str, Any]:
        # polled often: on the event loop (one indexed SQLite read) instead of a worker-thread hop
        return job_object(find(video_id), batcher)

    @app.get("/v1/videos/{video_id}/content", summary="Download a completed job's video")
    def get_content(
        video_id: str,
        variant: Literal["mp4", "gif", "png"] | None = Query(None, description="default: the job's format"),
        index: int = Query(0, ge=0, description="which of the job's videos"),
    ) -> FileResponse:
        job = find(video_id)
        if job.status != "completed":
            raise APIError(409, f"video {video_id} is {job.status}; its content exists once it is completed")
        if index >= job.request["num_videos"]:
            raise APIError(
                404, f"video {video_id} has {job.request['num_videos']} video(s); no index {index}"
            )
        kind = variant or job.request["format"]
        try:
            path = video_file(store, job.id, index, kind)  # encoded on the first request for it
        except FileNotFoundError:  # deleted meanwhile
            raise APIError(404, f"the {kind} file of video {video_id} is missing from the store") from None
        return FileResponse(path, media_type=_MEDIA_TYPES[kind], filename=f"{job.id}_{index}{path.suffix}")

    @app.get("/v1/videos", summary="Jobs, newest first")
    def list_videos(
        limit: int = Query(20, ge=1, le=100), after: str | None = Query(None, description="a job id")
    ) -> dict[str, Any]:
        if after is not None:
            find(after)
        jobs = store.newest(limit=limit + 1, after=after)
        data = [job_object(job, batcher) for job in jobs[:limit]]
        return {
            "object": "list",
            "data": data,
            "has_more": len(jobs) > limit,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
        }

    @app.delete("/v1/videos/{video_id}", summary="Delete a job and its files")
    def delete_video(video_id: str) -> dict[str, Any]:
        job = find(video_id)
        store.delete(job.id)
        return {"id": job.id, "object": "video.deleted", "deleted": True}

    @app.get("/health", summary="Liveness and queue depth")
    def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "models": list(configs),
            "queued": store.count("queued"),
            "in_progress": store.count("in_progress"),
        }

    return app
