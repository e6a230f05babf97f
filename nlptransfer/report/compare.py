"""Compare strategies on the same splits and seed: one table, and score against trainable parameters and
training time with the Pareto-best trade-offs marked."""
from __future__ import annotations

import html
import json
from pathlib import Path

from ..logs import get_logger, quiet
from .. import recipe as recipes
from ..errors import RecipeError
from ..markdown import escape, table
from ..recipe import Recipe
from ..fsio import atomic_write_text
from ..run import RunFolder
from ..strategies import get_strategy
from ..strategies.adapters import PeftSection
from ..tasks import run_tasks
from .baseline import fit_run_baseline
from .kpi import folder_bytes

logger = get_logger(__name__)
COSTS = ("trainable_parameters", "train_seconds")


def variant(base: Recipe, strategy: str, keep_lr: bool) -> Recipe:
    """`base` with another strategy: its default learning rate (unless `keep_lr` or it is the recipe's own
    strategy) and default adapter settings when the strategy is not an adapter."""
    changes: dict = {"strategy": strategy, "report.enabled": False}
    if not keep_lr and strategy != base.strategy:
        changes["training.lr"] = None
    chosen = get_strategy(strategy)
    if not chosen.adapter:
        changes["peft"] = PeftSection().__dict__
    if chosen.pooling:  # zero_shot reads sentence embeddings, whatever the others read
        changes["pooling"] = chosen.pooling
    return base.replace(**changes)


def pareto(rows: list[dict], metric: str, costs: tuple[str, ...]) -> list[bool]:
    """For each row, True when no other row scores at least as well at no more of every cost (one strictly better)."""
    def dominates(a: dict, b: dict) -> bool:
        no_worse = a[metric] >= b[metric] and all(a[c] <= b[c] for c in costs)
        better = a[metric] > b[metric] or any(a[c] < b[c] for c in costs)
        return no_worse and better

    return [not any(dominates(other, row) for other in rows if other is not row) for row in rows]


def table_rows(rows: list[dict], metric: str) -> list[list[str]]:
    """Display rows: name, accuracy, macro-F1, trainable parameters, training seconds, artifact bytes, Pareto."""
    def flags(r: dict) -> str:
        marks = [label for key, label in (("trainable_parameters", "params"), ("train_seconds", "time"))
                 if r["pareto"][key]]
        if not marks and r["pareto"]["both"]:
            marks = ["params+time jointly"]
        return ", ".join(marks) or "—"

    return [[r["name"], *[f"{r[k]:.4f}" for k in SCORES if k in r], f"{r['trainable_parameters']:,}",
             f"{r['train_seconds']:.1f}", f"{r['artifact_bytes']:,}", flags(r)] for r in rows]


#: the test scores a row shows (micro-F1: multi-label runs)
SCORES = ("accuracy", "macro_f1", "micro_f1")
HEADER = ["strategy", "accuracy", "macro-F1", "trainable parameters", "training s", "artifact bytes", "Pareto-best"]


def header(rows: list[dict]) -> list[str]:
    """The table's header: HEADER, with micro-F1 after macro-F1 when the rows have it."""
    return HEADER[:3] + ["micro-F1"] + HEADER[3:] if rows and "micro_f1" in rows[0] else HEADER


def _selection_lines(result: dict) -> list[str]:
    """Adaptation weights compared: what was selected, by which rule, and each row's scores."""
    if "selection_rule" not in result:
        return []
    rows = [[r["name"], "" if r.get("validation") is None else f"{r['validation']:.4f}",
             "" if r.get("target_test_accuracy") is None else f"{r['target_test_accuracy']:.4f}",
             "selected" if r.get("selected") else ""] for r in result["rows"] if r["kind"] == "transfer"]
    return [f"Selected without target labels: **{escape(str(result['selected']))}** ({result['selection_rule']}).", "",
            table(["variant", f"source validation {result['metric']}", "target test accuracy", ""], rows), ""]


def _markdown(result: dict) -> str:
    return "\n".join([f"# Strategy comparison: {escape(result['recipe'])} on {escape(result['data'])}", "",
                      f"Same splits (train {result['rows_used']['train']}, test {result['rows_used']['test']} rows) "
                      f"and seed {result['seed']} for every strategy; test {result['metric']}. Pareto-best: no other "
                      "row scores at least as well with no more trainable parameters (params), no more training "
                      "time (time), or no more of both (params+time jointly), being better in one of them.", "",
                      table(header(result["rows"]), table_rows(result["rows"], result["metric"])), "", *_selection_lines(result),
                      *_warning_lines(result)])


def _warning_lines(result: dict) -> list[str]:
    """Each run's warnings (its metrics.json "warnings": a learning rate far from its strategy's, scores no better
    than the class balance), under the table: a row to read with care."""
    found = [f"- {escape(name)}: {escape(w)}" for name, w in _warnings(result)]
    return ["Warnings:", "", *found, ""] if found else []


def _warnings(result: dict) -> list[tuple[str, str]]:
    """(row name, warning) of every row's warnings, in row order."""
    return [(r["name"], w) for r in result["rows"] for w in r.get("warnings") or []]


def _html(result: dict, image: str) -> str:
    e = html.escape
    head = "".join(f"<th>{e(h)}</th>" for h in header(result["rows"]))
    body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>"
                   for row in table_rows(result["rows"], result["metric"]))
    found = "".join(f"<li>{e(name)}: {e(w)}</li>" for name, w in _warnings(result))
    warnings = f"<h2>Warnings</h2><ul id='warnings'>{found}</ul>" if found else ""
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>Strategy comparison</title>"
            "<style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}table{border-collapse:"
            "collapse}td,th{border:1px solid #ccc;padding:4px 8px}img{max-width:100%}</style></head><body>"
            f"<h1>Strategy comparison</h1><p>{e(result['recipe'])} on {e(result['data'])}; same splits and seed "
            f"{result['seed']} for every strategy.</p><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
            f"{warnings}<figure><img id='fig-pareto' alt='score against cost' src='data:image/png;base64,{image}'>"
            "</figure></body></html>\n")


def _variants(base: Recipe, strategies: list[str], weights: list[float] | None, keep_lr: bool
              ) -> list[tuple[str, Recipe]]:
    """(row name, recipe) per strategy, and per adaptation weight when `weights` are given."""
    if not weights:
        return [(s, variant(base, s, keep_lr)) for s in strategies]
    if base.adapt.target is None:
        raise RecipeError("--adapt-weights compares adaptation weights: the recipe needs adapt.target (the target "
                          "domain's unlabelled texts)")
    return [(f"{s} weight={w:g}", variant(base, s, keep_lr).replace(**{"adapt.weight": w}))
            for s in strategies for w in weights]


def select_without_target_labels(rows: list[dict], metric: str) -> dict | None:
    """The transfer row a user should keep, chosen by source-domain validation `metric` alone (the target domain's
    labels, when given, are only reported): marks it `selected`, returns it."""
    scored = [r for r in rows if r["kind"] == "transfer" and r.get("validation") is not None]
    if not scored:
        return None
    best = max(scored, key=lambda r: r["validation"])
    best["selected"] = True
    return best


def _target_accuracy(run_path, recipe: Recipe) -> float | None:
    """Accuracy on adapt.target_test (scored for the table, never to choose), or None without one."""
    if not recipe.adapt.target_test:
        return None
    from ..inference import TextClassifier
    from .adaptation import labelled_file

    classifier = TextClassifier.load(run_path, trust_remote_code=recipe.trust_remote_code)
    rows = labelled_file(recipe.adapt.target_test, recipe, classifier.label_map.names).train
    predicted = classifier.predict_proba(list(rows.texts)).argmax(1)
    return round(float((predicted == rows.labels).mean()), 6)


def compare_strategies(recipe: str | Recipe, data: str | None, strategies: list[str],
                       overrides: list[str] | dict | None = None, adapt_weights: list[float] | None = None) -> dict:
    """Fine-tune the recipe once per strategy (and adaptation weight) on the same splits and seed, add the tf-idf
    baseline, and write compare.json, compare.md and compare.html into a new folder; returns the comparison. With
    adaptation weights, the row to keep is selected by source validation alone (`select_without_target_labels`)."""
    from ..pipeline import load_data, train
    from .figures import pareto_plot

    if not strategies:
        raise RecipeError("compare needs at least one strategy, e.g. --strategies head,top_k,lora,full")
    given = recipes.overrides(overrides)
    base = recipes.resolve(recipe, data, given)
    named = _variants(base, strategies, adapt_weights, "training.lr" in given)  # every variant validates first
    names, planned = [n for n, _ in named], [r for _, r in named]
    if base.data.label_columns and len(base.data.label_columns) > 1 and base.task != "multi_label":
        raise RecipeError("compare ranks strategies against one tf-idf baseline on one label column; for a multi-task "
                          "recipe (data.label_columns), train each strategy with `nlptransfer run ... strategy=NAME` "
                          "and compare their metrics.json, and `nlptransfer report RUN` says per task whether sharing "
                          "helped")
    splits = load_data(base)
    if splits.test is None:
        raise RecipeError("compare scores the test split: set data.test or data.test_fraction > 0")
    logger.info(f"compare: {len(planned)} trainings ({', '.join(names)}) on the same splits (train {len(splits.train)}, "
        f"test {len(splits.test)} rows, seed {base.training.seed}) + {3 if splits.validation else 1} baseline fit(s)")
    folder = RunFolder.new(base.output.dir, f"compare-{base.output.name or base.name}").root
    metric, rows = base.training.metric, []
    for name, r in zip(names, planned):
        with quiet():
            run = train(r.replace(**{"output.dir": str(folder), "output.name": name.replace(" ", "-"),
                                     "training.progress": False}))
        m = run.metrics
        rows.append({"name": name, "kind": "transfer", "run": str(run.path),
                     **{k: m["test"][k] for k in SCORES if k in m["test"]}, "trainable_parameters": m["trainable_parameters"],
                     "train_seconds": m["train_seconds"], "artifact_bytes": folder_bytes(RunFolder(run.path).weights_dir),
                     "validation": (m.get("validation") or {}).get(metric), "warnings": m.get("warnings", [])})
        if adapt_weights:
            rows[-1]["target_test_accuracy"] = _target_accuracy(run.path, r)
        logger.info(f"compare: {name}: test {metric} {m['test'][metric]:.4f}, {m['trainable_parameters']:,} trainable, "
            f"{m['train_seconds']:.1f} s")
    task = next(iter(run_tasks(splits.label_map).values()))
    b = fit_run_baseline(base, splits, task)  # a multi-label baseline with thresholds tuned as the runs' were
    scored = task.kind.metrics(b.task or task, task.gold(splits.test.labels)[0], b.test_probs)
    rows.append({"name": "tf-idf baseline", "kind": "baseline", "run": None,
                 **{k: scored[k] for k in SCORES if k in scored}, "trainable_parameters": b.trainable_parameters,
                 "train_seconds": round(b.train_seconds, 3), "artifact_bytes": b.artifact_bytes})
    for key, costs in (("trainable_parameters", ("trainable_parameters",)), ("train_seconds", ("train_seconds",)),
                       ("both", COSTS)):
        for row, best in zip(rows, pareto(rows, metric, costs)):
            row.setdefault("pareto", {})[key] = best
    result = {"recipe": base.name, "data": base.data.train, "metric": metric, "seed": base.training.seed,
              "rows_used": {"train": len(splits.train), "test": len(splits.test)}, "strategies": strategies,
              "rows": rows, "folder": str(folder)}
    if adapt_weights:
        chosen = select_without_target_labels(rows, metric)
        result["adapt_weights"] = list(adapt_weights)
        result["selected"] = chosen["name"] if chosen else None
        result["selection_rule"] = (f"the row with the best source-domain validation {metric}; no target label is "
                                    "used (target test accuracy, when adapt.target_test is given, is only reported)")
    atomic_write_text(Path(folder) / "compare.json", json.dumps(result, indent=2) + "\n")
    markdown = _markdown(result)
    atomic_write_text(Path(folder) / "compare.md", markdown)
    atomic_write_text(Path(folder) / "compare.html", _html(result, pareto_plot(rows, metric)))
    for line in markdown.splitlines()[2:]:
        logger.info(line)
    logger.info(f"compare: {folder / 'compare.html'}")
    return result
