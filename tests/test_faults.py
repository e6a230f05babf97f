"""Fault injection on a tiny model: SIGKILL at several points of training and of a folder-hub push, a full disk (a
small tmpfs, as root), damaged checkpoint parts, two resumes at once. Every case ends in an exact resume or in one
clear error, never in a silently different result."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.helpers import TIMINGS, cli, cli_env, run_args

from .conftest import build_tiny_model, sentiment_rows, write_csv

pytestmark = pytest.mark.slow  # every case runs the CLI in fresh processes

#: runs the real CLI, SIGKILLing itself before or after the n-th call of a function of nlptransfer
KILL_AT = r"""
import importlib, os, signal, sys
module_name, name, when, nth = sys.argv[1:5]
module = importlib.import_module(module_name)
owner_name, _, attr = name.rpartition(".")
owner = getattr(module, owner_name) if owner_name else module
original, calls = getattr(owner, attr), [0]

def wrapper(*args, **kwargs):
    calls[0] += 1
    if calls[0] == int(nth) and when == "before":
        os.kill(os.getpid(), signal.SIGKILL)
    out = original(*args, **kwargs)
    if calls[0] == int(nth) and when == "after":
        os.kill(os.getpid(), signal.SIGKILL)
    return out

setattr(owner, attr, wrapper)
from nlptransfer.cli import main
sys.exit(main(sys.argv[5:]))
"""


def _killed(point: tuple[str, str, str, int], args, cwd: Path) -> subprocess.CompletedProcess:
    script = cwd / "kill_at.py"
    script.write_text(KILL_AT)
    module, name, when, nth = point
    return subprocess.run([sys.executable, str(script), module, name, when, str(nth), *map(str, args)], cwd=cwd,
                          env=cli_env(), capture_output=True, text=True, timeout=600)


def _metrics(folder: Path) -> dict:
    return {k: v for k, v in json.loads((folder / "metrics.json").read_text()).items() if k not in TIMINGS}


def _steps(folder: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (folder / "train_log.jsonl").read_text().splitlines()
            if "loss" in json.loads(line)]


def _one_error(done: subprocess.CompletedProcess, contains: str) -> None:
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr and contains in done.stderr, done.stderr[-3000:]


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("faults")
    model = build_tiny_model(root / "models", "bert")
    data = write_csv(root / "reviews.csv", sentiment_rows(120))
    whole = {}
    for every in (0, 5):  # checkpoints at each evaluation, or every 5 steps
        done = cli(run_args(model, data, root / f"whole-{every}", **{"training.checkpoint_every": every}), root)
        assert done.returncode == 0, done.stderr[-3000:]
        whole[every] = root / f"whole-{every}" / "sentiment-minilm"
    return {"root": root, "model": model, "data": data, "whole": whole}


KILL_POINTS = {  # where, and with which checkpointing
    "mid-epoch, 2 steps after a checkpoint": (("nlptransfer.run", "RunFolder.append_log", "after", 19), 5),
    "while renaming a checkpoint into place": (("nlptransfer.train.state", "atomic_dir", "before", 2), 0),
    "after the best weights, before the checkpoint": (("nlptransfer.train.loop", "save_best", "after", 1), 0),
    "after training, before the weights are saved": (("nlptransfer.run", "RunFolder.save_weights", "before", 1), 0),
    "after the weights, before metrics.json": (("nlptransfer.run", "RunFolder.write_json", "before", 3), 0),
}


@pytest.mark.parametrize("case", sorted(KILL_POINTS))
def test_a_run_killed_anywhere_resumes_to_the_same_result(setup, tmp_path, case):
    point, every = KILL_POINTS[case]
    out = tmp_path / "killed"
    killed = _killed(point, run_args(setup["model"], setup["data"], out, **{"training.checkpoint_every": every}),
                     tmp_path)
    assert killed.returncode == -9, killed.stderr[-3000:]
    folder = out / "sentiment-minilm"
    assert not (folder / "metrics.json").exists()
    resumed = cli(["run", "sentiment-minilm", "--resume", folder], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert _metrics(folder) == _metrics(setup["whole"][every])
    assert _steps(folder) == list(range(1, 37))  # no step lost or logged twice
    assert [p.name for p in (folder / "checkpoints").iterdir() if p.name.endswith(".tmp")] == []


@pytest.fixture()
def interrupted(setup, tmp_path) -> Path:
    """A run killed at step 17, its last checkpoint at step 15."""
    out = tmp_path / "killed"
    killed = _killed(("nlptransfer.run", "RunFolder.append_log", "after", 19),
                     run_args(setup["model"], setup["data"], out, **{"training.checkpoint_every": 5}), tmp_path)
    assert killed.returncode == -9
    return out / "sentiment-minilm"


@pytest.mark.parametrize("part", ["model.safetensors", "optimizer.bin", "scheduler.bin", "random_states_0.pkl",
                                  "trainer_state.json"])
def test_a_damaged_checkpoint_part_is_one_clear_error_and_nothing_changes(interrupted, tmp_path, part):
    target = interrupted / "checkpoints" / "last" / part
    target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])
    log_before = (interrupted / "train_log.jsonl").read_text()
    done = cli(["run", "sentiment-minilm", "--resume", interrupted], tmp_path)
    _one_error(done, "trainer_state.json is damaged" if part == "trainer_state.json" else f"{part} is damaged")
    assert "cannot be resumed exactly" in done.stderr
    assert (interrupted / "train_log.jsonl").read_text() == log_before  # the folder is as it was


def test_a_missing_state_file_or_damaged_best_weights_is_refused(interrupted, tmp_path):
    best = interrupted / "checkpoints" / "best" / "trainable.safetensors"
    best.write_bytes(best.read_bytes()[:100])
    _one_error(cli(["run", "sentiment-minilm", "--resume", interrupted], tmp_path), "trainable.safetensors is damaged")
    (interrupted / "checkpoints" / "last" / "trainer_state.json").unlink()
    _one_error(cli(["run", "sentiment-minilm", "--resume", interrupted], tmp_path),
               "has no trainer_state.json: the checkpoint is incomplete")


def test_two_resumes_at_once_one_trains_the_other_is_refused(setup, interrupted, tmp_path):
    cmd = [sys.executable, "-m", "nlptransfer", "run", "sentiment-minilm", "--resume", str(interrupted)]
    both = [subprocess.Popen(cmd, cwd=tmp_path, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True) for _ in range(2)]
    results = [(p.wait(timeout=600), p.stderr.read()) for p in both]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    refused = next(err for code, err in results if code == 2)
    assert "is in use: another process is training in it" in refused or "already finished" in refused
    assert _steps(interrupted) == list(range(1, 37))
    assert _metrics(interrupted) == _metrics(setup["whole"][5])


def test_the_lock_is_held_while_a_process_trains(setup, interrupted, tmp_path):
    from nlptransfer.run import RunFolder

    with RunFolder(interrupted).lock():
        _one_error(cli(["run", "sentiment-minilm", "--resume", interrupted], tmp_path), "is in use")
    assert cli(["run", "sentiment-minilm", "--resume", interrupted], tmp_path).returncode == 0


# -- a full disk ------------------------------------------------------------------------------------------------------

@pytest.fixture()
def small_disk(tmp_path):
    """A 600 kB tmpfs (root only: mount needs it), unmounted afterwards."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("the full-disk test mounts a small tmpfs, which needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(disk)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    yield disk
    subprocess.run(["umount", str(disk)], capture_output=True)


def test_a_full_disk_while_training_is_one_error_and_then_resumes_or_restarts_exactly(setup, small_disk, tmp_path):
    done = cli(run_args(setup["model"], setup["data"], small_disk), tmp_path)
    _one_error(done, "the disk is full")
    assert len([line for line in done.stderr.splitlines() if line.strip()]) == 1, done.stderr
    subprocess.run(["mount", "-o", "remount,size=50m", str(small_disk)], check=True)
    folder = small_disk / "sentiment-minilm"
    again = (cli(["run", "sentiment-minilm", "--resume", folder], tmp_path) if folder.exists()
             else cli(run_args(setup["model"], setup["data"], small_disk), tmp_path))  # nothing left to resume
    assert again.returncode == 0, again.stderr[-3000:]
    assert _metrics(folder) == _metrics(setup["whole"][0])


def test_a_full_disk_while_predicting_is_one_error_and_leaves_no_partial_file(setup, small_disk, tmp_path):
    texts = write_csv(tmp_path / "texts.csv", [(("long text " * 40) + str(i), "") for i in range(3000)],
                      header=("text", "x"))
    done = cli(["predict", setup["whole"][0], "--input", texts, "--output", small_disk / "out.csv"], tmp_path)
    _one_error(done, "the disk is full")
    assert list(small_disk.iterdir()) == []


# -- a killed push --------------------------------------------------------------------------------------------------

def test_a_push_killed_before_its_ref_moves_changes_nothing_and_the_next_push_cleans_up(setup, tmp_path):
    from nlptransfer.hub import FolderHub
    from nlptransfer.inference import TextClassifier

    hub = tmp_path / "hub"
    hub.mkdir()
    run = setup["whole"][0]
    assert cli(["push", run, "--repo", "team/x", "--hub", hub], tmp_path).returncode == 0
    first = (hub / "team" / "x" / "refs" / "main").read_text()
    scratch = Path(tempfile.gettempdir())
    before = {p.name for p in scratch.glob(".nlptransfer-push.*")}
    for point in (("nlptransfer.hub", "atomic_write_text", "before", 1), ("nlptransfer.hub", "sha256_file", "after", 3)):
        killed = _killed(point, ["push", run, "--repo", "team/x", "--hub", hub], tmp_path)
        assert killed.returncode == -9, killed.stderr[-3000:]
        assert (hub / "team" / "x" / "refs" / "main").read_text() == first  # readers still see the first push
        probs = TextClassifier.from_pretrained("team/x", hub=hub).predict_proba(["good film"])
        assert probs.shape == (1, 2)
    debris = {p.name for p in scratch.glob(".nlptransfer-push.*")} - before
    assert len(debris) == 1  # the last killed push's staging folder (the second push removed the first's)
    assert cli(["push", run, "--repo", "team/x", "--hub", hub], tmp_path).returncode == 0
    assert {p.name for p in scratch.glob(".nlptransfer-push.*")} - before == set()
    assert (hub / "team" / "x" / "refs" / "main").read_text() != first
    assert FolderHub(hub).branches("team/x") == ["main"]
    leftovers = [p.name for part in ("refs", "snapshots", "commits") for p in (hub / "team" / "x" / part).iterdir()
                 if p.name.startswith(".")]
    assert leftovers == []


# --- issue 38: files in and out ---

PEAK = r"""
import resource, subprocess, sys
done = subprocess.run([sys.executable, "-m", "nlptransfer", *sys.argv[1:]], capture_output=True, text=True)
sys.stderr.write(done.stderr)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024)
sys.exit(done.returncode)
"""


def test_a_single_line_too_long_for_memory_is_refused_naming_the_file_and_line_at_bounded_memory(setup, tmp_path):
    texts = tmp_path / "one_line.csv"
    with open(texts, "w") as f:  # a 40 MB line (an unquoted file run together, or not a data file at all)
        f.write("text,x\nshort,1\n")
        f.write("good film and a slow plot " * (40 << 20 >> 5) + ",2\n")
    out = tmp_path / "out.csv"
    done = subprocess.run([sys.executable, "-c", PEAK, "predict", str(setup["whole"][0]), "--input", str(texts),
                           "--output", str(out)], cwd=tmp_path, env=cli_env(), capture_output=True, text=True,
                          timeout=600)
    _one_error(done, f"{texts}: line 3 is longer than 32 MB, more than a row needs")
    assert int(done.stdout.split()[-1]) < 1200  # MB: the line is refused while read, not held (today's main: abort)
    assert not out.exists()
