"""CLIP score and CLIP R-Precision (paper sec. 3.4, Table 1) with a tiny random transformers CLIP."""

from __future__ import annotations

import pytest
import torch

from imagen_video.metrics import MetricsConfig, build_metrics
from imagen_video.metrics.clip import (
    ClipMetrics,
    clip_score,
    draw_distractors,
    load_clip,
    projected_features,
    r_precision_hits,
)
from tiny_metric_networks import save_tiny_clip

PROMPTS = [
    "a red circle moving left",
    "a blue square growing",
    "a green triangle moving up",
    "a white circle",
]


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory: pytest.TempPathFactory):
    words = " ".join(PROMPTS).split()
    return save_tiny_clip(tmp_path_factory.mktemp("clip") / "tiny-clip", words)


def _videos(n: int = 4, t: int = 3) -> torch.Tensor:
    return torch.rand(n, 3, t, 20, 24, generator=torch.Generator().manual_seed(0))  # (N, C, T, H, W)


def test_clip_score_matches_the_model_forward(clip_dir) -> None:
    """Frame-averaged 100 * max(cos, 0), checked against CLIPModel's own logits / logit_scale."""
    bundle = load_clip(str(clip_dir))
    videos = _videos()
    result = ClipMetrics(bundle, rprecision=False).compute(videos, PROMPTS, None)
    frames = (videos.transpose(1, 2).reshape(-1, 3, 20, 24) * 255).round().to(torch.uint8)
    pixels = bundle.image_processor(images=list(frames.permute(0, 2, 3, 1).numpy()), return_tensors="pt")
    tokens = bundle.tokenizer(PROMPTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        out = bundle.model(pixel_values=pixels["pixel_values"], **tokens)
        cos = out.logits_per_image / bundle.model.logit_scale.exp()  # (N * T, P)
    own = cos.reshape(4, 3, 4)[torch.arange(4), :, torch.arange(4)]  # (N, T): frame vs its video's prompt
    expected = (100 * own.clamp(min=0)).mean()
    assert result.values["clip_score"] == pytest.approx(float(expected), rel=1e-4)
    assert result.details["clip_model"]["sha256"] and result.details["frames_per_video"] == 3


def test_clip_score_clamps_negative_cosines() -> None:
    frames = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.6, 0.8]])
    assert clip_score(frames, torch.tensor([1.0, 0.0])).tolist() == pytest.approx([100.0, 0.0, 60.0])


def test_r_precision_hits_pinned() -> None:
    frames = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    true, distractors = torch.tensor([1.0, 0.0]), torch.tensor([[0.0, 1.0], [0.8, 0.6]])
    # frame 0: 1.0 vs (0, .8) hit; frame 1: 0 vs (1, .6) miss; frame 2: .6 vs (.8, .96) miss
    assert r_precision_hits(frames, true, distractors).tolist() == [True, False, False]
    assert r_precision_hits(frames[:1], true, true[None]).tolist() == [False]  # ties count as misses


def test_distractors_are_seeded_distinct_and_never_the_true_prompt() -> None:
    prompts = [f"prompt {i}" for i in range(20)] + ["prompt 3"]
    drawn, used = draw_distractors(prompts, 5, seed=7)
    assert used == 5 and drawn == draw_distractors(prompts, 5, seed=7)[0]
    assert drawn != draw_distractors(prompts, 5, seed=8)[0]
    for prompt, ds in zip(prompts, drawn, strict=True):
        assert prompt not in ds and len(set(ds)) == 5


def test_r_precision_uses_all_other_prompts_when_fewer_than_requested(clip_dir) -> None:
    metric = ClipMetrics(load_clip(str(clip_dir)), score=False, num_distractors=99)
    result = metric.compute(_videos(), PROMPTS, None)
    assert result.details["num_distractors"] == 3
    assert "requested 99 distractors" in result.details["distractor_note"]
    value = result.values["clip_r_precision"]
    assert 0 <= value <= 100 and value * 12 / 100 == pytest.approx(
        round(value * 12 / 100), abs=1e-4
    )  # k/12 frames


def test_r_precision_of_perfectly_aligned_embeddings_is_100(clip_dir) -> None:
    """With the frame embeddings replaced by the prompt's own text embedding every frame is a hit."""
    metric = ClipMetrics(load_clip(str(clip_dir)), num_distractors=2)
    text = metric.clip.embed_text(PROMPTS)  # (P, D)
    metric.frame_embeddings = lambda videos: text[:, None, :].expand(4, 3, -1)  # (N, T, D)
    values = metric.compute(_videos(), PROMPTS, None).values
    assert values["clip_r_precision"] == 100.0 and values["clip_score"] == pytest.approx(100.0, rel=1e-5)


def test_one_prompt_fails_clearly_for_r_precision(clip_dir) -> None:
    (metric,) = build_metrics(MetricsConfig(metrics=("clip", "rprec"), clip_model=str(clip_dir)))
    with pytest.raises(ValueError, match="has 1 distinct prompt"):
        metric.compute(_videos(2), ["a red circle", "a red circle"], None)
    (score_only,) = build_metrics(MetricsConfig(metrics=("clip",), clip_model=str(clip_dir)))
    assert set(score_only.compute(_videos(1), ["a red circle"], None).values) == {"clip_score"}


def test_missing_clip_model_fails_clearly(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="not found.*nothing is downloaded"):
        load_clip("no-such-org/no-such-clip")
    with pytest.raises(ValueError, match="--clip-model"):
        build_metrics(MetricsConfig(metrics=("clip",)))


def test_prompts_longer_than_the_text_tower_are_counted(clip_dir) -> None:
    bundle = load_clip(str(clip_dir))
    long_prompt = " ".join(["red"] * 40)  # 40 words + <s> </s> > 32 positions of the tiny CLIP
    assert bundle.truncated([PROMPTS[0], long_prompt]) == [long_prompt]
    result = ClipMetrics(bundle, rprecision=False).compute(_videos(2), [PROMPTS[0], long_prompt], None)
    assert result.details["truncated_prompts"] == 1 and 0 <= result.values["clip_score"] <= 100


def test_projected_features_accept_a_tensor_or_a_transformers_5_output() -> None:
    """transformers 4.x's get_*_features return a tensor, 5.x an output holding it as pooler_output."""
    from transformers.modeling_outputs import BaseModelOutputWithPooling

    feats = torch.randn(2, 4)
    assert projected_features(feats) is feats
    output = BaseModelOutputWithPooling(last_hidden_state=torch.randn(2, 3, 8), pooler_output=feats)
    assert projected_features(output) is feats
    with pytest.raises(TypeError, match="pooler_output, got tuple"):
        projected_features((feats,))
