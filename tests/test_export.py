"""Video export: every format round-trips frame count and shape, colors survive H.264, writes are atomic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from imagen_video.cascade import export
from imagen_video.cascade.export import resolve_format, to_uint8_frames, write_video


def _moving_clip(frames: int = 6, height: int = 12, width: int = 20) -> torch.Tensor:
    """(C, T, H, W) float in [0, 1]: a white 4x4 square moving right over a dark blue background."""
    video = torch.zeros(3, frames, height, width)
    video[2] = 0.5
    for t in range(frames):
        video[:, t, 4:8, 2 * t : 2 * t + 4] = 1.0
    return video


def _decode_av(path: Path) -> tuple[np.ndarray, float]:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(stream)])
        return frames, float(stream.average_rate)


def _decode_pil(path: Path) -> list[np.ndarray]:
    from PIL import Image, ImageSequence

    with Image.open(path) as image:
        return [np.asarray(frame.convert("RGB")) for frame in ImageSequence.Iterator(image)]


def test_resolve_format_by_suffix_and_directory() -> None:
    assert resolve_format("a/b.MP4") == "mp4"
    assert resolve_format("x.gif") == "gif"
    assert resolve_format("x.webp") == "webp"
    assert resolve_format("frames/") == "png"
    assert resolve_format("frames") == "png"
    assert resolve_format("x.mp4", "gif") == "gif"
    with pytest.raises(ValueError, match=r"'\.avi'.*\.mp4, \.gif, \.webp"):
        resolve_format("x.avi")
    with pytest.raises(ValueError, match="allowed: mp4, gif, webp, png"):
        resolve_format("x", "mkv")


def test_to_uint8_rejects_out_of_range_and_bad_shapes() -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        to_uint8_frames(torch.full((3, 2, 4, 4), 1.5))
    with pytest.raises(ValueError, match=r"\(C, T, H, W\)"):
        to_uint8_frames(torch.zeros(1, 3, 2, 4, 4))
    gray = to_uint8_frames(torch.full((1, 2, 4, 4), 0.5))
    assert gray.shape == (2, 4, 4, 3) and int(gray[0, 0, 0, 0]) == 128


def test_mp4_round_trip_shape_fps_and_content(tmp_path: Path) -> None:
    clip = _moving_clip()
    out = write_video(clip, tmp_path / "v.mp4", fps=8)
    frames, fps = _decode_av(out)
    assert frames.shape == (6, 12, 20, 3)
    assert fps == pytest.approx(8.0)
    expected = to_uint8_frames(clip).astype(np.float32)
    # H.264 at CRF 17 on a sharp-edged synthetic clip: small mean error, square clearly in place.
    assert np.abs(frames.astype(np.float32) - expected).mean() < 8.0
    assert frames[3, 5, 7].min() > 200  # inside the square at t=3 (columns 6..9)


def test_mp4_is_reproducible(tmp_path: Path) -> None:
    """The same frames give the same decoded mp4 every time (x264's mb-tree made them differ by up
    to 25/255 on this clip: a red square moving over faint noise, 32 frames of 48x80)."""
    clip = torch.rand(3, 32, 48, 80, generator=torch.Generator().manual_seed(0)) * 0.08
    for t in range(32):
        clip[:, t, 10:22, 5 + t : 17 + t] += torch.tensor([0.86, 0.12, 0.12]).view(3, 1, 1)
    decoded = [_decode_av(write_video(clip.clamp(0, 1), tmp_path / f"{i}.mp4", fps=8))[0] for i in range(4)]
    assert all(np.array_equal(d, decoded[0]) for d in decoded[1:])


def test_mp4_pure_color_is_preserved(tmp_path: Path) -> None:
    color = torch.tensor([0.9, 0.2, 0.1])
    clip = color.view(3, 1, 1, 1).expand(3, 5, 16, 16).contiguous()
    frames, _ = _decode_av(write_video(clip, tmp_path / "c.mp4", fps=4))
    mean = frames.reshape(-1, 3).mean(0)
    assert np.allclose(mean, (color * 255).numpy(), atol=4.0), mean


def test_mp4_odd_size_is_padded_to_even(tmp_path: Path) -> None:
    frames, _ = _decode_av(write_video(_moving_clip(4, 11, 19), tmp_path / "odd.mp4", fps=3))
    assert frames.shape == (4, 12, 20, 3)


@pytest.mark.parametrize("suffix", [".gif", ".webp"])
def test_animated_image_round_trip(tmp_path: Path, suffix: str) -> None:
    clip = _moving_clip()
    frames = _decode_pil(write_video(clip, tmp_path / f"v{suffix}", fps=8))
    assert len(frames) == 6 and frames[0].shape == (12, 20, 3)
    if suffix == ".webp":  # lossless
        assert np.array_equal(np.stack(frames), to_uint8_frames(clip))


def test_png_directory_round_trip_and_replace(tmp_path: Path) -> None:
    from PIL import Image

    clip = _moving_clip()
    out = write_video(clip, tmp_path / "frames", fps=8)
    names = sorted(p.name for p in out.iterdir())
    assert names == [f"frame_{i:05d}.png" for i in range(6)]
    decoded = np.stack([np.asarray(Image.open(out / n)) for n in names])
    assert np.array_equal(decoded, to_uint8_frames(clip))
    write_video(clip[:, :3], f"{tmp_path / 'frames'}/", fps=8)  # replaces the folder as a whole
    assert len(list(out.iterdir())) == 3
    assert [p.name for p in tmp_path.iterdir()] == ["frames"]


def test_scale_upsamples_by_integer_factor(tmp_path: Path) -> None:
    frames = _decode_pil(write_video(_moving_clip(), tmp_path / "s.webp", fps=8, scale=3))
    assert frames[0].shape == (36, 60, 3)


class _BoomFrames(np.ndarray):
    """A uint8 (T, H, W, 3) array whose iteration raises KeyboardInterrupt after two frames."""

    def __iter__(self):  # type: ignore[override]
        yield np.asarray(self)[0]
        yield np.asarray(self)[1]
        raise KeyboardInterrupt


class _BoomImage:
    """Stands in for the third PIL frame: any use of it raises KeyboardInterrupt (Ctrl-C mid-write)."""

    def __getattr__(self, name: str) -> object:
        raise KeyboardInterrupt


@pytest.mark.parametrize("name", ["v.mp4", "v.gif", "v.webp", "frames"])
def test_no_partial_file_on_interrupt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    real_frames, real_pad = export._pil_frames, export._pad_even
    monkeypatch.setattr(export, "_pil_frames", lambda frames: [*real_frames(frames)[:2], _BoomImage()])
    monkeypatch.setattr(export, "_pad_even", lambda frames: real_pad(frames).view(_BoomFrames))
    (tmp_path / "out").mkdir()
    with pytest.raises(KeyboardInterrupt):
        write_video(_moving_clip(), tmp_path / "out" / name, fps=8)
    assert list((tmp_path / "out").iterdir()) == []


def test_failed_png_rewrite_keeps_previous_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_video(_moving_clip(), tmp_path / "frames", fps=8)
    real_frames = export._pil_frames
    monkeypatch.setattr(export, "_pil_frames", lambda frames: [*real_frames(frames)[:2], _BoomImage()])
    with pytest.raises(KeyboardInterrupt):
        write_video(_moving_clip(3), tmp_path / "frames", fps=8)
    assert [p.name for p in tmp_path.iterdir()] == ["frames"]
    assert len(list((tmp_path / "frames").iterdir())) == 6
