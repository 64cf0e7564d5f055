"""Frame skipping and antialiased bilinear resizing (paper sec. 3) and the SR conditioning clip (sec. 2.2)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from imagen_video.data.transforms import (
    aspect_crop_box,
    clip_frame_indices,
    conditioning_clip,
    crop_frames,
    frame_stride,
    random_crop_offset,
    resize_frames,
    to_float_frames,
    to_model_video,
)


def counter_clip(count: int, height: int = 8, width: int = 10) -> torch.Tensor:
    """(T, 3, H, W) in [0, 1]: red = frame index / 255, green/blue = random texture."""
    frames = np.random.default_rng(0).integers(0, 256, (count, height, width, 3), dtype=np.uint8)
    frames[..., 0] = np.arange(count, dtype=np.uint8)[:, None, None]
    return to_float_frames(frames)


@pytest.mark.parametrize(
    ("source", "target", "stride"), [(25, 5, 5), (30000 / 1001, 3, 10), (24, 8, 3), (24, 30, 1), (12, 12, 1)]
)
def test_frame_stride_rounds_the_rate_ratio(source: float, target: float, stride: int) -> None:
    assert frame_stride(source, target) == stride


def test_frame_stride_rejects_non_positive_rates() -> None:
    with pytest.raises(ValueError, match="source_fps=0"):
        frame_stride(0, 3)


def test_clip_indices_skip_frames_from_every_possible_start() -> None:
    rng = np.random.default_rng(0)
    starts = set()
    for _ in range(400):
        indices = clip_frame_indices(20, 4, 3, rng)  # span (4 - 1) * 3 + 1 = 10 -> starts 0..10
        np.testing.assert_array_equal(np.diff(indices), [3, 3, 3])
        starts.add(int(indices[0]))
    assert starts == set(range(11))
    assert clip_frame_indices(10, 4, 3, rng) is not None  # exactly the span fits
    assert clip_frame_indices(9, 4, 3, rng) is None  # too short: skipped, never padded


def test_aspect_crop_box_is_largest_box_of_the_target_aspect() -> None:
    rng = np.random.default_rng(0)
    assert aspect_crop_box(272, 640, 40 / 24, "center", rng) == (0, 93, 272, 453)  # 272 * 5/3 = 453.3
    assert aspect_crop_box(144, 176, 1.0, "center", rng) == (0, 16, 144, 144)
    assert aspect_crop_box(300, 100, 2.0, "center", rng) == (125, 0, 50, 100)
    boxes = {aspect_crop_box(144, 176, 1.0, "random", rng) for _ in range(200)}
    assert {b[1] for b in boxes} == set(range(33)) and {b[0] for b in boxes} == {0}
    with pytest.raises(ValueError, match="not in"):
        aspect_crop_box(10, 10, 1.0, "middle", rng)


def test_resize_matches_pillow_antialiased_bilinear_on_a_real_photo() -> None:
    skimage_data = pytest.importorskip("skimage.data")
    photo = skimage_data.astronaut()  # (512, 512, 3) uint8
    for size in [(24, 40), (48, 48), (100, 37)]:
        ours = resize_frames(to_float_frames(photo[None]), size)  # (1, 3, h, w)
        assert ours.shape == (1, 3, *size)
        assert float(ours.min()) >= 0.0 and float(ours.max()) <= 1.0  # convex weights: no overshoot
        reference = np.asarray(Image.fromarray(photo).resize(size[::-1], Image.BILINEAR), np.float32) / 255
        np.testing.assert_allclose(ours[0].permute(1, 2, 0).numpy(), reference, atol=1.01 / 255)


def test_resize_antialiases_fine_detail_and_keeps_constants() -> None:
    stripes = torch.zeros(1, 3, 63, 63)
    stripes[..., ::2] = 1.0  # one-pixel vertical stripes
    smooth = resize_frames(stripes, (9, 9))  # factor 7: an antialiased filter averages the stripes
    assert torch.allclose(smooth, torch.full_like(smooth, 0.5), atol=0.05)
    aliased = F.interpolate(stripes, size=(9, 9), mode="bilinear", antialias=False)
    assert float(aliased.max() - aliased.min()) == 1.0  # what plain bilinear would have done
    constant = torch.full((2, 3, 30, 50), 0.3)
    torch.testing.assert_close(resize_frames(constant, (7, 11)), torch.full((2, 3, 7, 11), 0.3))


def test_conditioning_clip_is_downsample_of_every_kth_frame_and_aligns_with_repetition() -> None:
    clip = counter_clip(8, 16, 20)  # (8, 3, 16, 20)
    cond = conditioning_clip(clip, 4, (8, 10))  # k = 2
    torch.testing.assert_close(cond, resize_frames(clip[::2], (8, 10)), rtol=0, atol=0)
    np.testing.assert_allclose(cond[:, 0].mean(dim=(1, 2)) * 255, [0, 2, 4, 6], atol=1e-4)  # frame indices
    repeated = cond.repeat_interleave(2, dim=0)  # frame-repetition temporal upsampling (sec. 2.3)
    for t in range(8):
        torch.testing.assert_close(repeated[t], resize_frames(clip[t - t % 2 : t - t % 2 + 1], (8, 10))[0])
    torch.testing.assert_close(conditioning_clip(clip, 8, (16, 20)), clip, rtol=0, atol=0)  # k = 1, same size
    with pytest.raises(ValueError, match="must divide the clip length 8"):
        conditioning_clip(clip, 3, (8, 10))


def test_to_model_video_is_channels_first_in_minus_one_one() -> None:
    frames = to_float_frames(np.array([[[[0, 128, 255]]], [[[255, 0, 64]]]], np.uint8))  # (2, 3, 1, 1)
    video = to_model_video(frames)
    assert video.shape == (3, 2, 1, 1) and video.is_contiguous()
    torch.testing.assert_close(video[:, 0, 0, 0], torch.tensor([-1.0, 128 / 127.5 - 1, 1.0]))
    torch.testing.assert_close(video[:, 1, 0, 0], torch.tensor([1.0, -1.0, 64 / 127.5 - 1]))


def test_crops_stay_inside_the_frame() -> None:
    rng = np.random.default_rng(0)
    offsets = {random_crop_offset(6, 8, (4, 5), rng) for _ in range(300)}
    assert offsets == {(top, left) for top in range(3) for left in range(4)}
    clip = counter_clip(2, 6, 8)
    torch.testing.assert_close(crop_frames(clip, 1, 2, (4, 5)), clip[..., 1:5, 2:7])
    with pytest.raises(ValueError, match="does not fit"):
        crop_frames(clip, 3, 0, (4, 5))
    with pytest.raises(ValueError, match="larger than the frames"):
        random_crop_offset(6, 8, (7, 5), rng)
