"""upsample_video: bilinear spatial resizing and frame repetition / blank frames (paper sec. 2.3)."""

from __future__ import annotations

import pytest
import torch

from imagen_video.models import interpolate_frames, upsample_video


def test_shapes_spatial_and_temporal() -> None:
    video = torch.randn(2, 3, 4, 6, 10)
    assert upsample_video(video, (8, 12, 20)).shape == (2, 3, 8, 12, 20)
    assert upsample_video(video, (4, 24, 40), temporal="blank").shape == (2, 3, 4, 24, 40)
    assert upsample_video(video, (12, 6, 10)).shape == (2, 3, 12, 6, 10)
    assert upsample_video(video, (4, 3, 5)).shape == (2, 3, 4, 3, 5)  # downsampling is allowed spatially


def test_repeat_semantics() -> None:
    video = torch.randn(1, 3, 3, 4, 4)
    out = upsample_video(video, (6, 4, 4), temporal="repeat")
    for i in range(3):
        assert torch.equal(out[:, :, 2 * i], video[:, :, i])
        assert torch.equal(out[:, :, 2 * i + 1], video[:, :, i])


def test_blank_semantics() -> None:
    video = torch.randn(1, 3, 3, 4, 4)
    out = upsample_video(video, (9, 4, 4), temporal="blank")
    for i in range(3):
        assert torch.equal(out[:, :, 3 * i], video[:, :, i])
        assert torch.count_nonzero(out[:, :, 3 * i + 1 : 3 * i + 3]) == 0


def test_bilinear_spatial_resize() -> None:
    constant = torch.full((1, 3, 2, 5, 7), 0.3)
    torch.testing.assert_close(upsample_video(constant, (2, 10, 14)), torch.full((1, 3, 2, 10, 14), 0.3))
    # A horizontal ramp stays a ramp: bilinear (half-pixel centres) matches F.interpolate per frame.
    ramp = torch.linspace(-1, 1, 4).expand(1, 1, 1, 2, 4).contiguous()
    out = upsample_video(ramp, (1, 2, 8))[0, 0, 0, 0]
    expected = torch.tensor([-1.0, -0.8333, -0.5, -0.1667, 0.1667, 0.5, 0.8333, 1.0])
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=0)
    # Shrinking by 2 is antialiased: a triangle filter of twice the width (weights 1/4, 3/4, 3/4, 1/4,
    # renormalised at the borders), not plain bilinear, which would average pixel pairs (0.5, ..., 6.5).
    fine = torch.arange(8.0).expand(1, 1, 1, 2, 8).contiguous()
    expected = torch.tensor([1.25 / 1.75, 2.5, 4.5, 11.0 / 1.75])
    torch.testing.assert_close(upsample_video(fine, (1, 2, 4))[0, 0, 0, 0], expected)


def test_errors_name_allowed_values() -> None:
    video = torch.randn(1, 3, 4, 6, 10)
    with pytest.raises(ValueError, match=r"multiple of the input frames 4"):
        upsample_video(video, (6, 6, 10))
    with pytest.raises(ValueError, match=r"one of \('repeat', 'blank'\)"):
        upsample_video(video, (8, 6, 10), temporal="interpolate")
    with pytest.raises(ValueError, match=r"\(B, C, T, H, W\)"):
        upsample_video(video[0], (8, 6, 10))


def test_interpolate_frames_keeps_inputs_blends_between_and_holds_the_last() -> None:
    video = torch.randn(2, 3, 4, 5, 6)
    out = interpolate_frames(video, 4)
    assert out.shape == (2, 3, 16, 5, 6)
    torch.testing.assert_close(out[:, :, ::4], video)  # input frame i at 4 i, like upsample_video
    torch.testing.assert_close(out[:, :, 1], 0.75 * video[:, :, 0] + 0.25 * video[:, :, 1])
    torch.testing.assert_close(out[:, :, 6], 0.5 * video[:, :, 1] + 0.5 * video[:, :, 2])
    torch.testing.assert_close(out[:, :, 13:], video[:, :, 3:].expand(-1, -1, 3, -1, -1))
    # a ramp in time stays a ramp (up to the held tail): motion is not frozen in repeated pairs
    ramp = torch.arange(4.0).view(1, 1, 4, 1, 1)
    assert interpolate_frames(ramp, 2).flatten().tolist() == [0, 0.5, 1, 1.5, 2, 2.5, 3, 3]
    torch.testing.assert_close(interpolate_frames(video, 1), video)
    assert interpolate_frames(video[:, :, :1], 3).shape == (2, 3, 3, 5, 6)
    with pytest.raises(ValueError, match="factor must be an integer >= 1"):
        interpolate_frames(video, 0)
