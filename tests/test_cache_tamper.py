"""The cache trusts nothing it finds (issue 38): a cache entry whose files were changed, cut short, planted by another
user or made writable by others is made again, saying which and why, and the run gives the clean run's numbers;
`cache --clear` during a run leaves what the run holds; a killed run's temporary folder does not stay."""
from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pyarrow as pa
import pytest

import nlptransfer
from tests.helpers import cli, cli_env, run_args, without_timings

from .conftest import captured_messages, quick_overrides

OTHER_UID = 12345  #: a user that is not this one (the tests run as root, which may chown)

needs_root = pytest.mark.skipif(os.getuid() != 0, reason="planting another user's entry needs root (os.chown)")


def _finetune(tiny_models, data: Path, out: Path):
    overrides = quick_overrides(tiny_models["bert"], out, **{"training.epochs": 2})
    return nlptransfer.finetune("sentiment-minilm", data=str(data), overrides=overrides)


def _results(path: Path) -> tuple:
    """What a run gave: test metrics (no timings), every logged loss, and predictions.csv."""
    metrics = without_timings(json.loads((path / "metrics.json").read_text()))
    losses = [r["loss"] for r in map(json.loads, (path / "train_log.jsonl").read_text().splitlines()) if "loss" in r]
    with open(path / "predictions.csv", newline="", encoding="utf-8") as f:
        return metrics, losses, list(csv.DictReader(f))


@pytest.fixture(scope="module")
def clean(tiny_models, reviews_csv, tmp_path_factory):
    """A clean run's results and a copy of the cache it filled."""
    root = tmp_path_factory.mktemp("clean")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NLPTRANSFER_CACHE", str(root / "cache"))
        run = _finetune(tiny_models, reviews_csv, root / "runs")
    return _results(run.path), root / "cache"


def _cache_from(clean, tmp_path, monkeypatch) -> Path:
    cache = tmp_path / "cache"
    shutil.copytree(clean[1], cache, symlinks=True)
    monkeypatch.setenv("NLPTRANSFER_CACHE", str(cache))
    return cache


def _splits_entry(cache: Path) -> Path:
    (entry,) = (cache / "splits").iterdir()
    return entry


def _train_tokens(cache: Path) -> Path:
    """The tokens entry of the training texts (the largest of the three)."""
    return max((cache / "tokens").glob("*.arrow"), key=lambda p: p.stat().st_size)


def _rewrite(path: Path, change) -> None:
    """Write the Arrow file at `path` again with `change(table)`: the same schema and row count."""
    table = pa.ipc.open_file(pa.memory_map(str(path))).read_all()
    changed = change(table)
    assert changed.schema == table.schema and changed.num_rows == table.num_rows
    data = pa.BufferOutputStream()
    with pa.ipc.new_file(data, table.schema) as writer:
        writer.write_table(changed)
    path.write_bytes(data.getvalue().to_pybytes())


def flip_labels(table: pa.Table) -> pa.Table:
    """Label ids 0 and 1 swapped."""
    labels = [1 - v for v in table.column("label").to_pylist()]
    return table.set_column(table.schema.get_field_index("label"), "label", pa.array(labels, pa.int32()))


def reverse_ids(table: pa.Table) -> pa.Table:
    """Each text's token ids in reverse order."""
    ids = [v[::-1] for v in table.column("input_ids").to_pylist()]
    return table.set_column(0, "input_ids", pa.array(ids, pa.list_(pa.int32())))


def redigest(path: Path) -> None:
    """Record the sha256 of the entry at `path` as it now is: what someone who knows the format would plant."""
    if path.is_dir():
        sums = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in path.iterdir() if p.name != "sha256.json"}
        (path / "sha256.json").write_text(json.dumps(sums))
    else:
        path.with_name(path.name + ".sha256.json").write_text(
            json.dumps({path.name: hashlib.sha256(path.read_bytes()).hexdigest()}))


def _rerun(tiny_models, reviews_csv, tmp_path) -> tuple[tuple, list[str]]:
    with captured_messages() as lines:
        run = _finetune(tiny_models, reviews_csv, tmp_path / "runs")
    return _results(run.path), lines


def _said(lines: list[str], entry: Path, reason: str) -> None:
    assert f"cache: {entry} is not used: it {reason}; made again" in lines, [s for s in lines if "cache" in s]


def _trusted(entry: Path) -> None:
    """The entry made again is this user's, written by this run (not a link), and its digests match."""
    from nlptransfer.cache import Entry

    info = os.lstat(entry)
    assert not os.path.islink(entry) and info.st_uid == os.getuid() and not info.st_mode & 0o022
    held = Entry(entry, folder=entry.is_dir())
    assert held.open() is not None


@pytest.mark.parametrize("where, tamper, reason", [
    ("splits", lambda e: _rewrite(e / "train.arrow", flip_labels),
     "has a train.arrow whose sha256 differs from the one recorded when it was written"),
    ("splits", lambda e: (e / "test.arrow").write_bytes((e / "test.arrow").read_bytes()[:300]),
     "has a test.arrow whose sha256 differs from the one recorded when it was written"),
    ("splits", lambda e: (e / "meta.json").unlink(), "lacks meta.json"),
    ("splits", lambda e: (e / "sha256.json").unlink(), "has no sha256.json (written without digests, or damaged)"),
    ("tokens", lambda e: _rewrite(e, reverse_ids),
     lambda e: f"has a {e.name} whose sha256 differs from the one recorded when it was written"),
    ("tokens", lambda e: e.write_bytes(e.read_bytes()[:100]),
     lambda e: f"has a {e.name} whose sha256 differs from the one recorded when it was written"),
], ids=["flipped-labels", "truncated-split", "missing-file", "no-digests", "edited-token-ids", "truncated-tokens"])
def test_a_changed_entry_is_made_again_and_the_run_is_the_clean_one(where, tamper, reason, clean, tiny_models,
                                                                     reviews_csv, tmp_path, monkeypatch):
    cache = _cache_from(clean, tmp_path, monkeypatch)
    entry = _splits_entry(cache) if where == "splits" else _train_tokens(cache)
    tamper(entry)
    results, lines = _rerun(tiny_models, reviews_csv, tmp_path)
    _said(lines, entry, reason if isinstance(reason, str) else reason(entry))
    assert results == clean[0]
    _trusted(entry)


def _foreign(entry: Path) -> str:
    for path in [entry, *(entry.iterdir() if entry.is_dir() else [entry.with_name(entry.name + ".sha256.json")])]:
        os.chown(path, OTHER_UID, OTHER_UID)
    return f"is owned by another user (uid {OTHER_UID})"


def _open_to_all(entry: Path) -> str:
    entry.chmod(0o777 if entry.is_dir() else 0o666)
    return f"is writable by group or others (mode {'777' if entry.is_dir() else '666'})"


def _linked(entry: Path) -> str:
    elsewhere = entry.parent.parent.parent / f"planted-{entry.name}"
    entry.rename(elsewhere)
    os.symlink(elsewhere, entry)
    return "is a symbolic link"


@pytest.mark.parametrize("where", ["splits", "tokens"])
@pytest.mark.parametrize("plant", [pytest.param(_foreign, marks=needs_root), _open_to_all, _linked],
                         ids=["other-owner", "writable-by-others", "link"])
def test_a_planted_entry_with_matching_digests_is_made_again(where, plant, clean, tiny_models, reviews_csv, tmp_path,
                                                               monkeypatch):
    """Data changed by someone who also wrote its digests again: another user's entry, one others may write to, or a
    link to data elsewhere (left as it is) is not read."""
    cache = _cache_from(clean, tmp_path, monkeypatch)
    entry = _splits_entry(cache) if where == "splits" else _train_tokens(cache)
    if where == "splits":
        _rewrite(entry / "train.arrow", flip_labels)
    else:
        _rewrite(entry, reverse_ids)
    redigest(entry)
    reason = plant(entry)
    outside = {p: p.read_bytes() for p in tmp_path.glob("planted-*") if p.is_file()}
    outside.update({p: p.read_bytes() for d in tmp_path.glob("planted-*") if d.is_dir() for p in d.iterdir()})
    assert bool(outside) == (plant is _linked)
    results, lines = _rerun(tiny_models, reviews_csv, tmp_path)
    _said(lines, entry, reason)
    assert results == clean[0]
    _trusted(entry)
    assert all(p.read_bytes() == data for p, data in outside.items())  # a link's target: left as it was


@needs_root
def test_a_cache_folder_owned_by_another_user_is_one_clear_error(clean, reviews_csv, tiny_models, tmp_path,
                                                                  monkeypatch, capsys):
    from nlptransfer.cli import main

    cache = _cache_from(clean, tmp_path, monkeypatch)
    os.chown(cache / "splits", OTHER_UID, OTHER_UID)
    args = run_args(tiny_models["bert"], reviews_csv, tmp_path / "runs")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: the cache folder {cache / 'splits'} is owned by another user (uid {OTHER_UID}): "
                          "its entries cannot be trusted; set NLPTRANSFER_CACHE to a folder of your own")
    assert "Traceback" not in err and not (tmp_path / "runs").exists()


#: the real command line, its data stage streamed (as for a file over 16 MB), paused before it tokenizes (after the
#: data stage) and after optimizer step 2: at each point it writes `paused-<point>` in the folder argv[1] and waits for
#: `go-<point>` there; with KILL set, it is SIGKILLed in the data stage, as it writes the split files
PAUSER = textwrap.dedent("""
    import os, signal, sys, time
    from pathlib import Path
    from nlptransfer import pipeline, run as run_module
    from nlptransfer.data import streamed
    from nlptransfer.cli import main

    streamed.STREAM_BYTES = 0
    control = Path(sys.argv[1])
    if os.environ.get("KILL"):
        streamed._write_splits = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)

    def pause(point):
        (control / f"paused-{point}").touch()
        while not (control / f"go-{point}").exists():
            time.sleep(0.05)

    encode, append_log = pipeline.encode_splits, run_module.RunFolder.append_log
    def encode_splits(*args, **kwargs):
        pause("data")
        return encode(*args, **kwargs)
    def logged(self, record):
        append_log(self, record)
        if record.get("step") == 2 and "loss" in record:
            pause("step")
    pipeline.encode_splits, run_module.RunFolder.append_log = encode_splits, logged
    sys.exit(main(sys.argv[2:]))
""")


def _pauser(tmp_path: Path, args: list[str], **env: str) -> subprocess.Popen:
    script = tmp_path / "pauser.py"
    script.write_text(PAUSER)
    return subprocess.Popen([sys.executable, str(script), str(tmp_path), *map(str, args)], cwd=tmp_path,
                            env=cli_env(**env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _go(tmp_path: Path, on: bool = True) -> None:
    for point in ("data", "step"):
        (tmp_path / f"paused-{point}").unlink(missing_ok=True)
        (tmp_path / f"go-{point}").touch() if on else (tmp_path / f"go-{point}").unlink(missing_ok=True)


def _clear_when_paused(run: subprocess.Popen, tmp_path: Path, point: str, cache: Path) -> tuple[list[Path], str]:
    """The cache's entries (but digests) when `run` waits at `point` and what `cache --clear` then prints; then the
    run goes on."""
    try:
        deadline = time.monotonic() + 600
        while not (tmp_path / f"paused-{point}").exists():
            assert run.poll() is None and time.monotonic() < deadline, run.stdout.read()[-3000:]
            time.sleep(0.05)
        entries = sorted(p for kind in ("splits", "tokens") if (cache / kind).is_dir()
                         for p in (cache / kind).iterdir() if not p.name.endswith(".sha256.json"))
        cleared = cli(["cache", "--clear"], tmp_path, NLPTRANSFER_CACHE=str(cache))
        assert cleared.returncode == 0, cleared.stderr
        return entries, cleared.stdout
    finally:
        (tmp_path / f"go-{point}").touch()


def _kept(cache: Path, entries: list[Path]) -> str:
    """What --clear prints when a run holds `entries`."""
    return "".join([f"cleared {cache}: 0 entries removed, {len(entries)} kept:\n"]
                   + [f"  kept {p}: a run in progress uses it; clear again when it has finished\n" for p in entries])


def test_clear_during_a_run_keeps_what_the_run_holds_and_the_run_ends_as_a_clean_one(tiny_models, reviews_csv,
                                                                                     tmp_path):
    """--clear after the data stage, then during training: the run's split files and token ids stay, the run ends
    with the numbers of a run that had no cache; the next --clear removes them."""
    cache = tmp_path / "cache"
    args = lambda out, *extra: run_args(tiny_models["bert"], reviews_csv, tmp_path / out, *extra)
    _go(tmp_path)
    reference = _pauser(tmp_path, args("reference", "data.cache=false"), NLPTRANSFER_CACHE=str(cache))
    assert reference.wait(600) == 0, reference.stdout.read()[-3000:]
    _go(tmp_path, on=False)
    run = _pauser(tmp_path, args("runs"), NLPTRANSFER_CACHE=str(cache))
    try:
        splits, at_data = _clear_when_paused(run, tmp_path, "data", cache)
        held, at_step = _clear_when_paused(run, tmp_path, "step", cache)
    finally:
        _go(tmp_path)
    out = run.communicate(timeout=600)[0]
    assert run.returncode == 0, out[-3000:]
    assert len(splits) == 1 and at_data == _kept(cache, splits)
    assert len(held) == 4 and held[0] == splits[0] and at_step == _kept(cache, held)
    assert all(p.exists() for p in held)
    assert _results(next((tmp_path / "runs").iterdir())) == _results(next((tmp_path / "reference").iterdir()))
    after = cli(["cache", "--clear"], tmp_path, NLPTRANSFER_CACHE=str(cache))  # the run is over: nothing is held
    assert after.stdout == f"cleared {cache}: 4 entries removed\n" and not (cache / "splits").exists()


def test_a_killed_streamed_run_leaves_no_temporary_folder_behind(tiny_models, reviews_csv, tmp_path):
    """What a run SIGKILLed while it writes its split files leaves in the cache is removed by the next run, or by
    --clear; a temporary folder a live process writes is kept."""
    cache = tmp_path / "cache"
    args = run_args(tiny_models["bert"], reviews_csv, tmp_path / "runs", **{"training.epochs": 1})
    _go(tmp_path)

    def killed() -> list[Path]:
        run = _pauser(tmp_path, args, NLPTRANSFER_CACHE=str(cache), KILL="1")
        assert run.wait(600) == -9, run.stdout.read()[-3000:]
        left = list((cache / "splits").iterdir())
        assert len(left) == 1 and left[0].name.startswith(".") and (left[0] / "source-train.arrow").exists()
        return left

    killed()
    from nlptransfer.fsio import temp_path

    live = temp_path(cache / "splits" / "x")  # as a live process (this one) names what it writes
    live.mkdir()
    cleared = cli(["cache", "--clear"], tmp_path, NLPTRANSFER_CACHE=str(cache))
    assert cleared.stdout == (f"cleared {cache}: 1 entries removed, 1 kept:\n"
                              f"  kept {live}: a run in progress (process {os.getpid()}) is writing it\n")
    live.rmdir()
    left = killed()
    run = _pauser(tmp_path, args, NLPTRANSFER_CACHE=str(cache))
    assert run.wait(600) == 0, run.stdout.read()[-3000:]
    now = list((cache / "splits").iterdir())
    assert not left[0].exists() and len(now) == 1 and not now[0].name.startswith(".")


def test_a_changed_data_set_entry_is_written_again(tmp_path, monkeypatch):
    """A data set written as Parquet into the cache (datasets entries) is checked as the other entries are."""
    datasets = pytest.importorskip("datasets")
    import pandas as pd

    from nlptransfer.data.sources import data_settings

    monkeypatch.setenv("NLPTRANSFER_CACHE", str(tmp_path / "cache"))
    data = datasets.Dataset.from_dict({"text": ["a good film", "an awful film"] * 5,
                                       "label": ["positive", "negative"] * 5})
    first = data_settings(data)
    path = Path(first["data.train"])
    clean = pd.read_parquet(path)
    flipped = clean.assign(label=clean["label"].map({"positive": "negative", "negative": "positive"}))
    flipped.to_parquet(path)
    with captured_messages() as lines:
        again = data_settings(data)
    _said(lines, path.parent, "has a train.parquet whose sha256 differs from the one recorded when it was written")
    assert again == first and pd.read_parquet(path).equals(clean)
    _trusted(path.parent)
