"""``benchmarks/table1.py``: the synthetic-world Table 1 (paper sec. 3.4) — row settings, and the whole
table on a tiny distilled cascade with its cache and resume."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import torch
from safetensors.torch import save_file

from imagen_video.cascade import Cascade
from imagen_video.cascade.presets import tiny_cascade
from imagen_video.diffusion.config import constant_guidance, oscillating_guidance
from imagen_video.distill import distilled_stage_config, make_guidance_student

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "table1.py"


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("table1_benchmark", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


table1 = _load_script()


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny convolutions are fastest (and not oversubscribed) on one thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class _StubEncoder:
    """Stands in for the text encoder (never asked to encode here)."""

    dim, identity = 16, "stub"


def _cascades(keep: tuple[str, ...] = ()) -> tuple[Cascade, Cascade]:
    """The tiny cascade and a guidance-conditioned copy distilled (in config) to 2 stochastic steps,
    but for the stages ``keep``, which the copy holds as they are (undistilled)."""
    config = tiny_cascade(text_encoder="unused", text_dim=16)
    original = Cascade.from_config(
        config, generator=torch.Generator().manual_seed(0), text_encoder=_StubEncoder()
    )
    stages, models = [], {}
    for stage in config.stages:
        if stage.name in keep:
            stages.append(stage)
            models[stage.name] = original.models[stage.name]
            continue
        w_stage, models[stage.name] = make_guidance_student(original.models[stage.name], stage)
        stages.append(distilled_stage_config(w_stage, 2, stage.sampler.steps))
    return original, Cascade(config.replace(stages=tuple(stages)), models, text_encoder=_StubEncoder())


def test_rows_apply_table1_sampling() -> None:
    """Original stages: the original sampler at base / SR steps; distilled stages keep their stochastic
    sampler; the row's guidance (eq. 5; oscillate(15, 1) is Saharia's, w 14 / 0) goes to the base."""
    original, distilled = _cascades()
    settings = table1.TableSettings(
        prompts=("a red circle moving up",), seeds=(0,), base_steps=256, sr_steps=128
    )
    rows = {}
    for row in table1.ROWS:
        cascade = table1.row_cascade(row, original, distilled)
        overrides = table1.row_overrides(row, cascade, settings)
        rows[row.key] = [overrides[s.name].apply(s) for s in cascade.config.stages]
    base, tsr, ssr = rows["constant-original"]
    assert [(s.sampler.name, s.sampler.steps) for s in (base, tsr, ssr)] == [
        ("ancestral", 256),
        ("ancestral", 128),
        ("ancestral", 128),
    ]
    assert base.guidance == constant_guidance(5.0) and tsr.guidance == constant_guidance(1.0)
    assert rows["oscillate-original"][0].guidance == oscillating_guidance(14.0, 0.0, 32)
    mixed = rows["oscillate-distilled_sr"]
    assert [(s.sampler.name, s.sampler.steps) for s in mixed] == [
        ("ancestral", 256),
        ("stochastic", 2),
        ("stochastic", 2),
    ]
    assert [s.unet.use_guidance_embedding for s in mixed] == [False, True, True]
    fast = rows["oscillate-distilled"]
    assert all((s.sampler.name, s.sampler.steps) == ("stochastic", 2) for s in fast)
    assert fast[0].guidance == oscillating_guidance(14.0, 0.0, 1)  # K = 1/8 of the steps, at least 1


def test_rows_keep_the_sampling_of_stages_the_distillation_kept() -> None:
    """A stage the distilled cascade holds undistilled (an unguided few-step SR stage) runs that
    cascade's own sampler in the distilled and mixed rows, and the original sampler only in the
    original rows."""
    original, distilled = _cascades(keep=("ssr",))
    settings = table1.TableSettings(
        prompts=("a red circle moving up",), seeds=(0,), base_steps=256, sr_steps=128
    )
    own = distilled.config.stages[-1].sampler
    assert own.name != "ancestral"
    for key, expected in (
        ("constant-original", ("ancestral", 128)),
        ("constant-distilled_sr", (own.name, own.steps)),
        ("constant-distilled", (own.name, own.steps)),
    ):
        row = next(r for r in table1.ROWS if r.key == key)
        cascade = table1.row_cascade(row, original, distilled)
        last = cascade.config.stages[-1]
        applied = table1.row_overrides(row, cascade, settings)[last.name].apply(last)
        assert (applied.sampler.name, applied.sampler.steps) == expected, key


def test_default_prompts_start_with_the_held_out_combinations() -> None:
    from imagen_video.world.spec import DEFAULT_HOLDOUT

    prompts = table1.default_prompts(36)
    assert prompts[:12] == [c.caption for c in DEFAULT_HOLDOUT] and len(set(prompts)) == 36
    assert table1.default_prompts(36) == prompts
    with pytest.raises(ValueError, match="prompt count"):
        table1.default_prompts(0)


@pytest.mark.slow
def test_smoke_table_runs_caches_and_resumes(tmp_path: Path) -> None:
    """The whole table on the tiny cascade (distilled by the real loop): 6 generated rows + ground truth,
    finite metrics; a second run (re-timing every row) reads every row from the cache and reproduces
    the table's metrics."""
    from table1_smoke import build_smoke_cascades

    original, distilled, world_clip = build_smoke_cascades(tmp_path / "smoke")
    tiny = ["--original", str(original), "--distilled", str(distilled), "--world-clip", world_clip]
    tiny += ["--prompts", "2", "--base-steps", "4", "--sr-steps", "2", "--batch-size", "2"]
    assert table1.main([*tiny, "--out", str(tmp_path), "--no-progress"]) == 0
    first = json.loads((tmp_path / "table1.json").read_text())
    assert [r["row"] for r in first["rows"]] == [r.key for r in table1.ROWS]
    steps = {r["row"]: (r["base_steps"], r["sr_steps"]) for r in first["rows"]}
    assert steps["constant-original"] == (4, "2") and steps["constant-distilled_sr"] == (4, "2")
    assert steps["oscillate-distilled"] == (2, "2")
    for row in first["rows"]:
        assert row["batches_sampled_now"] == 2  # 2 prompts x 2 seeds, batches of 2
        for key in table1.METRIC_KEYS:
            assert row["summary"][key]["n"] == 2 and 0.0 <= row["summary"][key]["mean"] <= 100.0
    assert first["ground_truth"]["summary"]["world_attribute_accuracy"]["mean"] == 100.0
    assert "| ground truth |" in (tmp_path / "table1.md").read_text()
    assert table1.main([*tiny, "--out", str(tmp_path), "--no-progress", "--retime", "1"]) == 0
    second = json.loads((tmp_path / "table1.json").read_text())
    assert all(r["batches_sampled_now"] == 0 for r in second["rows"])  # retiming keeps the cache
    assert all(r["sampling_seconds_per_batch"] > 0 for r in second["rows"])
    assert "median of 1 back-to-back runs" in (tmp_path / "table1.md").read_text()
    assert [r["summary"] for r in second["rows"]] == [r["summary"] for r in first["rows"]]


def test_rows_subset_and_their_cache_sources(tmp_path: Path) -> None:
    """``--rows`` picks rows by key; a row's cache key names only the cascades it samples, so the slow
    original rows can be cached before the distilled cascade exists."""
    assert table1.parse_rows(None) == table1.ROWS
    originals = table1.parse_rows("constant-original, oscillate-original")
    assert [r.combination for r in originals] == ["original", "original"]
    with pytest.raises(ValueError, match="unknown --rows"):
        table1.parse_rows("constant-fast")
    a, b = tmp_path / "a", tmp_path / "b"
    (a / "base").mkdir(parents=True)
    weights = {"w": torch.arange(4.0)}
    save_file(weights, str(a / "base" / "model.safetensors"), metadata={"x": "1", "y": "2"})
    digest = table1.weights_digest(a)
    save_file(weights, str(a / "base" / "model.safetensors"), metadata={"y": "2", "x": "1"})
    assert table1.weights_digest(a) == digest and set(digest) == {"base"}  # metadata order is ignored
    save_file({"w": torch.arange(4.0) + 1}, str(tmp_path / "other.safetensors"))
    (tmp_path / "c" / "base").mkdir(parents=True)
    (tmp_path / "other.safetensors").rename(tmp_path / "c" / "base" / "model.safetensors")
    assert table1.weights_digest(tmp_path / "c") != digest
    assert table1.row_sources(originals[0], a, None) == {
        "original": str(a.resolve()),
        "weights": {"original": digest},
    }
    assert table1.row_sources(table1.Row("constant", "distilled"), a, b) == {
        "distilled": str(b.resolve()),
        "weights": {"distilled": {}},
    }
    assert set(table1.row_sources(table1.Row("oscillate", "distilled_sr"), a, b)) == {
        "original",
        "distilled",
        "weights",
    }
    with pytest.raises(ValueError, match="--distilled"):
        table1.row_sources(table1.Row("constant", "distilled"), a, None)
    assert table1.main(["--rows", "constant-distilled", "--original", str(a), "--out", str(tmp_path)]) == 2


def test_a_cache_from_before_a_defaulted_config_field_still_matches(tmp_path: Path) -> None:
    stage = tiny_cascade().stages[0]
    key = {"row": "r", "stages": [stage.to_dict()], "prompts": ["p"], "batch_size": 1}
    older = json.loads(json.dumps(key))
    del older["stages"][0]["unet"]["frame_conditioning"]  # written before the field existed
    (tmp_path / "cache.json").write_text(json.dumps(older))
    table1._check_key(tmp_path, key)  # the same settings: accepted
    other = {**key, "stages": [stage.replace(frames=stage.frames * 2).to_dict()]}
    with pytest.raises(ValueError, match="other settings"):
        table1._check_key(tmp_path, other)
