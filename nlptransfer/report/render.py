"""The report as one self-contained HTML page (figures inline as base64 PNG), a Markdown summary and JSON."""
from __future__ import annotations

import html
import json

import numpy as np

from ..markdown import escape, table
from ..metrics import expected_calibration_error
from ..fsio import atomic_dir
from ..run import RunFolder
from . import figures
from .adaptation import adaptation_lines

KPI_ROWS = [  # (key, label, format); a report shows the rows its KPIs hold
    ("micro_f1", "micro-F1", "{:.4f}"),
    ("accuracy", "accuracy", "{:.4f}"),
    ("macro_f1", "macro-F1", "{:.4f}"),
    ("train_seconds", "training time (s)", "{:.1f}"),
    ("latency_ms_p50", "latency per text p50 (ms)", "{:.2f}"),
    ("latency_ms_p95", "latency per text p95 (ms)", "{:.2f}"),
    ("throughput_per_s", "throughput (texts/s, batched)", "{:,.0f}"),
    ("error_reduction_percent", "error reduction vs baseline (%)", "{:+.1f}"),
    ("cost_per_1000", "cost per 1,000 predictions ($)", "{:.6f}"),
    ("trainable_parameters", "trainable parameters", "{:,}"),
    ("artifact_bytes", "artifact size (bytes)", "{:,}"),
]


def _fmt(value, pattern: str) -> str:
    return "—" if value is None else pattern.format(value)


def _seconds(value) -> str:
    return "—" if value is None else f"{value:.1f} s"


def kpi_table(kpi: dict) -> list[list[str]]:
    """Rows [KPI, transfer, baseline] as display strings."""
    return [[label, _fmt(kpi["transfer"].get(key), f), _fmt(kpi["baseline"].get(key), f)] for key, label, f in KPI_ROWS
            if key in kpi["transfer"]]


def _name(metric: str) -> str:
    """A score's name as the report writes it (micro_f1 -> micro-F1)."""
    return metric.replace("_f1", "-F1")


def _zero_shot(k: dict, m: str) -> str:
    return f"zero-shot {m} {k['zero_shot'][m]:.4f}" if k.get("zero_shot") is not None else \
        f"no zero-shot ({k.get('zero_shot_left_out', 'left out')})"


def _final_line(report: dict) -> str:
    """Indicator 3 of a report without McNemar's test (multi-label): the verdict's score and its interval alone."""
    f = report["final"]
    d, reduction = f["difference"], f["error_reduction_percent"]
    main, other = report.get("scores", ["accuracy", "macro_f1"])[:2]
    return (f"3. Final performance: test {_name(main)} {f['transfer'][main]:.4f} with transfer vs "
            f"{f['baseline'][main]:.4f} without ({_name(other)} {f['transfer'][other]:.4f} vs "
            f"{f['baseline'][other]:.4f}); difference {d['estimate']:+.4f} ({d['level']:.0%} paired bootstrap "
            f"interval over texts {d['low']:+.4f} to {d['high']:+.4f}, {d['resamples']} resamples, seed {d['seed']}); "
            "no McNemar test (it pairs right/wrong outcomes; a multi-label text can be partly right); error reduction "
            f"on {_name(main)} " + ("— (the baseline made no errors)" if reduction is None else f"{reduction:+.1f}%"))


def indicator_lines(report: dict, esc=str) -> list[str]:
    """The three indicators, one sentence each (user strings passed through `esc`)."""
    m, k, t, f = report["metric"], report["knowledge_alone"], report["time_to_baseline"], report["final"]
    d, mc = f["difference"], f["mcnemar"]
    if t["reached"] is None:
        timing = f"not measurable ({t['why']})"
    elif t["reached"]:
        timing = (f"reached the baseline's validation {m} {t['target']:.4f} at step {t['step']} after "
                  f"{_seconds(t['seconds'])} and {t['examples']:,} examples ({t['timing']}); the baseline trained in "
                  f"{_seconds(t['baseline_train_seconds'])}")
    else:
        timing = (f"never reached the baseline's validation {m} {t['target']:.4f} (best {t['best']:.4f}); "
                  f"the baseline trained in {_seconds(t['baseline_train_seconds'])}")
    first = [f"1. Transferred knowledge alone (frozen {esc(k['encoder'])}, mean-pooled): {_zero_shot(k, m)}, "
             f"linear probe {m} {k['linear_probe'][m]:.4f}", f"2. Time: transfer {timing}"]
    if mc is None:
        return [*first, _final_line(report)]
    stat = f", chi-square {mc['statistic']:.3f}" if mc["statistic"] is not None else ""
    reduction = f["error_reduction_percent"]
    return [
        *first,
        f"3. Final performance: test accuracy {f['transfer']['accuracy']:.4f} with transfer vs "
        f"{f['baseline']['accuracy']:.4f} without; difference {d['estimate']:+.4f} "
        f"({d['level']:.0%} paired bootstrap interval {d['low']:+.4f} to {d['high']:+.4f}, {d['resamples']} "
        f"resamples, seed {d['seed']}); McNemar b={mc['b']} c={mc['c']}, p={mc['p_value']:.4g} ({mc['method']}{stat}); "
        f"error reduction {'— (the baseline made no errors)' if reduction is None else f'{reduction:+.1f}%'}",
    ]


def _curve_rows(report: dict) -> list[list[str]]:
    m = report["metric"]
    return [[f"{p['fraction']:.0%}", str(p["train_rows"]), f"{p['transfer'][m]:.4f}", f"{p['baseline'][m]:.4f}"]
            for p in report["learning_curve"]]


def summary_markdown(report: dict) -> str:
    """The short summary printed after a run: verdict, rule, indicators and the KPI table."""
    return "\n".join([
        f"## Did transfer help? **{report['verdict']}**",
        "",
        *[f"> Caveat: {escape(note)}\n" for note in report.get("caveats", [])],
        f"{escape(report['model'])} ({escape(report['strategy'])}) against {report['baseline']['method']}, on the same splits "
        f"(train {report['rows']['train']}, test {report['rows']['test']} rows).",
        "",
        f"Rule: {report['rule']}.",
        "",
        *indicator_lines(report, escape),
        "",
        table(["KPI", "transfer", "baseline"], kpi_table(report["kpi"])),
        "",
        f"Cost per 1,000 predictions at ${report['kpi']['price_per_hour']:g} per machine-hour, at the measured "
        "batched throughput on this machine.",
        *(["", *adaptation_lines(report["adaptation"])] if "adaptation" in report else []),
    ])


PER_LABEL_HEADER = ["label", "threshold (transfer / baseline)", "precision", "recall", "F1", "support"]


def per_label_rows(final: dict) -> list[list[str]]:
    """A multi-label report's per-label table (in place of confusion matrices): transfer / baseline in each cell."""
    t, b = final["per_label"]["transfer"], final["per_label"]["baseline"]
    return [[name, f"{t[name]['threshold']:g} / {b[name]['threshold']:g}",
             *[f"{t[name][k]:.3f} / {b[name][k]:.3f}" for k in ("precision", "recall", "f1")], str(t[name]["support"])]
            for name in t]


def mistake_table(report: dict) -> tuple[list[str], list[list[str]]]:
    """The most confident mistakes: header and rows (a multi-label mistake is one wrong label decision)."""
    mistakes = report["mistakes"]
    if mistakes and "label" in mistakes[0]:
        return (["text", "label", "error", "P(label)", "threshold", "gold labels", "predicted labels"],
                [[m["text"], m["label"], m["error"], f"{m['probability']:.3f}",
                  f"{m['threshold']:g}", m["gold"], m["predicted"]] for m in mistakes])
    return (["text", "gold", "predicted", "confidence", "P(gold)"],
            [[m["text"], m["gold"], m["predicted"], f"{m['confidence']:.3f}", f"{m['gold_probability']:.3f}"]
             for m in mistakes])


def full_markdown(report: dict) -> str:
    """report.md: the summary plus the learning curve and the most confident mistakes."""
    header, mistakes = mistake_table(report)
    if "label" not in header:  # as it always was: no P(gold) column in Markdown
        header, mistakes = header[:4], [row[:4] for row in mistakes]
    per_label = (["## Per label (test; transfer / baseline)", "",
                  table(PER_LABEL_HEADER, per_label_rows(report["final"])), ""] if "per_label" in report["final"] else [])
    return "\n".join([
        f"# Transfer report: {escape(report['run'])}", "", summary_markdown(report), "", *per_label,
        "## Learning curve (test, stratified seeded subsets of train)", "",
        table(["fraction", "train rows", "transfer", "baseline"], _curve_rows(report)), "",
        "## Most confident mistakes (likely label errors)", "",
        table(header, mistakes) if mistakes else "none", "",
        *_slice_markdown(report),
        "Figures: report.html. Numbers: report.json.", "",
    ])


SLICE_HEADER = ["value", "rows", "accuracy", "macro-F1", "recall per class"]
LABEL_SET_SLICE_HEADER = ["value", "rows", "micro-F1", "macro-F1"]


def slice_header(result: dict) -> list[str]:
    return SLICE_HEADER if all("accuracy" in s for s in result["slices"].values()) else LABEL_SET_SLICE_HEADER


def slice_rows(result: dict) -> list[list[str]]:
    """Display rows of one slice column's metrics."""
    if slice_header(result) is LABEL_SET_SLICE_HEADER:
        return [[value, str(s["n"]), f"{s['micro_f1']:.4f}", f"{s['macro_f1']:.4f}"]
                for value, s in result["slices"].items()]
    return [[value, str(s["n"]), f"{s['accuracy']:.4f}", f"{s['macro_f1']:.4f}",
             ", ".join(f"{k} {v:.2f}" for k, v in s["recall"].items())] for value, s in result["slices"].items()]


def gap_line(result: dict) -> str:
    """The largest accuracy gap between two slices of a column, with its interval."""
    g = result["gap"]
    if g is None:
        return "one value only: no gap to measure"
    if "level" not in g:  # multi-label slices: the gap without an interval
        return f"largest {_name(g['metric'])} gap: {g['between'][0]!r} vs {g['between'][1]!r} {g['estimate']:+.4f}"
    return (f"largest accuracy gap: {g['between'][0]!r} vs {g['between'][1]!r} {g['estimate']:+.4f} "
            f"({g['level']:.0%} bootstrap interval {g['low']:+.4f} to {g['high']:+.4f}, {g['resamples']} resamples)")


def _slice_markdown(report: dict) -> list[str]:
    lines = []
    for result in report.get("slices", []):
        lines += [f"## Test metrics by {escape(result['column'])}", "", table(slice_header(result), slice_rows(result)), "",
                  escape(gap_line(result)), ""]
    return lines


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _img(name: str, data: str, alt: str) -> str:
    return f'<figure><img id="fig-{name}" alt="{html.escape(alt)}" src="data:image/png;base64,{data}"></figure>'


STYLE = """body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}
th{background:#f3f3f3}.verdict{font-size:1.4em;padding:.5em;border-radius:6px;background:#eef}
img{max-width:100%}figure{margin:1em 0}code{background:#f3f3f3;padding:0 3px}"""


def _adaptation_html(section: dict) -> str:
    heading, *items = [line for line in adaptation_lines(section) if line]
    return (f"<h2>{html.escape(heading[3:])}</h2><ul>" + "".join(
        f"<li>{html.escape(item[2:]).replace('**', '')}</li>" for item in items) + "</ul>")


def html_page(report: dict, images: dict[str, str]) -> str:
    """The whole report as one HTML page with no external resources."""
    e = html.escape
    header, mistakes = mistake_table(report)
    final = report["final"]
    if "confusion" in final:
        table_html = "<h2>Confusion matrices (test)</h2>" + _img("confusion", images["confusion"], "confusion matrices")
    else:
        table_html = ("<h2>Per label (test; transfer / baseline)</h2>"
                      + _html_table(PER_LABEL_HEADER, per_label_rows(final)))
    sections = [
        f"<h1>Did transfer help?</h1><p class='verdict'>Verdict: <b>{e(report['verdict'])}</b></p>"
        + "".join(f"<p class='caveat'><b>Caveat:</b> {e(note)}</p>" for note in report.get("caveats", [])),
        f"<p>{e(report['model'])} ({e(report['strategy'])}) against {e(report['baseline']['method'])} on the same "
        f"splits: {e(', '.join(f'{k} {v}' for k, v in report['rows'].items()))} rows. Run: <code>{e(report['run'])}</code>, "
        f"{e(report['created'])}.</p>",
        f"<p><b>Rule:</b> {e(report['rule'])}.</p>",
        "<h2>Indicators</h2><ol>" + "".join(f"<li>{e(line[3:])}</li>" for line in indicator_lines(report)) + "</ol>",
        _img("indicators", images["indicators"], "test score of zero-shot, probe, baseline and transfer"),
        "<h2>KPIs</h2>" + _html_table(["KPI", "transfer", "baseline"], kpi_table(report["kpi"])),
        f"<p>Cost at ${report['kpi']['price_per_hour']:g} per machine-hour at the measured batched throughput.</p>",
        *([_adaptation_html(report["adaptation"])] if "adaptation" in report else []),
        "<h2>Learning curve</h2>" + _img("learning_curve", images["learning_curve"], "learning curve")
        + _html_table(["fraction", "train rows", "transfer", "baseline"], _curve_rows(report)),
        "<h2>Training curves</h2>" + _img("training_curves", images["training_curves"], "training curves"),
        table_html,
        "<h2>Calibration</h2>" + _img("reliability", images["reliability"], "reliability diagram"),
        "<h2>Most confident mistakes (likely label errors)</h2>"
        + (_html_table(header, mistakes) if mistakes else "<p>none</p>"),
        *[f"<h2>Test metrics by {e(r['column'])}</h2>" + _html_table(slice_header(r), slice_rows(r))
          + f"<p>{e(gap_line(r))}</p>" for r in report.get("slices", [])],
        "<p>All numbers: <code>report.json</code>.</p>",
    ]
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>Transfer report</title>"
            f"<style>{STYLE}</style></head><body>" + "\n".join(sections) + "</body></html>\n")


def make_figures(report: dict, log: list[dict], transfer_probs: np.ndarray, baseline_probs: np.ndarray,
                 gold: list[int]) -> dict[str, str]:
    """Every figure of the report, as base64 PNG."""
    m, final, names = report["metric"], report["final"], tuple(report["labels"])
    gold_arr = np.asarray(gold)
    k = report["knowledge_alone"]
    if "confusion" not in final:
        return _label_set_figures(report, log, transfer_probs, baseline_probs, gold_arr)
    return {
        "indicators": figures.indicator_bars({"zero-shot": k["zero_shot"][m], "linear probe": k["linear_probe"][m],
                                              "tf-idf baseline": final["baseline"][m], "transfer": final["transfer"][m]}, m),
        "learning_curve": figures.learning_curve(report["learning_curve"], m),
        "training_curves": figures.training_curves(log, m, (report["baseline"]["validation"] or {}).get(m)),
        "confusion": figures.confusion_matrices({"transfer": final["confusion"]["transfer"],
                                                 "baseline": final["confusion"]["baseline"]}, names),
        "reliability": figures.reliability({
            "transfer": (transfer_probs, gold_arr, expected_calibration_error(transfer_probs, gold_arr)),
            "baseline": (baseline_probs, gold_arr, expected_calibration_error(baseline_probs, gold_arr))}),
    }


def _label_set_figures(report: dict, log: list[dict], transfer_probs: np.ndarray, baseline_probs: np.ndarray,
                       gold: np.ndarray) -> dict[str, str]:
    """A multi-label report's figures: scored on its verdict score (micro-F1), no confusion matrices, and the
    reliability of every (text, label) probability as one binary decision, with the mean of the per-label ECEs."""
    final, k, main = report["final"], report["knowledge_alone"], report.get("scores", ["micro_f1"])[0]
    bars = {"zero-shot": k["zero_shot"][main]} if k.get("zero_shot") else {}
    bars.update({"linear probe": k["linear_probe"][main], "tf-idf baseline": final["baseline"][main],
                 "transfer": final["transfer"][main]})
    flat_gold = gold.reshape(-1).astype(np.int64)

    def binary(probs: np.ndarray) -> np.ndarray:
        p = np.asarray(probs, dtype=float).reshape(-1)
        return np.stack([1 - p, p], 1)

    m = report["metric"]
    return {
        "indicators": figures.indicator_bars(bars, main),
        "learning_curve": figures.learning_curve(report["learning_curve"], main),
        "training_curves": figures.training_curves(log, m, (report["time_to_baseline"].get("target"))),
        "reliability": figures.reliability({
            "transfer, every label": (binary(transfer_probs), flat_gold, final["transfer"]["ece"]),
            "baseline, every label": (binary(baseline_probs), flat_gold, final["baseline"]["ece"])}),
    }


def write_report(run: RunFolder, report: dict, transfer_probs: np.ndarray, baseline_probs: np.ndarray,
                 gold: list[int]) -> str:
    """Write report/ (report.html, report.md, report.json) in one atomic rename; returns the printed summary."""
    images = make_figures(report, run.read_log(), transfer_probs, baseline_probs, gold)
    with atomic_dir(run.root / "report") as tmp:
        (tmp / "report.html").write_text(html_page(report, images), encoding="utf-8")
        (tmp / "report.md").write_text(full_markdown(report), encoding="utf-8")
        (tmp / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False, default=str) + "\n",
                                         encoding="utf-8")
    return summary_markdown(report)
