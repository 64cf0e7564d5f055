"""The web page of ``imagen-video serve`` (Gradio), mounted on the job API's app at ``/``.

The page submits jobs to the same batcher and store as the API (so its jobs batch with API jobs and
appear in ``GET /v1/videos``): prompt, seed, number of videos, advanced settings (the cascade, the
sampler, steps and guidance weight per stage; paper secs. 2.1, 2.6), a progress bar naming the stage,
the base stage's low-resolution clip as soon as it exists, the final video, downloads (mp4, gif, a
zip of PNG frames) and a gallery of past jobs. It works offline: analytics off, system fonts only.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI

from imagen_video.serve import requests
from imagen_video.serve.batcher import Batcher, QueueFull
from imagen_video.serve.store import VARIANTS, Job, new_job_id
from imagen_video.serve.variants import preview_file, video_file

GALLERY_SIZE = 24
POLL_SECONDS = 0.1
SAMPLER_CHOICES = ["default", "ancestral", "ddim", "stochastic"]


def _stage_table(batcher: Batcher, model: str) -> list[list[Any]]:
    """Rows ``[stage, steps, guidance w]`` of a cascade's default sampling settings."""
    return [[s.name, s.sampler.steps, s.guidance.w] for s in batcher.cascades[model].config.stages]


def _changed_settings(batcher: Batcher, model: str, table: Any) -> tuple[dict[str, int], dict[str, float]]:
    """Steps and guidance per stage where the table differs from the cascade's defaults (so a page job
    with default settings batches with API jobs that give none)."""
    rows = table.values.tolist() if hasattr(table, "values") else list(table)
    defaults = {row[0]: row[1:] for row in _stage_table(batcher, model)}
    steps, guidance = {}, {}
    for stage, step_count, weight in rows:
        if stage not in defaults:
            raise ValueError(f"unknown stage {stage!r} in the settings table")
        if int(step_count) != defaults[stage][0]:
            steps[stage] = int(step_count)
        if float(weight) != defaults[stage][1]:
            guidance[stage] = float(weight)
    return steps, guidance


def _gallery(batcher: Batcher) -> list[tuple[str, str]]:
    """(gif path, prompt) of the newest completed jobs (a gif is encoded the first time it is shown)."""
    store = batcher.store
    items = []
    for job in store.iter_completed(GALLERY_SIZE):
        try:
            items.append((str(video_file(store, job.id, 0, "gif")), job.request["prompt"]))
        except FileNotFoundError:  # deleted meanwhile
            continue
    return items


def _submit(
    batcher: Batcher, prompt: str, seed: float | None, num_videos: float, model: str, sampler: str, table: Any
) -> Job:
    """Queue the page's request like ``POST /v1/videos`` (ValueError or QueueFull when refused)."""
    steps, guidance = _changed_settings(batcher, model, table)
    body = requests.VideoRequest(
        prompt=prompt,
        seed=None if seed is None or seed < 0 else int(seed),
        num_videos=int(num_videos),
        steps=steps or None,
        guidance=guidance or None,
        sampler=None if sampler == "default" else sampler,
        model=model,
    )
    configs = {name: cascade.config for name, cascade in batcher.cascades.items()}
    return batcher.submit(new_job_id(), requests.normalize(body, configs))


def _finished(batcher: Batcher, job: Job) -> tuple[Any, ...]:
    """The page's outputs for a completed job: preview, video, downloads, a status line, the gallery
    (FileNotFoundError when the job was deleted meanwhile)."""
    store = batcher.store
    count = job.request["num_videos"]
    files = [str(video_file(store, job.id, k, v)) for k in range(count) for v in VARIANTS]
    note = f"job `{job.id}`, seed {job.request['seed']}"
    note += f"; warning: {job.warning}" if job.warning else ""
    preview = preview_file(store, job.id)
    return (
        str(preview) if preview is not None else None,
        files[0],  # video 0 as mp4
        files,
        note,
        _gallery(batcher),
    )


def build_page(batcher: Batcher) -> Any:
    """The Gradio Blocks of the page over ``batcher`` (its cascades, store and queue)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr

    store = batcher.store
    models = list(batcher.cascades)

    def generate(
        prompt: str,
        seed: float,
        num_videos: float,
        model: str,
        sampler: str,
        table: Any,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 (Gradio's way to ask for a progress bar)
    ) -> Iterator[tuple[Any, ...]]:
        try:
            job = _submit(batcher, prompt, seed, num_videos, model, sampler, table)
        except (ValueError, QueueFull) as err:
            raise gr.Error(" ".join(str(err).split())) from None
        preview_shown = False
        while True:
            current = store.get(job.id)
            if current is None:
                raise gr.Error(f"job {job.id} was deleted")
            state = batcher.progress(current)
            progress(state.percent / 100, desc=f"stage {state.stage}" if state.stage else current.status)
            preview = None if preview_shown else preview_file(store, job.id)
            if preview is not None:
                preview_shown = True
                yield str(preview), gr.skip(), gr.skip(), f"job `{job.id}`: base stage done", gr.skip()
            if current.status == "failed":
                raise gr.Error(f"job {job.id} failed: {current.error}")
            if current.status == "completed":
                break
            time.sleep(POLL_SECONDS)
        try:
            yield _finished(batcher, current)
        except FileNotFoundError:
            raise gr.Error(f"job {job.id} was deleted") from None

    # Gradio copies served files into its cache; drop copies older than an hour, hourly
    with gr.Blocks(title="imagen-video", analytics_enabled=False, delete_cache=(3600, 3600)) as page:
        gr.Markdown("## imagen-video: text to video with a cascade of video diffusion models")
        with gr.Row():
            with gr.Column():
                prompt = gr.Textbox(label="Prompt", lines=2, elem_id="prompt")
                with gr.Row():
                    seed = gr.Number(label="Seed (-1: random)", value=-1, precision=0)
                    num_videos = gr.Slider(1, requests.MAX_VIDEOS, value=1, step=1, label="Videos")
                with gr.Accordion("Advanced settings", open=False):
                    model = gr.Dropdown(models, value=models[0], label="Model")
                    sampler = gr.Dropdown(SAMPLER_CHOICES, value="default", label="Sampler (every stage)")
                    table = gr.Dataframe(
                        value=_stage_table(batcher, models[0]),
                        headers=["stage", "steps", "guidance"],
                        datatype=["str", "number", "number"],
                        label="Steps and guidance weight per stage",
                    )
                button = gr.Button("Generate", variant="primary", elem_id="generate")
                status = gr.Markdown(label="status", elem_id="status")
            with gr.Column():
                preview = gr.Video(label="Base stage (low resolution)", elem_id="preview", autoplay=True)
                video = gr.Video(label="Video", elem_id="video", autoplay=True, loop=True)
                downloads = gr.File(label="Downloads", file_count="multiple")
        gallery = gr.Gallery(label="Past jobs", columns=6, height=260, object_fit="contain")
        model.change(lambda name: _stage_table(batcher, name), model, table, api_visibility="private")
        button.click(
            generate,
            [prompt, seed, num_videos, model, sampler, table],
            [preview, video, downloads, status, gallery],
            api_name="generate",
            concurrency_limit=batcher.queue_size,
        )
        page.load(lambda: _gallery(batcher), None, gallery, api_visibility="private")
    return page


def mount_page(app: FastAPI, batcher: Batcher) -> FastAPI:
    """Mount the page at ``/`` of ``app`` (after its API routes, which keep precedence)."""
    import gradio as gr

    page = build_page(batcher)
    return gr.mount_gradio_app(
        app,
        page,
        path="/",
        allowed_paths=[str(batcher.store.root / "videos")],
        theme=gr.themes.Base(  # system fonts: the page loads nothing from outside the server
            font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"]
        ),
        footer_links=["api"],
        ssr_mode=False,
        mcp_server=False,
        pwa=False,
        enable_monitoring=False,
    )
