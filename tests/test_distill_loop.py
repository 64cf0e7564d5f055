"""The distillation loop, its resume, distilled stages in the cascade and the ``distill`` CLI
(paper secs. 2.7, 3.4; docs/math.md secs. 10-12). Tiny U-Nets on a synthetic world dataset;
captions come from a hashing test encoder through the real embedding cache."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from imagen_video.cascade import Cascade, StageOverride
from imagen_video.cascade.presets import tiny_cascade
from imagen_video.cli import main as cli_main
from imagen_video.diffusion.config import no_guidance, oscillating_guidance
from imagen_video.distill import (
    DistillConfig,
    distill_stage,
    distilled_stage_config,
    make_guidance_student,
    read_distill_log,
    tiny_distill_config,
)
from imagen_video.models import VideoUNet
from imagen_video.text import EmbeddingCache, TextEmbeddings, TextEncoder
from imagen_video.train.checkpoint import find_latest_checkpoint, read_checkpoint
from imagen_video.world.synth import SynthConfig, synthesize

TEXT_DIM = 16
CASCADE = tiny_cascade(text_encoder="hash-test", text_dim=TEXT_DIM)
PROMPTS = ("a red circle moving left", "a blue square growing")


class HashTextEncoder(TextEncoder):
    """Deterministic test encoder: tokens drawn from a generator seeded by the prompt's hash."""

    @property
    def dim(self) -> int:
        return TEXT_DIM

    @property
    def max_length(self) -> int:
        return CASCADE.text_max_length

    @property
    def identity(self) -> str:
        return "hash-test"

    def encode(
        self, prompts: Sequence[str], *, batch_size: int = 64, warn_truncation: bool = True
    ) -> TextEmbeddings:
        seeds = [int.from_bytes(hashlib.sha256(p.encode()).digest()[:8], "little") for p in prompts]
        tokens = torch.stack(
            [
                torch.randn(self.max_length, TEXT_DIM, generator=torch.Generator().manual_seed(s))
                for s in seeds
            ]
        )
        mask = torch.zeros(len(prompts), self.max_length, dtype=torch.bool)
        mask[:, :5] = True
        return TextEmbeddings(tokens * mask[..., None], mask, [False] * len(prompts))


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny convolutions are fastest (and not oversubscribed) on one thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(dataset dir, text cache dir): 8 clips of 16 frames 16x16 at 8 fps and their caption embeddings."""
    root = tmp_path_factory.mktemp("distill-world")
    synthesize(
        root / "data", SynthConfig(num_videos=8, frames=16, height=16, width=16, fps=8.0), progress=False
    )
    captions = [
        json.loads(line)["caption"] for line in (root / "data" / "manifest.jsonl").read_text().splitlines()
    ]
    EmbeddingCache.build(root / "cache", HashTextEncoder(), captions + list(PROMPTS), progress=False)
    return root / "data", root / "cache"


def _teacher(stage_name: str) -> VideoUNet:
    return VideoUNet(CASCADE.stage(stage_name).unet, generator=torch.Generator().manual_seed(0))


def _distill(world: tuple[Path, Path], stage_name: str, out: Path, config: DistillConfig, **kwargs: object):
    data, cache = world
    return distill_stage(
        kwargs.pop("stage", CASCADE.stage(stage_name)),
        kwargs.pop("model", _teacher(stage_name)),
        data,
        out,
        config,
        text_encoder="hash-test",
        text_max_length=CASCADE.text_max_length,
        text_cache=cache,
        progress=False,
        **kwargs,
    )


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def _stage_json(folder: Path) -> dict:
    return json.loads((folder / "config.json").read_text())


def test_resume_continues_from_saved_round_and_step(world: tuple[Path, Path], tmp_path: Path) -> None:
    """An SR (TSR) stage distilled guidance + 8 -> 4 -> 2 steps; stopped after 3 of 6 steps (mid round 1) and
    resumed, it ends bit-identical to the uninterrupted run, with the same per-step loss log."""
    config = tiny_distill_config()
    full = _distill(world, "tsr", tmp_path / "full", config)
    assert full.completed and full.global_step == 6 and full.stage_dir == tmp_path / "full" / "stage"
    stopped = _distill(world, "tsr", tmp_path / "cut", config, max_steps=3)
    assert not stopped.completed and stopped.stage_dir is None and stopped.global_step == 3
    _, state = read_checkpoint(find_latest_checkpoint(tmp_path / "cut" / "checkpoints" / "all"))
    assert (state["phase"], state["round_name"], state["round_step"], state["global_step"]) == (
        "all",
        "round1_4steps",
        1,
        3,
    )
    with pytest.raises(ValueError, match="already holds checkpoints"):
        _distill(world, "tsr", tmp_path / "cut", config)
    shutil.copytree(tmp_path / "cut", tmp_path / "old")
    old_state = find_latest_checkpoint(tmp_path / "old" / "checkpoints" / "all") / "state.json"
    old_state.write_text(json.dumps({**state, "format": 1}))
    with pytest.raises(ValueError, match="has format 1; this version resumes format 2"):
        _distill(world, "tsr", tmp_path / "old", config, resume=True)
    resumed = _distill(world, "tsr", tmp_path / "cut", config, resume=True)
    assert resumed.completed and resumed.start_step == 3 and resumed.global_step == 6
    assert [len(v) for v in resumed.losses.values()] == [1, 2]  # rest of round 1, all of round 2
    a, b = _weights(tmp_path / "full" / "stage"), _weights(tmp_path / "cut" / "stage")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert read_distill_log(tmp_path / "cut" / "distill_log.all.csv") == read_distill_log(
        tmp_path / "full" / "distill_log.all.csv"
    )
    assert resumed.rounds == full.rounds and [r["steps_logged"] for r in full.rounds] == [2, 2, 2]
    teacher = _weights(tmp_path / "full" / "rounds" / "guidance")
    assert not all(torch.equal(teacher[k], a[k]) for k in a)  # the rounds did train


def test_rounds_halve_steps_and_start_from_their_teacher(world: tuple[Path, Path], tmp_path: Path) -> None:
    """Guidance phase, then (a second call) progressive rounds 8 -> 4 -> 2 from it. With a negligible
    learning rate every round's student stays its teacher, so each round folder equals the previous one;
    the stage configs halve the stochastic sampler's steps and keep the rescaled guidance."""
    out = tmp_path / "run"
    guidance = _distill(world, "base", out, tiny_distill_config().replace(guidance_steps=1), phase="guidance")
    assert guidance.completed and [r["name"] for r in guidance.rounds] == ["guidance"]
    w_stage = _stage_json(out / "rounds" / "guidance")
    assert (
        w_stage["unet"]["use_guidance_embedding"]
        and w_stage["sampler"] == CASCADE.stage("base").sampler.to_dict()
    )
    frozen = tiny_distill_config().replace(lr=1e-12, ema_decay=0.0)
    progressive = _distill(world, "base", out, frozen, phase="progressive")
    assert [(r["teacher_steps"], r["student_steps"]) for r in progressive.rounds] == [(8, 4), (4, 2)]
    previous = _weights(out / "rounds" / "guidance")
    for name, steps in (("round1_4steps", 4), ("round2_2steps", 2)):
        config = _stage_json(out / "rounds" / name)
        assert (config["sampler"]["name"], config["sampler"]["steps"]) == ("stochastic", steps)
        assert config["guidance"]["mode"] == "oscillating" and config["guidance"]["constant_steps"] == 1
        current = _weights(out / "rounds" / name)
        assert all(torch.allclose(current[k], previous[k], atol=1e-9, rtol=0) for k in current)
        previous = current
    assert _stage_json(out / "stage")["sampler"]["steps"] == 2


def test_bad_sources_are_refused(world: tuple[Path, Path], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="run phase 'guidance'"):
        _distill(world, "base", tmp_path / "a", tiny_distill_config(), phase="progressive")
    stage, student = make_guidance_student(_teacher("base"), CASCADE.stage("base"))
    with pytest.raises(ValueError, match="already guidance-distilled"):
        _distill(world, "base", tmp_path / "b", tiny_distill_config(), stage=stage, model=student)


def _record_calls(cascade: Cascade) -> dict[str, list[tuple[int, list[float] | None]]]:
    """Per stage: (batch size, guidance_w) of every network forward."""
    calls: dict[str, list[tuple[int, list[float] | None]]] = {}
    for name, model in cascade.models.items():

        def hook(module, args, kwargs, name=name):
            w = kwargs.get("guidance_w")
            calls.setdefault(name, []).append((args[0].shape[0], None if w is None else w.tolist()))

        model.register_forward_pre_hook(hook, with_kwargs=True)
    return calls


def test_w_conditioned_cascade_with_w0_and_stochastic_sampler(world: tuple[Path, Path]) -> None:
    """Guidance-conditioned stages (fresh students: the teacher's conditional model at every w) with
    w = 0 and the stochastic sampler reproduce the original cascade run unguided with the same sampler,
    with ONE forward of B samples per step carrying guidance_w; a w schedule reaches the network."""
    encoder = HashTextEncoder()
    original = Cascade.from_config(CASCADE, generator=torch.Generator().manual_seed(0), text_encoder=encoder)
    stages, models = [], {}
    for stage in CASCADE.stages:
        w_stage, student = make_guidance_student(original.models[stage.name], stage)
        stages.append(distilled_stage_config(w_stage, 2, stage.sampler.steps).replace(guidance=no_guidance()))
        models[stage.name] = student
    distilled = Cascade(CASCADE.replace(stages=tuple(stages)), models, text_encoder=encoder)
    plain = {
        s.name: StageOverride(sampler="stochastic", steps=2, guidance=no_guidance()) for s in CASCADE.stages
    }
    calls = _record_calls(distilled)
    a = original.generate(
        list(PROMPTS), generator=torch.Generator().manual_seed(3), overrides=plain, progress=False
    )
    b = distilled.generate(list(PROMPTS), generator=torch.Generator().manual_seed(3), progress=False)
    assert b.video.shape == (2, 3, 8, 16, 16)
    torch.testing.assert_close(b.video, a.video, atol=1e-5, rtol=0)
    assert all(c == [(2, [0.0, 0.0])] * 2 for c in calls.values())
    calls.clear()
    oscillate = {"base": StageOverride(guidance=oscillating_guidance(3.0, 0.0, 1))}
    distilled.generate(
        list(PROMPTS), generator=torch.Generator().manual_seed(3), overrides=oscillate, progress=False
    )
    assert calls["base"] == [(2, [3.0, 3.0]), (2, [0.0, 0.0])]


def test_cli_distill_assemble_and_generate(
    world: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """`imagen-video distill` on a cascade directory, then `--assemble` a mixed cascade (original base +
    distilled TSR) that loads and generates like any cascade."""
    data, cache = world
    encoder = HashTextEncoder()
    Cascade.from_config(CASCADE, generator=torch.Generator().manual_seed(0)).save_pretrained(
        tmp_path / "orig"
    )
    run = tmp_path / "run-tsr"
    args = [
        "distill",
        "--model",
        str(tmp_path / "orig"),
        "--stage",
        "tsr",
        "--data",
        str(data),
        "--out",
        str(run),
        "--guidance-steps",
        "1",
        "--start-steps",
        "4",
        "--target-steps",
        "2",
        "--steps-per-round",
        "1",
        "--batch-size",
        "2",
        "--w-range",
        "0,6",
        "--text-cache",
        str(cache),
        "--no-progress",
    ]
    assert cli_main(args) == 0
    assert "round1_2steps: 1 steps" in capsys.readouterr().out
    assert json.loads((run / "distill_config.json").read_text())["w_max"] == 6.0
    mixed = tmp_path / "mixed"
    assert (
        cli_main(
            ["distill", "--model", str(tmp_path / "orig"), "--assemble", str(mixed), "--use", f"tsr={run}"]
        )
        == 0
    )
    cascade = Cascade.from_pretrained(mixed, text_encoder=encoder)
    assert [s.unet.use_guidance_embedding for s in cascade.config.stages] == [False, True, False]
    assert (cascade.config.stage("tsr").sampler.name, cascade.config.stage("tsr").sampler.steps) == (
        "stochastic",
        2,
    )
    out = cascade.generate([PROMPTS[0]], generator=torch.Generator().manual_seed(0), progress=False)
    assert out.video.shape == (1, 3, 8, 16, 16) and torch.isfinite(out.video).all()
    half = tmp_path / "mixed-fp16"
    assemble = ["distill", "--model", str(tmp_path / "orig"), "--assemble", str(half), "--use", f"tsr={run}"]
    assert cli_main([*assemble, "--weights-dtype", "fp16"]) == 0
    assert {t.dtype for t in _weights(half / "tsr").values()} == {torch.float16}
    assert _weights(half / "tsr").keys() == _weights(mixed / "tsr").keys()
    out_half = Cascade.from_pretrained(half, text_encoder=encoder).generate(
        [PROMPTS[0]], generator=torch.Generator().manual_seed(0), progress=False
    )
    assert 0 < float((out_half.video - out.video).abs().max()) < 0.05  # fp16 weights, float32 compute
    assert (
        cli_main(
            [
                "distill",
                "--model",
                str(tmp_path / "orig"),
                "--assemble",
                str(tmp_path / "x"),
                "--use",
                f"nope={run}",
            ]
        )
        == 2
    )
    assert cli_main(["distill", "--model", str(tmp_path / "orig"), "--stage", "tsr"]) == 2
    assert "required: --data, --out" in capsys.readouterr().err
    assert cli_main([*args, "--weights-dtype", "fp16"]) == 2
    assert "go with --assemble" in capsys.readouterr().err
    assert cli_main([*assemble, "--t-start", "0.5"]) == 2
    assert "not --stage/--data/--out/--t-start" in capsys.readouterr().err


def test_truncated_start_distills_only_the_sampled_range(
    world: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An SR stage whose sampler starts at t0 = 0.5 (from its noised input): every network call of
    both phases is at t <= t0, the distilled stage keeps t0 (and its start frames), and a resume with
    another t0 is refused."""
    from imagen_video.diffusion.schedule import logsnr_from_t
    from imagen_video.distill import objectives

    stage = CASCADE.stage("tsr")
    truncated = stage.replace(sampler=stage.sampler.replace(t_start=0.5, start_from="interpolated"))
    seen: list[torch.Tensor] = []
    real = objectives.network_raw
    monkeypatch.setattr(
        objectives,
        "network_raw",
        lambda m, z, logsnr, *a, **k: seen.append(logsnr) or real(m, z, logsnr, *a, **k),
    )
    out = tmp_path / "run"
    result = _distill(world, "tsr", out, tiny_distill_config(), stage=truncated, max_steps=5)
    floor = float(logsnr_from_t(torch.tensor(0.5, dtype=torch.float64), stage.diffusion.schedule))
    assert len(seen) >= 5 and float(torch.cat(seen).min()) >= floor - 1e-6
    assert not result.completed
    with pytest.raises(ValueError, match="starting at t = 0.5"):
        _distill(world, "tsr", out, tiny_distill_config(), resume=True)
    done = _distill(world, "tsr", out, tiny_distill_config(), stage=truncated, resume=True)
    assert done.completed
    sampler = _stage_json(out / "stage")["sampler"]
    assert (sampler["name"], sampler["steps"], sampler["t_start"]) == ("stochastic", 2, 0.5)
    assert sampler["start_from"] == "interpolated"
