"""Frame FID, video directories, the evaluate driver and `imagen-video evaluate` end to end."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from imagen_video.cli import main
from imagen_video.metrics import MetricResult, MetricsConfig, build_metrics, file_sha256, frechet_distance
from imagen_video.metrics import base as metrics_base
from imagen_video.metrics.evaluate import VideoRun, evaluate_runs, generate_runs, render_markdown, summarize
from imagen_video.metrics.fid import InceptionFrameFeatures, load_inception
from imagen_video.metrics.videos import load_video_dir, read_video, save_video_npz
from tiny_metric_networks import (
    save_tiny_clip,
    save_tiny_i3d,
    save_tiny_i3d_state_dict,
    save_tiny_inception,
)

PROMPTS = ["a red circle moving left", "a blue square growing", "a green triangle moving up"]


@pytest.fixture(scope="module")
def nets(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("nets")
    return {
        "inception": save_tiny_inception(root / "inception-2015-12-05.pt"),
        "i3d": save_tiny_i3d(root / "i3d_torchscript.pt"),
        "clip": save_tiny_clip(root / "clip", " ".join(PROMPTS).split()),
        "root": root,
    }


def _clip(seed: int, t: int = 9, h: int = 16, w: int = 20, level: int = 255) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 2, size=(t, h, w, 3)) * level).astype(np.uint8)  # (T, H, W, 3), two colors


def _write_mixed_dir(root, seed: int, t: int = 9, level: int = 255):
    """Three videos as .npz, a PNG frame folder and a .gif (sorted names = prompt order), plus a sidecar."""
    root.mkdir(parents=True)
    np.savez(root / "00.npz", frames=_clip(seed, t, level=level))
    (root / "01").mkdir()
    for i, frame in enumerate(_clip(seed + 1, t, level=level)):
        Image.fromarray(frame).save(root / "01" / f"{i:03d}.png")
    frames = [Image.fromarray(f) for f in _clip(seed + 2, t, level=level)]
    frames[0].save(root / "02.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    (root / "00.txt").write_text("caption sidecars are skipped")
    return root


def _write_prompts(path, prompts=PROMPTS):
    path.write_text("\n".join(prompts) + "\n\n")
    return path


# ------------------------------------------------------------------------------------------------
# video directories
# ------------------------------------------------------------------------------------------------


def test_video_formats_decode_to_the_same_frames(tmp_path) -> None:
    clip = _clip(0)
    directory = _write_mixed_dir(tmp_path / "v", 0)
    np.testing.assert_array_equal(read_video(directory / "00.npz"), clip)
    np.testing.assert_array_equal(read_video(directory / "01"), _clip(1))
    np.testing.assert_array_equal(read_video(directory / "02.gif"), _clip(2))  # two colors: lossless palette
    import av

    with av.open(str(tmp_path / "clip.mp4"), "w") as container:
        stream = container.add_stream("libx264", rate=8)
        stream.width, stream.height, stream.pix_fmt = 20, 16, "yuv420p"
        smooth = np.repeat(np.linspace(0, 255, 20, dtype=np.uint8)[None, None, :, None], 16, 1).repeat(3, 3)
        for _ in range(9):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(smooth[0], format="rgb24")))
        container.mux(stream.encode())
    decoded = read_video(tmp_path / "clip.mp4")
    assert decoded.shape == (9, 16, 20, 3) and np.abs(decoded.astype(int) - smooth[0]).mean() < 8


def test_video_dir_is_read_in_name_order_as_unit_range_tensor(tmp_path) -> None:
    videos = load_video_dir(_write_mixed_dir(tmp_path / "v", 5), expected=3)
    assert videos.shape == (3, 3, 9, 16, 20) and videos.dtype == torch.float32
    expected = torch.from_numpy(_clip(6)).permute(3, 0, 1, 2).float() / 255  # the PNG folder "01"
    torch.testing.assert_close(videos[1], expected)
    path = tmp_path / "round.npz"
    save_video_npz(path, videos[0], fps=8.0)
    np.testing.assert_array_equal(read_video(path), _clip(5))


def test_video_dir_errors_are_clear(tmp_path) -> None:
    directory = _write_mixed_dir(tmp_path / "v", 0)
    with pytest.raises(ValueError, match="holds 3 videos but there are 2 prompts"):
        load_video_dir(directory, expected=2)
    np.savez(directory / "03.npz", frames=_clip(0, t=5))
    with pytest.raises(ValueError, match="03.npz has shape"):
        load_video_dir(directory)
    Image.fromarray(_clip(0)[0]).save(directory / "04.png")
    with pytest.raises(ValueError, match="single image.*own sub-folder"):
        load_video_dir(directory)
    with pytest.raises(FileNotFoundError, match="video directory not found"):
        load_video_dir(tmp_path / "missing")


# ------------------------------------------------------------------------------------------------
# frame FID through torchmetrics
# ------------------------------------------------------------------------------------------------


def test_frame_fid_equals_frechet_distance_of_the_frame_features(nets) -> None:
    (fid,) = build_metrics(
        MetricsConfig(metrics=("fid",), inception_weights=str(nets["inception"]), batch_size=2)
    )
    gen = load_video_dir(_write_mixed_dir(nets["root"] / "fid-gen", 10))
    ref = load_video_dir(_write_mixed_dir(nets["root"] / "fid-ref", 20, level=128))
    result = fid.compute(gen, PROMPTS, ref)
    features = fid.frame_features
    with torch.no_grad():
        feats = [features(v.transpose(1, 2).reshape(-1, 3, 16, 20)) for v in (gen, ref)]  # (27, 16) each
    assert result.values["fid"] == pytest.approx(frechet_distance(*feats), rel=1e-4)
    assert result.values["fid"] > 1e-3
    assert result.details["generated_frames"] == 27 and result.details["feature_dim"] == 16
    assert result.details["network"]["sha256"] == file_sha256(nets["inception"])
    assert fid.compute(ref, PROMPTS, ref).values["fid"] == pytest.approx(0.0, abs=1e-3)


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
def test_inception_input_conventions(nets, tmp_path) -> None:
    class Spy(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            size = torch.full_like(x[:, 0, 0, 0], x.shape[-1])
            return torch.stack([x.amin(dim=(1, 2, 3)), x.amax(dim=(1, 2, 3)), size], 1)  # (N, 3)

    torch.jit.save(torch.jit.script(Spy()), tmp_path / "plain.pt")
    frames = torch.tensor([0.0, 1.0]).view(1, 1, 1, 2).expand(1, 3, 4, 2)
    plain = InceptionFrameFeatures(load_inception(str(tmp_path / "plain.pt")))
    assert plain(frames).tolist() == [[-1.0, 1.0, 299.0]]  # resized to 299, scaled to [-1, 1]
    stylegan = InceptionFrameFeatures(load_inception(str(nets["inception"])))
    assert stylegan.call_kwargs == {"return_features": True} and stylegan.num_features == 16
    save_tiny_i3d_state_dict(tmp_path / "i3d.safetensors")
    with pytest.raises(ValueError, match="FID needs a TorchScript Inception"):
        load_inception(str(tmp_path / "i3d.safetensors"))


# ------------------------------------------------------------------------------------------------
# the evaluate driver and the metric interface
# ------------------------------------------------------------------------------------------------


class MeanBrightness:
    """A plug-in metric: mean pixel value on 0-100 (no reference)."""

    name = "brightness"
    requires_reference = False

    def __init__(self, config: MetricsConfig) -> None:
        self.config = config

    def compute(self, videos, prompts, reference) -> MetricResult:
        return MetricResult({"brightness": 100 * float(videos.mean())}, {"videos": videos.shape[0]})


def test_metrics_config_round_trips_and_validates() -> None:
    config = MetricsConfig(metrics=("fvd", "rprec"), i3d_weights="i3d.pt", fvd_frames=16, num_distractors=9)
    assert MetricsConfig.from_json(config.to_json()) == config
    with pytest.raises(ValueError, match="i3d_features must be one of"):
        MetricsConfig(i3d_features="mixed_5c")
    with pytest.raises(ValueError, match="num_distractors must be >= 1"):
        MetricsConfig(num_distractors=0)
    with pytest.raises(ValueError, match="fvd_frames"):
        MetricsConfig(fvd_frames=0)


def test_summarize_mean_and_standard_error() -> None:
    rows = [{"values": {"x": v, "y": 1.0}} for v in (1.0, 2.0, 6.0)]
    summary = summarize(rows)
    assert summary["x"]["mean"] == 3.0 and summary["x"]["stderr"] == pytest.approx(
        np.std([1, 2, 6], ddof=1) / 3**0.5
    )
    assert summarize(rows[:1])["x"]["stderr"] is None


def test_plugged_in_metric_runs_with_ground_truth_row() -> None:
    metrics_base.register_metric("brightness", MeanBrightness)
    try:
        config = MetricsConfig(metrics=("brightness",))
        runs = [
            VideoRun("dark", torch.full((2, 3, 2, 4, 4), 0.25)),
            VideoRun("bright", torch.full((2, 3, 2, 4, 4), 0.75)),
        ]
        report = evaluate_runs(
            runs, ["p", "q"], config, reference=torch.full((2, 3, 2, 4, 4), 0.5), progress=False
        )
    finally:
        del metrics_base._REGISTRY["brightness"]
    assert [r["values"]["brightness"] for r in report["runs"]] == [25.0, 75.0]
    assert (
        report["summary"]["brightness"]["mean"] == 50.0 and report["summary"]["brightness"]["stderr"] == 25.0
    )
    assert report["ground_truth"]["values"] == {"brightness": 50.0}
    table = render_markdown(report)
    assert "| mean ± s.e. | 50.00 ± 25.00 |" in table and "| ground truth | 50.00 |" in table
    with pytest.raises(ValueError, match="unknown metric.*allowed"):
        MetricsConfig(metrics=("brightness",))


def test_reference_metrics_without_reference_fail(nets) -> None:
    config = MetricsConfig(metrics=("fvd",), i3d_weights=str(nets["i3d"]))
    with pytest.raises(ValueError, match=r"\['fvd'\] need a reference"):
        evaluate_runs([VideoRun("r", torch.rand(2, 3, 9, 8, 8))], ["a", "b"], config, progress=False)


# ------------------------------------------------------------------------------------------------
# the CLI, end to end
# ------------------------------------------------------------------------------------------------


def test_cli_evaluates_video_directories_with_every_metric(nets, tmp_path, capsys) -> None:
    prompts = _write_prompts(tmp_path / "prompts.txt")
    runs = [_write_mixed_dir(tmp_path / name, seed) for name, seed in (("run-a", 1), ("run-b", 2))]
    reference = _write_mixed_dir(tmp_path / "reference", 30, level=128)
    out = tmp_path / "out"
    code = main([
        "evaluate", "--prompts", str(prompts), "--videos", *map(str, runs), "--reference", str(reference),
        "--metrics", "fid,fvd,clip,rprec", "--inception-weights", str(nets["inception"]),
        "--i3d-weights", str(nets["i3d"]), "--clip-model", str(nets["clip"]), "--num-distractors", "5",
        "--batch-size", "2", "--device", "cpu", "--out", str(out), "--quiet",
    ])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    report = json.loads((out / "results.json").read_text())
    assert [r["name"] for r in report["runs"]] == ["run-a", "run-b"]
    for row in report["runs"]:
        assert set(row["values"]) == {"fid", "fvd", "clip_score", "clip_r_precision"}
        assert row["values"]["fvd"] > 0 and 0 <= row["values"]["clip_r_precision"] <= 100
    fvd = report["runs"][0]["details"]["fvd"]
    assert fvd["network"]["sha256"] == file_sha256(nets["i3d"]) and fvd["frames"] == 9
    assert (fvd["generated_videos"], fvd["reference_videos"], fvd["generated_resolution"]) == (3, 3, "16x20")
    assert report["runs"][0]["details"]["clip,rprec"]["num_distractors"] == 2
    assert set(report["ground_truth"]["values"]) == {"clip_score", "clip_r_precision"}
    assert report["summary"]["fvd"]["n"] == 2 and report["summary"]["fvd"]["stderr"] is not None
    table = (out / "results.md").read_text()
    assert "| run | FID (frames) | FVD | CLIP score | CLIP R-Precision |" in table
    assert "| mean ± s.e. |" in table and "| ground truth |" in table and "requested 5 distractors" in table
    assert "results.md" in capsys.readouterr().out


def _run_cli(args: list[str], capsys) -> tuple[int, str]:
    code = main(["evaluate", "--quiet", *args])
    return code, capsys.readouterr().err


def test_cli_failures_are_one_clear_line(nets, tmp_path, capsys) -> None:
    prompts = _write_prompts(tmp_path / "prompts.txt")
    videos = _write_mixed_dir(tmp_path / "videos", 0)
    short = _write_mixed_dir(tmp_path / "short", 0, t=8)
    common = ["--prompts", str(prompts), "--out", str(tmp_path / "out")]
    code, err = _run_cli(
        [
            *common,
            "--videos",
            str(videos),
            "--metrics",
            "fvd",
            "--reference",
            str(videos),
            "--i3d-weights",
            str(tmp_path / "missing_i3d.pt"),
        ],
        capsys,
    )
    assert code == 2 and "weights not found" in err and "missing_i3d.pt" in err and len(err.splitlines()) == 1
    code, err = _run_cli(
        [
            *common,
            "--videos",
            str(short),
            "--metrics",
            "fvd",
            "--reference",
            str(videos),
            "--i3d-weights",
            str(nets["i3d"]),
        ],
        capsys,
    )
    assert code == 2 and "at least 9 frames per clip" in err
    one = _write_prompts(tmp_path / "one.txt", PROMPTS[:1])
    (tmp_path / "single").mkdir()
    np.savez(tmp_path / "single" / "0.npz", frames=_clip(0))
    code, err = _run_cli(
        [
            "--prompts",
            str(one),
            "--videos",
            str(tmp_path / "single"),
            "--metrics",
            "rprec",
            "--clip-model",
            str(nets["clip"]),
            "--out",
            str(tmp_path / "out"),
        ],
        capsys,
    )
    assert code == 2 and "R-Precision needs distractor prompts" in err and "1 distinct prompt" in err
    code, err = _run_cli([*common, "--videos", str(videos), "--seeds", "1"], capsys)
    assert code == 2 and "--seeds applies to --model only" in err
    code, err = _run_cli([*common, "--videos", str(videos), "--metrics", "fid,nope"], capsys)
    assert code == 2 and "unknown metric(s) ['nope']" in err
    assert not (tmp_path / "out" / "results.json").exists()


class StandInCascade:
    """Replaces ``Cascade`` to test sampling, caching and resumption quickly (the real one is below)."""

    calls: list[list[str]] = []

    @classmethod
    def from_pretrained(cls, path, *, device="cpu") -> StandInCascade:
        return cls()

    def generate(self, prompts, *, generator, progress=True) -> SimpleNamespace:
        StandInCascade.calls.append(list(prompts))
        return SimpleNamespace(video=torch.rand(len(prompts), 3, 9, 8, 8, generator=generator), fps=8.0)


def test_generated_videos_are_cached_and_resume_identically(tmp_path, monkeypatch) -> None:
    cascade_mod = pytest.importorskip("imagen_video.cascade")
    monkeypatch.setattr(cascade_mod, "Cascade", StandInCascade)
    StandInCascade.calls = []
    model, cache = tmp_path / "model", tmp_path / "videos"
    runs = generate_runs(model, PROMPTS, [0, 1], cache, batch_size=2, progress=False)
    assert StandInCascade.calls == [PROMPTS[:2], PROMPTS[2:]] * 2  # two batches per seed
    assert [r.name for r in runs] == ["seed 0", "seed 1"] and runs[0].videos.shape == (3, 3, 9, 8, 8)
    assert "sampling_seconds" in runs[0].values and not torch.equal(runs[0].videos, runs[1].videos)
    (cache / "seed-1" / "00002.npz").unlink()  # an interrupted run: the last batch of seed 1 is missing
    StandInCascade.calls = []
    resumed = generate_runs(model, PROMPTS, [0, 1], cache, batch_size=2, progress=False)
    assert StandInCascade.calls == [PROMPTS[2:]]  # only the missing batch is sampled, with its own seed
    assert torch.equal(resumed[1].videos, runs[1].videos) and "sampling_seconds" not in resumed[1].values
    with pytest.raises(ValueError, match="another model, prompt list, seed or batch size"):
        generate_runs(model, PROMPTS[::-1], [0], cache, batch_size=2, progress=False)


@pytest.mark.slow
def test_cli_samples_a_real_tiny_cascade(nets, tmp_path, capsys) -> None:
    cascade_mod = pytest.importorskip("imagen_video.cascade")
    from imagen_video.cascade.presets import tiny_cascade
    from tiny_t5 import save_tiny_t5

    t5 = save_tiny_t5(tmp_path / "t5", words=" ".join(PROMPTS).split())
    cascade = cascade_mod.Cascade.from_config(
        tiny_cascade(f"t5:{t5}", 32), generator=torch.Generator().manual_seed(0)
    )
    cascade.save_pretrained(tmp_path / "cascade")
    prompts, out = _write_prompts(tmp_path / "p.txt"), tmp_path / "out"
    args = ["--prompts", str(prompts), "--model", str(tmp_path / "cascade"), "--metrics", "clip,rprec",
            "--clip-model", str(nets["clip"]), "--seeds", "0", "--batch-size", "3", "--device", "cpu",
            "--out", str(out)]  # fmt: skip
    code, err = _run_cli(args, capsys)
    assert code == 0, err
    report = json.loads((out / "results.json").read_text())
    assert report["runs"][0]["name"] == "seed 0" and report["runs"][0]["values"]["sampling_seconds"] > 0
    assert read_video(out / "videos" / "seed-0" / "00002.npz").shape == (8, 16, 16, 3)  # tiny cascade output


def test_world_metrics_plug_in(tmp_path) -> None:
    pytest.importorskip("imagen_video.world.clip")
    from imagen_video.world.clip import WorldClip, WorldClipConfig, save_world_clip
    from imagen_video.world.metric import WorldMetrics, register_world_metric
    from imagen_video.world.render import render_batch
    from imagen_video.world.spec import parse_caption
    from tiny_t5 import save_tiny_t5

    t5 = save_tiny_t5(tmp_path / "t5", words=" ".join(PROMPTS).split())
    config = WorldClipConfig(
        frames=4,
        height=8,
        width=8,
        channels=(4,),
        embed_dim=8,
        text_encoder=f"t5:{t5}",
        text_dim=32,
        text_hidden=8,
    )
    save_world_clip(WorldClip(config), tmp_path / "world_clip")
    clips = render_batch([parse_caption(p) for p in PROMPTS], frames=8, height=24, width=40, seed=0)
    videos = torch.from_numpy(clips).permute(0, 4, 1, 2, 3).float() / 255  # (N, C, T, H, W)
    register_world_metric()
    metric = build_metrics(
        MetricsConfig(metrics=("world",), world_clip=str(tmp_path / "world_clip"), num_distractors=5)
    )[0]
    assert isinstance(metric, WorldMetrics)
    result = metric.compute(videos, PROMPTS, videos)
    assert result.values["world_attribute_accuracy"] == 100.0  # the analyzer reads rendered clips exactly
    assert (
        0 <= result.values["world_clip_score"] <= 100 and 0 <= result.values["world_clip_r_precision"] <= 100
    )
    assert result.values["world_fd"] == pytest.approx(0.0, abs=1e-6)
