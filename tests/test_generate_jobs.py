"""Batch generation jobs in one process: JSONL prompts, per-video seeds and generators, the manifest
and resuming into the same directory (the torchrun runs are in test_generate_torchrun.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from imagen_video.cascade import Cascade, job_manifest, jobs
from imagen_video.cascade.presets import tiny_cascade
from imagen_video.cli import main
from imagen_video.cli._generate_job import default_name
from imagen_video.diffusion import _random
from test_cascade_helpers import HashTextEncoder, single_thread

PROMPTS = ["a red circle moving right", "a blue square moving up", "a green triangle moving left"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    yield from single_thread()



def _generate(capsys: pytest.CaptureFixture[str], model_dir: Path, *argv: str) -> tuple[int, str, str]:
    code = main(["generate", *argv, "--model", str(model_dir), "--format", "gif", "--quiet"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _bytes(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.glob("[!.]*.gif"))}


def test_jsonl_lines_with_seeds_ids_and_counts(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text(
        '{"prompt": "a red circle", "seed": 7, "id": "red"}\n'
        "\n"
        '{"prompt": " a blue square ", "num_videos": 2}\n',
        encoding="utf-8",
    )
    lines = jobs.read_prompt_lines(path)
    assert lines == [
        jobs.PromptLine(1, "a red circle", "red", 7, None),
        jobs.PromptLine(3, "a blue square", None, None, 2),
    ]
    planned = jobs.plan_videos(lines, tmp_path, ".gif", 3, run_seed=5, default_name=default_name)
    assert [(j.id, j.prompt_index, j.video_index) for j in planned] == [
        ("red_0", 0, 0),
        ("red_1", 0, 1),
        ("red_2", 0, 2),
        ("0003-a-blue-square_0", 1, 0),
        ("0003-a-blue-square_1", 1, 1),
    ]
    assert planned[0].seed == 7 and planned[1].seed == jobs.video_seed(7, 1) != 7
    assert planned[3].seed == jobs.prompt_seed(5, 1) and planned[4].seed == jobs.video_seed(
        planned[3].seed, 1
    )
    assert len({j.seed for j in planned}) == 5
    assert [len(b) for b in jobs.batches(planned, 1)] == [3, 2]
    assert [len(b) for b in jobs.batches(planned, 2)] == [5]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"prompt": "x",}', "line 2 is not valid JSON"),
        ('["x"]', "line 2 is not a JSON object"),
        ('{"text": "x"}', "line 2 has unknown key(s) ['text']"),
        ('{"prompt": "  "}', 'line 2: "prompt" is empty'),
        ('{"prompt": 3}', 'line 2: "prompt" is int, not str'),
        ('{"seed": 3}', 'line 2 has no "prompt"'),
        ('{"prompt": "x", "seed": -1}', 'line 2: "seed" must be an integer >= 0'),
        ('{"prompt": "x", "num_videos": true}', 'line 2: "num_videos" must be an integer >= 1'),
        ('{"prompt": "x", "id": "../x"}', 'line 2: "id" must be'),
        ('{"prompt": "x", "id": "a"}', "line 2 repeats the id 'a' of line 1"),
    ],
)
def test_a_malformed_jsonl_line_is_one_error_before_any_model_loads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], line: str, message: str
) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text(f'{{"prompt": "a red circle", "id": "a"}}\n{line}\n{{"prompt": "y"}}\n', encoding="utf-8")
    code = main(["generate", "--prompts", str(path), "--model", str(tmp_path / "no-such-cascade")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0].startswith(f"imagen-video generate: error: prompt file {str(path)!r}: {message}")


def test_a_grid_sheet_of_jsonl_prompts_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text('{"prompt": "a red circle"}\n', encoding="utf-8")
    assert main(["generate", "--prompts", str(path), "-o", str(tmp_path / "sheet.png")]) == 2
    assert "a grid sheet takes a plain-text prompt file" in capsys.readouterr().err


def test_seed_derivation_is_pinned() -> None:
    assert jobs.video_seed(11, 0) == 11 and jobs.prompt_seed(11, 0) == 11
    assert jobs.video_seed(11, 1) == 593489610033846018
    assert jobs.prompt_seed(11, 1) == 7629511488842476266


def test_one_generator_per_sample_draws_each_row_alone() -> None:
    seeds = [3, 4]
    batch = _random.randn((2, 5), generator=[torch.Generator().manual_seed(s) for s in seeds], device="cpu")
    for row, seed in zip(batch, seeds, strict=True):
        assert torch.equal(row, torch.randn(5, generator=torch.Generator().manual_seed(seed)))
    with pytest.raises(ValueError, match="2 per-sample generators for a draw of shape"):
        _random.rand((3,), generator=[torch.Generator()] * 2, device="cpu")


def test_a_video_does_not_depend_on_its_batch() -> None:
    cascade = Cascade.from_config(tiny_cascade(), generator=torch.Generator().manual_seed(0),
                                  text_encoder=HashTextEncoder())  # fmt: skip
    alone = cascade.generate(PROMPTS[1:2], generator=torch.Generator().manual_seed(9), progress=False)
    per_video = [torch.Generator().manual_seed(s) for s in (8, 9)]
    together = cascade.generate(PROMPTS[:2], generator=per_video, progress=False)
    # the same noise; batched kernels may round differently, far below one 8-bit level
    assert torch.allclose(together.video[1], alone.video[0], atol=1e-4)
    one = cascade.generate(PROMPTS[1:2], generator=[torch.Generator().manual_seed(9)], progress=False)
    assert torch.equal(one.video, alone.video)  # one generator of one video: the batch-of-one draw


def test_generate_num_videos_gives_video_k_the_seed_of_video_k(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Pins ``generate PROMPT --seed S --num-videos K``: video k is sampled from ``video_seed(S, k)``
    (so it equals ``--seed video_seed(S, k)`` alone); before, the K videos shared one generator."""
    assert _generate(capsys, model_dir, PROMPTS[0], "-o", str(tmp_path / "v.gif"), "--seed", "4",
                     "--num-videos", "2")[0] == 0  # fmt: skip
    second = str(jobs.video_seed(4, 1))
    assert _generate(capsys, model_dir, PROMPTS[0], "-o", str(tmp_path / "one.gif"), "--seed", second)[0] == 0
    assert (tmp_path / "v_1.gif").read_bytes() == (tmp_path / "one.gif").read_bytes()
    assert (tmp_path / "v_0.gif").read_bytes() != (tmp_path / "one.gif").read_bytes()


def test_jsonl_line_seed_reproduces_the_single_prompt_video(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text('{"prompt": "a red circle moving right", "seed": 21, "id": "red"}\n', encoding="utf-8")
    assert _generate(capsys, model_dir, "--prompts", str(path), "-o", str(tmp_path / "out"))[0] == 0
    assert _generate(capsys, model_dir, PROMPTS[0], "-o", str(tmp_path / "one.gif"), "--seed", "21")[0] == 0
    assert (tmp_path / "out" / "red.gif").read_bytes() == (tmp_path / "one.gif").read_bytes()


def test_manifest_then_rerun_makes_only_missing_or_changed_videos(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prompts = tmp_path / "p.txt"
    prompts.write_text("\n".join(PROMPTS) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    args = [
        "--prompts",
        str(prompts),
        "-o",
        str(out),
        "--num-videos",
        "2",
        "--batch-size",
        "1",
        "--steps",
        "1",
    ]
    code, stdout, _ = _generate(capsys, model_dir, *args, "--seed", "2")
    assert code == 0 and "6 videos in " in stdout and ": 6 made, 0 already done; seed 2;" in stdout
    first = _bytes(out)
    records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert [r["id"] for r in records] == [p.stem for p in sorted(out.glob("[!.]*.gif"))]
    assert all(r["sha256"] == job_manifest.file_sha256(out / r["file"]) for r in records)
    assert {r["rank"] for r in records} == {0} and {r["run_seed"] for r in records} == {2}
    assert [r["batch"] for r in records] == [0, 0, 1, 1, 2, 2] and records[0]["batch_seconds"] > 0
    assert records[0]["settings"]["stages"]["base"]["sampler"]["steps"] == 1
    assert not list(out.glob("manifest.part-*"))

    (out / records[1]["file"]).unlink()  # a lost video
    (out / records[4]["file"]).write_bytes(b"GIF89a truncated")  # a damaged one
    code, stdout, _ = _generate(capsys, model_dir, *args)  # no --seed: the manifest's
    assert code == 0 and ": 2 made, 4 already done; seed 2;" in stdout
    assert stdout.count("wrote ") == 2 and _bytes(out) == first

    code, stdout, _ = _generate(capsys, model_dir, *args, "--resume", "--steps", "2")  # other settings
    assert code == 0 and ": 6 made, 0 already done;" in stdout and _bytes(out) != first
    assert len((out / "manifest.jsonl").read_text().splitlines()) == 6


def test_resume_needs_a_manifest(model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prompts = tmp_path / "p.txt"
    prompts.write_text(PROMPTS[0] + "\n", encoding="utf-8")
    code, _, err = _generate(
        capsys, model_dir, "--prompts", str(prompts), "-o", str(tmp_path / "o"), "--resume"
    )
    assert code == 2 and "nothing to resume" in err and not (tmp_path / "o").exists()


def test_torn_manifest_lines_are_ignored(tmp_path: Path) -> None:
    (tmp_path / "manifest.jsonl").write_text('{"id": "a", "sha256": "1"}\n', encoding="utf-8")
    job_manifest.append_entries(job_manifest.part_path(tmp_path, 1), [{"id": "a", "sha256": "2"}])
    with open(job_manifest.part_path(tmp_path, 1), "a", encoding="utf-8") as handle:
        handle.write('{"id": "b", "sha')  # a writer killed mid-line
    assert job_manifest.read_entries(tmp_path) == {"a": {"id": "a", "sha256": "2"}}


def test_python_m_imagen_video_is_the_command_line() -> None:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "imagen_video", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("imagen-video ")
