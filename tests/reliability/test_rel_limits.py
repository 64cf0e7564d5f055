"""Upper bounds checked before any model loads (docs/reliability.md): seed, steps, --num-videos,
--scale, and the memory estimate of a `generate` call (a pure function, pinned here in closed form)."""

from __future__ import annotations

from pathlib import Path

import pytest
from rel_support import assert_one_line, generate_argv

from imagen_video import limits
from imagen_video.cascade.presets import get_cascade_preset
from imagen_video.cascade.sampling import StageOverride
from imagen_video.cli import main

TINY = get_cascade_preset("tiny")
WEIGHTS = {"base": 1000, "tsr": 2000, "ssr": 3000}


def test_stage_activation_bytes_closed_form() -> None:
    ssr = TINY.stage("ssr")  # output (8, 16, 16), first level 8 channels, 3 video channels
    forward = 2 * 5 * 8 * 16 * 16 * 8 * limits.ACTIVATIONS_PER_CHANNEL
    video = 5 * 8 * 16 * 16 * 3 * limits.VIDEO_COPIES
    assert limits.stage_activation_bytes(ssr, 5, None) == (forward + video) * 4
    tiled = 2 * 5 * 8 * 8 * 8 * 8 * limits.ACTIVATIONS_PER_CHANNEL
    assert limits.stage_activation_bytes(ssr, 5, (8, 8)) == (tiled + video) * 4


def test_offload_keeps_one_stage_resident() -> None:
    def estimate(offload: bool) -> dict[str, int]:
        found = limits.estimate_generate_memory(TINY, samples=2, tiles={}, offload=offload, weights=WEIGHTS)
        return {s.stage: s.weights for s in found}

    assert estimate(False) == {"base": 6000, "tsr": 6000, "ssr": 6000}
    assert estimate(True) == WEIGHTS


def _advice(
    available: int, *, batch: int, videos: int, offload: bool = False, weights: int = 0
) -> str | None:
    per_video = 1000
    stage = limits.StageMemory("ssr", weights, per_video * batch * videos)
    return limits.fit_advice(
        [stage], available, batch_size=batch, num_videos=videos, offload=offload, export=10
    )


def test_fit_advice_names_the_flag_that_makes_it_fit() -> None:
    assert _advice(8000, batch=8, videos=1) is None
    assert _advice(4500, batch=8, videos=1).endswith("use --batch-size 4")
    assert _advice(2500, batch=1, videos=4).endswith("use at most --num-videos 2")
    assert _advice(2500, batch=2, videos=4).endswith("use --batch-size 1 and at most --num-videos 2")
    assert _advice(10_000, batch=1, videos=1, weights=20_000).endswith(
        "use --offload (keep only the running stage on the device)"
    )
    assert _advice(10_000, batch=1, videos=1, weights=20_000, offload=True).endswith("--tile ssr=HxW")
    assert "stage ssr needs about" in _advice(500, batch=1, videos=1)
    assert limits.fit_advice([limits.StageMemory("ssr", 0, 1)], 5, batch_size=1, num_videos=1,
                             offload=False, export=9).endswith("lower --scale")  # fmt: skip


def test_export_bytes_closed_form() -> None:
    assert limits.export_bytes(TINY, 3) == 8 * 16 * 16 * 3 * (4 + 2 * 9)


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--seed", str(2**64)], "--seed must be in [0, 2**64)"),
        (["--steps", "1000000000000"], "at most 100000 sampler steps"),
        (["--num-videos", "10000000"], "--num-videos must be at most 10000"),
        (["--scale", "100000"], "--scale must be at most 256"),
    ],
)
def test_out_of_range_values_are_refused_up_front(
    tiny_cascade: Path, tmp_path: Path, capsys, extra: list[str], needle: str
) -> None:
    code = main(generate_argv(tiny_cascade, "-o", str(tmp_path / "v.mp4"), *extra))
    assert code == 2
    assert_one_line(capsys.readouterr().err, needle)
    assert list(tmp_path.iterdir()) == []


def test_a_call_that_cannot_fit_is_refused_before_loading(
    tiny_cascade: Path, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(limits, "available_bytes", lambda device: 2**20)  # a 1 MiB device
    argv = generate_argv(tiny_cascade, "-o", str(tmp_path / "v.mp4"), "--num-videos", "64")
    assert main(argv) == 2
    line = assert_one_line(capsys.readouterr().err, "needs about", "GiB for this call, 0.0 GiB is free")
    assert line.endswith("use --offload (keep only the running stage on the device)")  # 3 stages > 1 MiB
    assert list(tmp_path.iterdir()) == []


def test_steps_bound_names_the_stage() -> None:
    with pytest.raises(ValueError, match="--steps ssr=100001"):
        limits.check_steps({"base": 10, "ssr": 100_001})
    limits.check_steps({"base": StageOverride(steps=5).steps})


def test_weight_bytes_come_from_the_files(tiny_cascade: Path) -> None:
    from imagen_video.cascade.registry import shipped_cascade_dir
    from imagen_video.cascade.stage_io import WEIGHTS_FILE

    for stage in TINY.stages:  # float32 files: their size
        assert (
            limits.weight_bytes(tiny_cascade, stage)
            == (tiny_cascade / stage.name / WEIGHTS_FILE).stat().st_size
        )
    distilled = shipped_cascade_dir("demo-distilled")
    base = get_cascade_preset("demo").stage("base")  # float16 file: twice its size once loaded
    assert limits.weight_bytes(distilled, base) == 2 * (distilled / "base" / WEIGHTS_FILE).stat().st_size
    assert limits.weight_bytes(tiny_cascade.parent / "missing", TINY.stages[0]) == 0
