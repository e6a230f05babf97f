"""Did transfer help? Statistics against known values; the verdict where transfer must lose (character codes,
frozen MiniLM) and must win (SST-2, full fine-tuning); the report files as a contract; the CLI; compare; and the
HTML page opened in a real headless browser."""
from __future__ import annotations

import base64
import csv
import html
import json
import math
import random
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

import nlptransfer
from nlptransfer.cli import main
from nlptransfer.report.baseline import stratified_subset, subset
from nlptransfer.report.compare import pareto
from nlptransfer.report.indicators import time_to_score
from nlptransfer.report.stats import (error_reduction, mcnemar, mcnemar_counts, paired_bootstrap, verdict,
                                      Interval, McNemar)

from .conftest import SHARED_SST2, captured_messages, quick_overrides, write_csv

VERDICTS = {"positive transfer", "negative transfer", "no clear difference"}
KPIS = {"accuracy", "macro_f1", "train_seconds", "latency_ms_p50", "latency_ms_p95", "throughput_per_s",
        "error_reduction_percent", "cost_per_1000", "trainable_parameters", "artifact_bytes"}
FIGURES = {"fig-indicators", "fig-learning_curve", "fig-training_curves", "fig-confusion", "fig-reliability"}


# ---------------------------------------------------------------- statistics against known values


def test_mcnemar_exact_binomial_for_few_discordant_rows():
    result = mcnemar_counts(10, 2)
    assert result.method == "exact binomial" and result.statistic is None
    # two-sided: 2 * P(X <= 2), X ~ Binomial(12, 1/2) = 2 * (1 + 12 + 66) / 4096
    assert result.p_value == pytest.approx(79 / 2048, abs=1e-15)
    assert f"{result.p_value:.5f}" == "0.03857"
    assert mcnemar_counts(2, 10).p_value == result.p_value
    assert mcnemar_counts(0, 0).p_value == 1.0 and mcnemar_counts(6, 6).p_value == 1.0
    assert mcnemar_counts(0, 6).p_value == pytest.approx(2 / 64)
    scipy_stats = pytest.importorskip("scipy.stats")
    for b, c in ((10, 2), (7, 1), (12, 12), (0, 24)):
        assert mcnemar_counts(b, c).p_value == pytest.approx(scipy_stats.binomtest(min(b, c), b + c, 0.5).pvalue)


def test_mcnemar_chi_square_with_continuity_correction_for_many_discordant_rows():
    result = mcnemar_counts(30, 12)
    assert result.method == "chi-square with continuity correction"
    assert result.statistic == pytest.approx((30 - 12 - 1) ** 2 / 42)
    assert result.p_value == pytest.approx(0.008711, abs=1e-6)  # chi2.sf(6.881, 1), from tables
    assert mcnemar_counts(13, 12).method.startswith("chi-square")  # 25 discordant rows: chi-square
    assert mcnemar_counts(12, 12).method == "exact binomial"  # 24: exact
    scipy_stats = pytest.importorskip("scipy.stats")
    for b, c in ((30, 12), (13, 12), (175, 90), (100, 140)):
        r = mcnemar_counts(b, c)
        assert r.p_value == pytest.approx(scipy_stats.chi2.sf((abs(b - c) - 1) ** 2 / (b + c), 1), rel=1e-9)
    # from paired outcomes: b counts rows only A got right, c rows only B got right
    a = [1] * 30 + [0] * 12 + [1] * 50 + [0] * 8
    b = [0] * 30 + [1] * 12 + [1] * 50 + [0] * 8
    assert mcnemar(a, b) == result


def test_paired_bootstrap_matches_a_numpy_reference_at_the_same_seed():
    rng = np.random.default_rng(123)
    a, b = (rng.random(200) < 0.8).astype(float), (rng.random(200) < 0.7).astype(float)
    got = paired_bootstrap(a, b, resamples=1000, seed=7, level=0.95, chunk=64)  # chunked draws
    reference = np.random.default_rng(7).integers(0, 200, size=(1000, 200))  # one draw
    means = (a - b)[reference].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    assert (got.low, got.high) == (low, high)
    assert got.estimate == pytest.approx((a - b).mean())
    # and close to the normal approximation of a paired difference of means
    se = (a - b).std(ddof=1) / math.sqrt(200)
    assert got.low == pytest.approx((a - b).mean() - 1.96 * se, abs=0.012)
    assert got.high == pytest.approx((a - b).mean() + 1.96 * se, abs=0.012)
    assert paired_bootstrap(a, b, 1000, seed=8) != got  # the seed matters
    assert paired_bootstrap(a, b, 1000, seed=7) == got  # and fixes the result
    same = paired_bootstrap(np.ones(5), np.zeros(5), 500, seed=0)  # every row +1: the interval is the point
    assert (same.estimate, same.low, same.high) == (1.0, 1.0, 1.0)


def test_error_reduction_and_the_verdict_rule():
    assert error_reduction(0.9, 0.8) == pytest.approx(50.0)
    assert error_reduction(0.7, 0.8) == pytest.approx(-50.0)
    assert error_reduction(0.9, 1.0) is None
    sig, not_sig = McNemar(20, 2, 12.0, 0.001, "x"), McNemar(5, 3, None, 0.7, "x")

    def interval(low, high):
        return Interval((low + high) / 2, low, high, 0.95, 1000, 0)

    assert verdict(interval(0.02, 0.1), sig) == "positive transfer"
    assert verdict(interval(-0.1, -0.02), sig) == "negative transfer"
    assert verdict(interval(-0.02, 0.1), sig) == "no clear difference"
    assert verdict(interval(0.02, 0.1), not_sig) == "no clear difference"
    assert verdict(interval(0.02, 0.1), McNemar(20, 2, 12.0, 0.03, "x"), alpha=0.01) == "no clear difference"


def test_time_to_the_baseline_score_from_the_log():
    log = [{"step": 1, "loss": 0.7}, {"step": 5, "eval": {"accuracy": 0.6}}, {"step": 10, "eval": {"accuracy": 0.8}},
           {"step": 20, "eval": {"accuracy": 0.85}}]
    hit = time_to_score(log, 0.75, "accuracy", train_seconds=40.0, steps=20, examples_seen=640)
    assert (hit["reached"], hit["step"], hit["seconds"], hit["examples"]) == (True, 10, 20.0, 320)
    assert hit["timing"] == "interpolated by step"
    never = time_to_score(log, 0.9, "accuracy", 40.0, 20, 640)
    assert never["reached"] is False and never["seconds"] is None and never["best"] == 0.85
    assert time_to_score(log, None, "accuracy", 40.0, 20, 640)["reached"] is None  # no validation split
    timed = [{**r, "seconds": r["step"] * 3.0} for r in log]
    assert time_to_score(timed, 0.75, "accuracy", 40.0, 20, 640)["seconds"] == 30.0


def test_stratified_subsets_keep_class_shares_and_are_seeded():
    labels = [0] * 80 + [1] * 20
    chosen = stratified_subset(labels, 0.25, seed=1)
    assert [labels[i] for i in chosen].count(0) == 20 and [labels[i] for i in chosen].count(1) == 5
    assert chosen == stratified_subset(labels, 0.25, seed=1) != stratified_subset(labels, 0.25, seed=2)
    assert stratified_subset(labels, 0.01, seed=1) and {labels[i] for i in stratified_subset(labels, 0.01, 1)} == {0, 1}
    assert stratified_subset(labels, 1.0, seed=1) == list(range(100))


def test_pareto_best_rows():
    rows = [{"accuracy": 0.9, "p": 100, "t": 10}, {"accuracy": 0.8, "p": 10, "t": 1},
            {"accuracy": 0.7, "p": 50, "t": 5}, {"accuracy": 0.9, "p": 200, "t": 2}]
    assert pareto(rows, "accuracy", ("p",)) == [True, True, False, False]
    assert pareto(rows, "accuracy", ("t",)) == [False, True, False, True]
    assert pareto(rows, "accuracy", ("p", "t")) == [True, True, False, True]


# ---------------------------------------------------------------- the report of a tiny run


@pytest.fixture(scope="module")
def tiny_report(tiny_models, reviews_csv, tmp_path_factory):
    """A finished tiny-model run with its report (learning curve at 20%, 50%, 100%) and its console lines."""
    out = tmp_path_factory.mktemp("report_run")
    with captured_messages() as lines:
        run = nlptransfer.finetune("sentiment-minilm", data=str(reviews_csv), overrides=quick_overrides(
            tiny_models["bert"], out, **{"report.enabled": True, "report.learning_curve": [0.2, 0.5, 1.0],
                                         "report.latency_texts": 10}))
    return run, lines, out


def _predictions(run_path: Path) -> list[dict]:
    with open(run_path / "predictions.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_report_files_numbers_and_console(tiny_report):
    run, lines, out = tiny_report
    folder = run.path / "report"
    assert {p.name for p in folder.iterdir()} == {"report.html", "report.md", "report.json"}
    assert [p.name for p in run.path.iterdir() if p.name.startswith(".")] == []  # no temp files left behind
    assert [p.name for p in out.iterdir()] == ["sentiment-minilm"]  # learning-curve runs leave nothing behind
    report = json.loads((folder / "report.json").read_text())
    metrics, preds = run.metrics, _predictions(run.path)

    # the cost line comes before training starts, the summary after
    plan = next(i for i, line in enumerate(lines) if line.startswith("report: 2 extra transfer training(s)"))
    assert plan < next(i for i, line in enumerate(lines) if "trainable of" in line)
    assert any(line.startswith("## Did transfer help? **") for line in lines[plan:])
    assert report["cost"] == {"transfer_trainings": 2, "training_rows": 20 + 48, "baseline_fits": 9,
                              "encoded_texts": 96 + 12 + 2, "probe_fits": 1}

    assert report["verdict"] in VERDICTS and "McNemar" in report["rule"]
    assert report["rows"] == {"train": 96, "validation": 12, "test": 12}
    final = report["final"]
    assert final["transfer"]["accuracy"] == metrics["test"]["accuracy"]
    n, d, mc = final["transfer"]["n"], final["difference"], final["mcnemar"]
    assert d["estimate"] == pytest.approx(final["transfer"]["accuracy"] - final["baseline"]["accuracy"])
    assert (mc["b"] - mc["c"]) == round(d["estimate"] * n) and d["low"] <= d["estimate"] <= d["high"]
    assert (d["resamples"], d["seed"], d["level"]) == (2000, 42, 0.95)

    kpi = report["kpi"]
    assert set(kpi["transfer"]) >= KPIS and set(kpi["baseline"]) >= KPIS
    t = kpi["transfer"]
    assert t["trainable_parameters"] == metrics["trainable_parameters"] and t["train_seconds"] == metrics["train_seconds"]
    assert t["artifact_bytes"] == sum(p.stat().st_size for p in (run.path / "model").rglob("*") if p.is_file())
    assert 0 < t["latency_ms_p50"] <= t["latency_ms_p95"] and t["throughput_per_s"] > 0
    assert t["cost_per_1000"] == pytest.approx(0.5 * 1000 / t["throughput_per_s"] / 3600)
    assert kpi["baseline"]["trainable_parameters"] > 0 and kpi["baseline"]["artifact_bytes"] > 0

    k = report["knowledge_alone"]
    assert k["label_texts"] == {"negative": "negative", "positive": "positive"}
    assert 0 <= k["zero_shot"]["accuracy"] <= 1 and 0 <= k["linear_probe"]["accuracy"] <= 1
    assert report["time_to_baseline"]["reached"] in (True, False)
    assert [e["step"] for e in report["time_to_baseline"]["curve"]] == [12, 24, 36]

    curve = report["learning_curve"]
    assert [(p["fraction"], p["train_rows"]) for p in curve] == [(0.2, 20), (0.5, 48), (1.0, 96)]
    assert curve[-1]["transfer"]["accuracy"] == metrics["test"]["accuracy"]
    assert curve[-1]["baseline"]["accuracy"] == final["baseline"]["accuracy"]

    wrong = {r["text"] for r in preds if r["gold"] != r["predicted"]}
    mistakes = report["mistakes"]
    assert {m["text"] for m in mistakes} <= wrong and len(mistakes) == min(10, len(wrong))
    assert [m["confidence"] for m in mistakes] == sorted((m["confidence"] for m in mistakes), reverse=True)

    md = (folder / "report.md").read_text()
    assert f"**{report['verdict']}**" in md and "| KPI | transfer | baseline |" in md
    assert "## Learning curve" in md and "## Most confident mistakes" in md
    page = (folder / "report.html").read_text()
    assert set(re.findall(r'<img id="(fig-[a-z_]+)"', page)) == FIGURES
    assert re.findall(r'(?:src|href)="(?!data:image/png;base64,)', page) == []  # self-contained


@pytest.mark.slow
def test_learning_curve_runs_see_exactly_the_subset_and_the_same_validation_and_test(tiny_report, tmp_path):
    from nlptransfer.pipeline import load_data
    from nlptransfer.recipe import load
    from nlptransfer.report.curve import split_recipe

    run, _, _ = tiny_report
    recipe = load(str(run.path / "recipe.yaml"))
    splits = load_data(recipe)
    part = subset(splits.train, stratified_subset(splits.train.labels, 0.2, recipe.training.seed))
    again = load_data(split_recipe(recipe, splits, part, tmp_path, "fraction-0.2"))
    assert (again.train.texts, again.train.labels) == (part.texts, part.labels)
    for name in ("validation", "test"):
        assert (getattr(again, name).texts, getattr(again, name).labels) == \
               (getattr(splits, name).texts, getattr(splits, name).labels)
    assert again.label_map == splits.label_map


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.skip("chromium is not installed (apt-get install -y chromium): the browser test needs it")
    return found


PROBE = """<script>
window.__errors = [];
window.addEventListener('error', e => window.__errors.push(String(e.message || (e.target && e.target.src) || 'error')), true);
window.addEventListener('load', () => {
  const probe = document.createElement('pre');
  probe.id = 'probe';
  probe.textContent = JSON.stringify({errors: window.__errors, images: Array.from(document.images).map(
    i => ({id: i.id, complete: i.complete, width: i.naturalWidth, height: i.naturalHeight}))});
  document.body.appendChild(probe);
});
</script>"""


@pytest.mark.slow
def test_html_report_loads_in_a_headless_browser_with_every_figure_drawn(tiny_report, tmp_path):
    browser = _chromium()
    page = (tiny_report[0].path / "report" / "report.html").read_text(encoding="utf-8")
    probed = tmp_path / "report.html"  # the report itself has no script: a copy gets the probe
    probed.write_text(page.replace("<head>", "<head>" + PROBE, 1), encoding="utf-8")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
             "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
             "--enable-logging=stderr", "--v=0", "--window-size=1100,3000"]
    done = subprocess.run([browser, *flags, "--virtual-time-budget=10000", "--dump-dom", probed.as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    found = re.search(r'<pre id="probe">(.*?)</pre>', done.stdout, flags=re.S)
    assert found, "the page's load event never ran: " + done.stdout[:500]
    probe = json.loads(html.unescape(found.group(1)))
    assert probe["errors"] == []
    assert {i["id"] for i in probe["images"]} == FIGURES
    for image in probe["images"]:
        assert image["complete"] and image["width"] > 100 and image["height"] > 100, image
    assert "Uncaught" not in done.stderr and "Failed to load resource" not in done.stderr
    shot = tmp_path / "shot.png"
    done = subprocess.run([browser, *flags, f"--screenshot={shot}", (tiny_report[0].path / "report" / "report.html").as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


# ---------------------------------------------------------------- the command line


@pytest.mark.slow
def test_cli_report_of_an_existing_run_with_settings(tiny_report, tmp_path, capsys):
    run = tmp_path / "run"  # a copy: the other tests read the fixture's report
    shutil.copytree(tiny_report[0].path, run)
    code = main(["report", str(run), "report.price_per_hour=2", "report.learning_curve=[1.0]", "report.mistakes=3",
                 "report.latency_texts=5"])
    printed = capsys.readouterr().out
    assert code == 0
    assert printed.index("report: 0 extra transfer training(s)") < printed.index("## Did transfer help? **")
    report = json.loads((run / "report" / "report.json").read_text())
    assert report["settings"]["price_per_hour"] == 2.0 and len(report["learning_curve"]) == 1
    t = report["kpi"]["transfer"]
    assert t["cost_per_1000"] == pytest.approx(2 * 1000 / t["throughput_per_s"] / 3600) and len(report["mistakes"]) <= 3
    assert f"report: {run / 'report' / 'report.html'}" in printed


@pytest.mark.parametrize("args, message", [
    (["report", "/no/such/run"], "run folder not found: /no/such/run"),
    (["report", "{run}", "training.lr=1"], "only report.* settings can change for a finished run"),
    (["report", "{run}", "report.learning_curve=[0, 1.5]"], "report.learning_curve must be fractions in (0, 1]"),
    (["run", "sentiment-minilm", "--data", "{data}", "--report", "data.test_fraction=0"],
     "report.enabled needs a test split"),
])
@pytest.mark.slow
def test_cli_report_errors(args, message, tiny_report, reviews_csv, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = main([a.replace("{run}", str(tiny_report[0].path)).replace("{data}", str(reviews_csv)) for a in args])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and message in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_cli_run_with_report_flag(tiny_models, reviews_csv, tmp_path, capsys):
    code = main(["run", "sentiment-minilm", "--data", str(reviews_csv), "--report", f"model={tiny_models['bert']}",
                 f"output.dir={tmp_path}", "training.epochs=1", "training.batch_size=8", "training.progress=false",
                 "data.max_length=32", "report.learning_curve=[1.0]", "report.latency_texts=5"])
    printed = capsys.readouterr().out
    assert code == 0
    assert printed.index("report: 0 extra transfer training(s)") < printed.index("trainable of")
    assert (tmp_path / "sentiment-minilm" / "report" / "report.html").exists()
    assert "| trainable parameters |" in printed


@pytest.mark.slow
def test_cli_compare_strategies_on_the_same_splits(tiny_models, reviews_csv, tmp_path, capsys):
    code = main(["compare", "--data", str(reviews_csv), "--strategies", "head,full,lora", "sentiment-minilm",
                 f"model={tiny_models['bert']}", f"output.dir={tmp_path}", "training.epochs=1",
                 "training.batch_size=8", "data.max_length=32"])
    printed = capsys.readouterr().out
    assert code == 0
    folder = tmp_path / "compare-sentiment-minilm"
    assert {p.name for p in folder.iterdir()} == {"head", "full", "lora", "compare.json", "compare.md", "compare.html"}
    result = json.loads((folder / "compare.json").read_text())
    rows = result["rows"]
    assert [r["name"] for r in rows] == ["head", "full", "lora", "tf-idf baseline"]
    texts = [[p["text"] for p in _predictions(folder / s)] for s in ("head", "full", "lora")]
    assert texts[0] == texts[1] == texts[2] and len(texts[0]) == result["rows_used"]["test"] == 12
    saved = [yaml.safe_load((folder / s / "recipe.yaml").read_text()) for s in ("head", "full", "lora")]
    assert [r["training"]["seed"] for r in saved] == [42, 42, 42]
    assert saved[0]["training"]["lr"] is None  # head trains at its own default rate, not the recipe's 5e-5
    for r in rows[:3]:
        m = json.loads((folder / r["name"] / "metrics.json").read_text())
        assert (r["accuracy"], r["trainable_parameters"]) == (m["test"]["accuracy"], m["trainable_parameters"])
        assert r["warnings"] == m["warnings"]  # each run's warnings travel with its row
    assert rows[1]["trainable_parameters"] > rows[2]["trainable_parameters"] > rows[0]["trainable_parameters"]
    for key, costs in (("trainable_parameters", ("trainable_parameters",)), ("train_seconds", ("train_seconds",)),
                       ("both", ("trainable_parameters", "train_seconds"))):
        assert [r["pareto"][key] for r in rows] == pareto(rows, "accuracy", costs)
    assert any(r["pareto"]["both"] for r in rows)
    image = re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)", (folder / "compare.html").read_text()).group(1)
    assert base64.b64decode(image)[:4] == b"\x89PNG"
    assert "| strategy | accuracy |" in printed and "compare: 3 trainings (head, full, lora)" in printed


# ---------------------------------------------------------------- the verdict where transfer must lose or win


def sku_rows(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """Product codes SKU-dddd-L, 'flagged' exactly when the digits contain "37": a character bigram that
    tf-idf character n-grams see directly and that WordPiece pieces of a frozen encoder scatter."""
    rng, rows, seen = random.Random(seed), [], set()
    while len(rows) < n:
        flagged = len(rows) % 2 == 0
        digits = "".join(rng.choice("0123456789") for _ in range(4))
        code = f"SKU-{digits}-{rng.choice('ABCDEFGHJKLMNPQRSTUVWXYZ')}"
        if ("37" in digits) == flagged and code not in seen:
            seen.add(code)
            rows.append((code, "flagged" if flagged else "normal"))
    return rows


def _needs_embedded_model():
    from nlptransfer.errors import ModelNotFound
    from nlptransfer.models import embedded_path

    try:
        embedded_path()
    except ModelNotFound as e:
        pytest.skip(str(e))


@pytest.mark.slow
def test_character_codes_with_a_frozen_pretrained_head_are_negative_transfer(tmp_path):
    _needs_embedded_model()
    data = write_csv(tmp_path / "codes.csv", sku_rows(800))
    run = nlptransfer.finetune("sentiment-minilm-head", data=str(data), overrides={
        "task": "classification", "output.dir": str(tmp_path / "runs"), "training.progress": False,
        "report.enabled": True, "report.learning_curve": [0.2, 1.0], "report.latency_texts": 10})
    report = json.loads((run.path / "report" / "report.json").read_text())
    final = report["final"]
    assert report["verdict"] == "negative transfer", final
    assert final["baseline"]["accuracy"] >= 0.95 and final["difference"]["high"] < 0
    assert final["mcnemar"]["p_value"] < 0.05
    reduction = final["error_reduction_percent"]  # None when the baseline made no error at all
    assert reduction is None or reduction < 0
    assert report["time_to_baseline"]["reached"] is False
    assert all(p["baseline"]["accuracy"] > p["transfer"]["accuracy"] for p in report["learning_curve"])


@pytest.mark.slow
def test_full_finetuning_on_1000_sst2_sentences_is_positive_transfer(tmp_path, capsys):
    if not (SHARED_SST2 / "train_2k.tsv").exists():
        pytest.skip(f"SST-2 data not found at {SHARED_SST2}: the real-quality test needs ../shared/data/sst2")
    _needs_embedded_model()
    lines = (SHARED_SST2 / "train_2k.tsv").read_text(encoding="utf-8").splitlines(keepends=True)
    data = tmp_path / "sst2_1000.tsv"
    data.write_text("".join(lines[:1001]), encoding="utf-8")  # header + the first 1,000 sentences
    code = main(["run", "sentiment-minilm", "--data", str(data), "--report", f"data.test={SHARED_SST2 / 'dev.tsv'}",
                 "data.test_fraction=0", "training.eval_every=10", "training.progress=false",
                 f"output.dir={tmp_path / 'runs'}", "report.learning_curve=[0.2, 1.0]",
                 "labels.descriptions={0: negative, 1: positive}"])
    printed = capsys.readouterr().out
    assert code == 0
    report = json.loads((tmp_path / "runs" / "sentiment-minilm" / "report" / "report.json").read_text())
    final = report["final"]
    assert report["rows"] == {"train": 900, "validation": 100, "test": 872}  # the same rows for both
    assert report["verdict"] == "positive transfer", final
    assert final["difference"]["low"] > 0 and final["mcnemar"]["p_value"] < 0.05
    assert final["transfer"]["accuracy"] >= 0.75 and final["error_reduction_percent"] > 10
    assert report["knowledge_alone"]["linear_probe"]["accuracy"] >= 0.7
    assert report["knowledge_alone"]["zero_shot"]["accuracy"] > 0.55
    assert report["time_to_baseline"]["reached"] is True
    assert "## Did transfer help? **positive transfer**" in printed
    print("\n".join(line for line in printed.splitlines() if not line.startswith(("train:", "validation:"))))


def test_compare_lists_each_runs_warnings_under_its_table():
    from nlptransfer.report.compare import _html, _markdown

    row = {"kind": "transfer", "accuracy": 0.5, "macro_f1": 0.33, "trainable_parameters": 10, "train_seconds": 1.0,
           "artifact_bytes": 100, "pareto": {"trainable_parameters": True, "train_seconds": True, "both": True}}
    result = {"recipe": "r", "data": "d.csv", "metric": "accuracy", "seed": 42, "rows_used": {"train": 8, "test": 4},
              "rows": [{**row, "name": "head", "warnings": ["test: the model predicts 'a' for all 4 rows <sic>"]},
                       {**row, "name": "full", "warnings": []}]}
    markdown = _markdown(result)
    assert markdown.endswith("Warnings:\n\n- head: test: the model predicts 'a' for all 4 rows &lt;sic&gt;\n")
    assert "<li>head: test: the model predicts &#x27;a&#x27; for all 4 rows &lt;sic&gt;</li>" in _html(result, "")
    result["rows"][0]["warnings"] = []
    assert "Warnings" not in _markdown(result) and "Warnings" not in _html(result, "")
