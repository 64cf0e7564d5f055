"""``imagen-video generate --prompts`` under real torchrun with 2 gloo ranks on the CPU: the same files
and bytes as one process, each video once in the manifest, ``kill -9`` of a rank then ``--resume``, and
uneven ranks; ``evaluate --model`` / ``--videos`` with sharded feature extraction give one process's
results.json. Each test starts fresh Python processes (seconds of start-up each), so all are slow."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from imagen_video.cascade import job_manifest
from imagen_video.cli import main
from imagen_video.metrics.videos import save_video_npz
from tiny_metric_networks import save_tiny_clip, save_tiny_i3d, save_tiny_inception

pytestmark = pytest.mark.slow

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
PROMPTS = [
    f"a {c} {s} moving {d}" for c in ("red", "blue") for s in ("circle", "square") for d in ("up", "left")
]
TESTS = Path(__file__).parent


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A tiny random cascade, a prompts file and the videos one process makes of it."""
    root = tmp_path_factory.mktemp("torchrun")
    model = root / "tiny"
    assert main(["cascade", "init", str(model), "--preset", "tiny", "--seed", "0"]) == 0
    prompts = root / "prompts.txt"
    prompts.write_text("\n".join(PROMPTS) + "\n", encoding="utf-8")
    single = root / "single"
    done = subprocess.run(_cli(model, prompts, single), env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return model, prompts, single


def _cli(model: Path, prompts: Path, out: Path, *extra: str) -> list[str]:
    args = ["--prompts", str(prompts), "-o", str(out), "--model", str(model), "--format", "gif"]
    args += ["--seed", "5", "--batch-size", "2", "--quiet"]
    return [sys.executable, "-m", "imagen_video.cli", "generate", *args, *extra]


def _torchrun(command: list[str], ranks: int = 2) -> list[str]:
    """``command`` (``python -m imagen_video.cli ...``) under torchrun on a free port."""
    run = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(ranks)]
    return [*run, *command[1:]]


def _files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.glob("[!.]*.gif"))}


def _manifest(directory: Path) -> list[dict]:
    return [json.loads(line) for line in (directory / "manifest.jsonl").read_text().splitlines()]


def test_two_ranks_write_the_bytes_of_one_process_each_video_once(setup, tmp_path: Path) -> None:
    model, prompts, single = setup
    out = tmp_path / "two"
    done = subprocess.run(
        _torchrun(_cli(model, prompts, out)), env=ENV, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(_files(single)) == 8 and _files(out) == _files(single)
    records = _manifest(out)
    assert sorted(r["id"] for r in records) == sorted(p.stem for p in single.glob("[!.]*.gif"))
    assert {r["rank"] for r in records} == {0, 1}
    assert "8 videos in " in done.stdout and ": 8 made on 2 ranks, 0 already done; seed 5;" in done.stdout
    assert not list(out.glob("manifest.part-*"))


def _rank_pid(parent: int, rank: int) -> int | None:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            environ = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == parent and f"RANK={rank}".encode() in environ:
            return int(entry.name)
    return None


def test_kill_9_of_one_rank_fails_the_job_naming_it_then_resume_completes(setup, tmp_path: Path) -> None:
    model, prompts, single = setup
    out = tmp_path / "killed"
    command = _torchrun(_cli(model, prompts, out, "--batch-size", "1", "--steps", "8"))
    job = subprocess.Popen(command, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while len(job_manifest.read_entries(out)) < 2 if out.is_dir() else True:
        assert job.poll() is None, job.communicate()
        assert time.monotonic() < deadline, "no video appeared"
        time.sleep(0.05)
    pid = _rank_pid(job.pid, 1)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    _, stderr = job.communicate(timeout=120)
    assert job.returncode != 0
    assert "rank      : 1 (local_rank: 1)" in stderr and "Signal 9 (SIGKILL)" in stderr
    entries = job_manifest.read_entries(out)
    finished = sum(1 for r in entries.values() if (out / r["file"]).is_file())
    assert 2 <= finished < 8, (sorted(p.name for p in out.iterdir()), entries.keys())

    resumed = subprocess.run(
        _cli(model, prompts, out, "--batch-size", "1", "--steps", "8", "--resume"),
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f": {8 - finished} made, {finished} already done;" in resumed.stdout
    assert resumed.stdout.count("wrote ") == 8 - finished
    records = _manifest(out)
    assert (
        sorted(r["id"] for r in records) == sorted(p.stem for p in out.glob("[!.]*.gif"))
        and len(records) == 8
    )
    assert not list(out.glob(".*"))  # no temporary file of the killed run is left


def test_a_slow_rank_takes_fewer_batches(setup, tmp_path: Path) -> None:
    model, prompts, single = setup
    out = tmp_path / "uneven"
    command = _cli(model, prompts, out)
    run = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        "2",
        str(TESTS / "slow_rank_cli.py"),
    ]
    done = subprocess.run([*run, *command[3:]], env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [r["rank"] for r in _manifest(out)]
    assert len(ranks) == 8 and ranks.count(1) < ranks.count(0)
    assert _files(out) == _files(single)


@pytest.fixture(scope="module")
def metric_args(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Every metric, with tiny random feature networks (the tiny cascade makes 8-frame clips)."""
    root = tmp_path_factory.mktemp("nets")
    return [
        "--metrics", "fid,fvd,clip,rprec,world", "--num-distractors", "3",
        "--inception-weights", str(save_tiny_inception(root / "inception.pt")),
        "--i3d-weights", str(save_tiny_i3d(root / "i3d.pt", min_frames=8)),
        "--clip-model", str(save_tiny_clip(root / "clip", " ".join(PROMPTS).split())),
    ]  # fmt: skip


def _evaluate(args: list[str], out: Path, ranks: int) -> dict:
    """results.json of ``evaluate ARGS`` in one process (ranks=1) or under torchrun, less the prompts path."""
    command = [sys.executable, "-m", "imagen_video.cli", "evaluate", *args, "--out", str(out), "--quiet"]
    done = subprocess.run(
        _torchrun(command, ranks) if ranks > 1 else command,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    results.pop("prompts_file")
    return results


def test_evaluate_on_two_ranks_equals_one_process(setup, metric_args, tmp_path: Path) -> None:
    model, prompts, single = setup
    args = ["--prompts", str(prompts), "--model", str(model), "--reference", str(single), *metric_args]
    args += ["--seeds", "0", "1", "--batch-size", "3", "--device", "cpu"]
    results = {ranks: _evaluate(args, tmp_path / f"eval-{ranks}", ranks) for ranks in (1, 2)}
    for report in results.values():
        for run in report["runs"]:
            assert run["values"].pop("sampling_seconds") > 0
        assert report["summary"].pop("sampling_seconds")["n"] == 2
    assert results[1] == results[2]
    values = results[1]["runs"][0]["values"]
    assert {"fid", "fvd", "clip_score", "world_fd"} <= values.keys() and results[1]["ground_truth"]
    one, two = (sorted((tmp_path / f"eval-{r}" / "videos").rglob("*.npz")) for r in (1, 2))
    assert len(one) == 16 and [p.read_bytes() for p in one] == [p.read_bytes() for p in two]


def test_evaluate_video_directories_on_two_ranks_equals_one_process(
    setup, metric_args, tmp_path: Path
) -> None:
    _, prompts, single = setup
    rng = torch.Generator().manual_seed(0)
    dirs = []
    for name in ("noise", "reference"):
        (tmp_path / name).mkdir()
        for i in range(len(PROMPTS) + (name == "reference")):  # a reference of 9: no ground-truth row
            save_video_npz(tmp_path / name / f"{i:02d}.npz", torch.rand(3, 8, 16, 16, generator=rng), 8.0)
        dirs.append(tmp_path / name)
    args = ["--prompts", str(prompts), "--videos", str(single), str(dirs[0]), "--reference", str(dirs[1])]
    args += [*metric_args, "--batch-size", "2", "--device", "cpu"]
    results = {ranks: _evaluate(args, tmp_path / f"eval-{ranks}", ranks) for ranks in (1, 2, 3)}
    assert results[1] == results[2] == results[3]
    assert [run["name"] for run in results[1]["runs"]] == ["single", "noise"]
    assert results[1]["runs"][0]["details"]["fvd"]["reference_videos"] == 9 and not results[1]["ground_truth"]
