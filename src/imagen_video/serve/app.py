"""Assemble ``imagen-video serve``: load the cascades once, then serve the job API and the page.

:func:`load_cascades` loads every requested cascade (one shared text encoder when they use the same
one); :func:`build_app` puts the job API (:mod:`imagen_video.serve.api`) and, unless ``page`` is
False, the Gradio page (:mod:`imagen_video.serve.page`) on one FastAPI app whose lifespan starts and
stops the batcher's worker. With an API key every request needs ``Authorization: Bearer <key>``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path

from fastapi import FastAPI

from imagen_video.cascade.runner import Cascade
from imagen_video.serve.api import bearer_guard, create_api
from imagen_video.serve.batcher import Batcher
from imagen_video.serve.encoder import RecordingEncoder
from imagen_video.serve.store import JobStore


def default_store_dir() -> Path:
    """The per-user data directory for jobs: ``$XDG_DATA_HOME/imagen-video/serve`` (default
    ``~/.local/share/imagen-video/serve``)."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "imagen-video" / "serve"


def model_name(spec: str) -> str:
    """The name a ``--model`` value is served under: a shipped name as is, else the folder's name."""
    from imagen_video.cascade.registry import SHIPPED_CASCADES

    return spec if spec in SHIPPED_CASCADES and not Path(spec).exists() else Path(spec).resolve().name


def load_cascades(
    specs: Sequence[str], *, device: str = "cpu", lora: Sequence[str] = ()
) -> dict[str, Cascade]:
    """Load each cascade (a shipped name or a directory) once; cascades that name the same text
    encoder share one loaded encoder (a :class:`RecordingEncoder`). Keys are :func:`model_name`;
    duplicates raise ValueError. ``lora``: ``--lora DIR[:SCALE]`` adapters merged into the first
    cascade (docs/finetuning.md; an adapter made for other base weights raises ValueError)."""
    from imagen_video.cascade.directory import read_cascade_json
    from imagen_video.cascade.registry import resolve_model_dir
    from imagen_video.finetune.lora_option import load_with_adapters
    from imagen_video.text import load_text_encoder

    cascades: dict[str, Cascade] = {}
    encoders: dict[tuple[str, int], RecordingEncoder] = {}
    for spec in specs:
        name = model_name(spec)
        if name in cascades:
            raise ValueError(f"two models are both named {name!r}; serve each cascade once")
        directory = resolve_model_dir(spec)
        config = read_cascade_json(directory).config
        key = (config.text_encoder, config.text_max_length)
        if key not in encoders:  # loaded now, not at the first request
            loaded = load_text_encoder(config.text_encoder, max_length=config.text_max_length, device=device)
            encoders[key] = RecordingEncoder(loaded)
        cascade = load_with_adapters(
            lambda d=directory, e=encoders[key]: Cascade.from_pretrained(d, device=device, text_encoder=e),
            directory,
            lora if not cascades else (),
        )
        cascade.text_encoder  # noqa: B018 (checks the encoder's width against the networks now)
        cascades[name] = cascade
    return cascades


def build_app(
    cascades: Mapping[str, Cascade],
    store: JobStore,
    *,
    max_batch: int = 8,
    batch_wait_ms: float = 50.0,
    queue_size: int = 64,
    api_key: str | None = None,
    page: bool = True,
) -> FastAPI:
    """One app: the job API at ``/v1`` (docs at ``/docs``), ``/health`` and the page at ``/``."""
    batcher = Batcher(
        store, cascades, max_batch=max_batch, batch_wait_ms=batch_wait_ms, queue_size=queue_size
    )
    app = create_api(batcher)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        batcher.start()
        try:
            yield
        finally:
            batcher.stop()

    app.router.lifespan_context = lifespan
    app.state.batcher = batcher
    if api_key is not None:
        app.middleware("http")(bearer_guard(api_key))
    if page:
        from imagen_video.serve.page import mount_page

        app = mount_page(app, batcher)
    return app
