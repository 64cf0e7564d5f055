"""In-domain world CLIP: shipped weights reach R-Precision >= 0.9, metric definitions, save/load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from imagen_video.world.clip import (
    WorldClip,
    WorldClipConfig,
    canonical_prompts,
    clip_score,
    default_assets_dir,
    distractor_prompts,
    load_world_clip,
    r_precision,
    resize_video,
    save_world_clip,
    video_features,
)
from imagen_video.world.clip_train import augment
from imagen_video.world.render import render_batch
from imagen_video.world.spec import ALL_COMBOS, DEFAULT_HOLDOUT


@pytest.fixture(scope="module")
def shipped() -> WorldClip:
    return load_world_clip()


@pytest.fixture(scope="module")
def rendered() -> tuple[np.ndarray, list[str]]:
    videos = render_batch(ALL_COMBOS, frames=16, height=24, width=40, seed=77)  # one clip per combination
    return videos, [c.caption for c in ALL_COMBOS]


def _tiny(cached: tuple[str, ...] = ()) -> WorldClip:
    torch.manual_seed(0)
    config = WorldClipConfig(
        frames=4,
        height=8,
        width=16,
        channels=(4, 8),
        embed_dim=8,
        text_dim=6,
        text_hidden=8,
        cached_prompts=cached,
    )
    model = WorldClip(config).eval()
    model.cached_text.copy_(torch.randn(len(cached), 6))
    return model


def test_shipped_assets_config_and_text_identity(shipped: WorldClip) -> None:
    directory = default_assets_dir()
    assert (directory / "model.safetensors").stat().st_size < 4_000_000
    config = shipped.config
    assert (config.frames, config.height, config.width) == (16, 24, 40)
    assert config.text_encoder == "embedded" and config.text_identity.startswith("embedded:")
    assert set(canonical_prompts()) <= set(config.cached_prompts)


def test_shipped_r_precision_on_rendered_clips(
    shipped: WorldClip, rendered: tuple[np.ndarray, list[str]]
) -> None:
    videos, prompts = rendered
    assert r_precision(videos, prompts, model=shipped, seed=0) >= 0.9
    held = [i for i, c in enumerate(ALL_COMBOS) if c in DEFAULT_HOLDOUT]
    assert r_precision(videos[held], [prompts[i] for i in held], model=shipped) >= 0.9


def test_clip_score_range_and_alignment(shipped: WorldClip, rendered: tuple[np.ndarray, list[str]]) -> None:
    videos, prompts = rendered[0][::3], rendered[1][::3]  # 36 clips, every color / shape / motion
    matched = clip_score(videos, prompts, model=shipped)
    shuffled = clip_score(videos, prompts[1:] + prompts[:1], model=shipped)
    assert 0.0 <= shuffled < matched <= 100.0
    assert clip_score(np.zeros_like(videos[:4]), prompts[:4], model=shipped) < matched


def test_other_sizes_are_resized(shipped: WorldClip) -> None:
    combos = ALL_COMBOS[::4]
    prompts = [c.caption for c in combos]
    big = render_batch(combos, frames=8, height=48, width=80, seed=3)
    as_float = torch.from_numpy(big).permute(0, 4, 1, 2, 3).float() / 255.0  # (B, C, T, H, W) in [0, 1]
    assert r_precision(as_float, prompts, model=shipped) >= 0.8
    assert video_features(as_float, model=shipped).shape == (len(combos), shipped.config.embed_dim)


def test_distractors_are_seeded_and_exclude_the_prompt() -> None:
    prompts = [c.caption for c in ALL_COMBOS[:5]]
    first = distractor_prompts(prompts, 99, seed=1)
    assert first == distractor_prompts(prompts, 99, seed=1) and first != distractor_prompts(
        prompts, 99, seed=2
    )
    canonical = {c.caption for c in ALL_COMBOS}
    for prompt, others in zip(prompts, first, strict=True):
        assert len(set(others)) == 99 and prompt not in others and set(others) <= canonical
    with pytest.raises(ValueError, match="distractors must be <= 107"):
        distractor_prompts(prompts, 108)


def test_r_precision_counts_top1_per_frame() -> None:
    prompts = [c.caption for c in ALL_COMBOS]
    model = _tiny(tuple(prompts))
    videos = torch.rand(3, 3, 4, 8, 16)
    with torch.no_grad():
        frames = model.frame_embeddings(videos)  # (3, 4, D)
        text = model.embed_prompts(prompts)  # (108, D)
    # Make the prompt of video i the per-frame argmax over all 108 captions: R-precision must be 1.
    best = [prompts[int(i)] for i in (frames.mean(1) @ text.T).argmax(dim=1)]
    per_frame = (frames @ text.T).argmax(dim=-1)  # (3, 4)
    expected = float(np.mean([[prompts[int(j)] == best[b] for j in row] for b, row in enumerate(per_frame)]))
    assert r_precision(videos, best, distractors=107, model=model) == pytest.approx(expected)
    score = clip_score(videos, best, model=model)
    with torch.no_grad():
        cos = torch.einsum("btd,bd->bt", frames, model.embed_prompts(best))
    assert score == pytest.approx(float((100 * cos.clamp(min=0)).mean()), rel=1e-5)
    with pytest.raises(ValueError, match="one prompt per video"):
        clip_score(videos, best[:2], model=model)


def test_save_load_round_trip(tmp_path: Path) -> None:
    model = _tiny(("a red circle",))
    videos = torch.rand(2, 3, 4, 8, 16)
    save_world_clip(model, tmp_path)
    loaded = load_world_clip(tmp_path)
    assert loaded.config == model.config
    assert torch.equal(loaded.frame_embeddings(videos), model.frame_embeddings(videos))
    assert torch.equal(loaded.embed_prompts(["a red circle"]), model.embed_prompts(["a red circle"]))
    with pytest.raises(FileNotFoundError, match="world CLIP file missing"):
        load_world_clip(tmp_path / "nowhere")


def test_text_cache_and_identity_checks() -> None:
    model = _tiny()
    model.cache_text_features(["hello"], torch.ones(1, 6))
    assert model.pooled_text(["hello"]).shape == (1, 6)
    with pytest.raises(ValueError, match=r"expected pooled features \(2, 6\)"):
        model.cache_text_features(["a", "b"], torch.ones(1, 6))
    strict = WorldClip(model.config.replace(text_identity="embedded:x@1:L24"))

    class Other:
        identity = "t5:y@2:L24"

    with pytest.raises(ValueError, match="trained with text encoder 'embedded:x@1:L24'"):
        strict.use_text_encoder(Other())


def test_config_validation_and_resize() -> None:
    with pytest.raises(ValueError, match="multiples of 8"):
        WorldClipConfig(height=20, width=40)
    video = torch.rand(1, 3, 5, 12, 20)
    assert resize_video(video, (16, 24, 40)).shape == (1, 3, 16, 24, 40)
    assert torch.equal(resize_video(video, (5, 12, 20)), video)


def test_augment_keeps_range_and_is_identity_at_zero_probability() -> None:
    video = torch.rand(4, 3, 4, 8, 16)
    assert torch.equal(augment(video, 0.0, torch.Generator().manual_seed(0)), video)
    changed = augment(video, 1.0, torch.Generator().manual_seed(0))
    assert changed.min() >= 0 and changed.max() <= 1 and not torch.equal(changed, video)


@pytest.mark.slow
def test_training_runs_end_to_end(tmp_path: Path) -> None:
    from imagen_video.world.clip_train import ClipTrainConfig, train_world_clip

    config = ClipTrainConfig(steps=3, batch_size=8, eval_clips_per_combo=1, wordings_per_combo=2)
    model, report = train_world_clip(config, WorldClipConfig(channels=(8, 8, 8)), progress=False)
    assert report["steps"] == 3 and 0 <= report["r_precision_all"] <= 1
    save_world_clip(model, tmp_path)
    assert load_world_clip(tmp_path).config.text_identity == model.config.text_identity
