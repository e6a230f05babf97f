"""The report's section for a run that adapted to a target domain (recipe `adapt:`): the same recipe trained
source-only on identical splits, then, against it, target accuracy with the paired bootstrap and McNemar and a
verdict (when adapt.target_test is given), the domain distance (MMD and proxy A-distance between source and target
features) of each model, and the source-domain accuracy of each (what adapting cost the source domain: forgetting).
The selection rule says what chose the checkpoint: nothing there uses target labels."""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from ..data import DataSpec, Splits, load_splits
from ..logs import get_logger, quiet
from ..recipe import Recipe
from ..tasks import run_tasks
from . import stats
from .curve import split_recipe

logger = get_logger(__name__)

#: texts per domain whose features the distances compare (seeded samples)
DISTANCE_TEXTS = 500


def selection_rule(recipe: Recipe) -> str:
    """How the adapted run chose what it kept, in words: by source-domain validation only."""
    return (f"the checkpoint with the best source-domain validation {recipe.training.metric} is kept (evaluated every "
            f"{'epoch' if not recipe.training.eval_every else f'{recipe.training.eval_every} steps'}); adapt.weight and "
            "the method are the recipe's. No target label trains or chooses anything: adapt.target_test is scored "
            "once, after training")


def domain_distance(source: np.ndarray, target: np.ndarray, seed: int) -> dict:
    """MMD² (multi-kernel, median heuristic, as the mmd objective) between unit-length source and target features,
    and the proxy A-distance 2(1 - 2 err) of a logistic regression telling the domains apart (5-fold, balanced)."""
    import torch
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score

    from ..objectives.mmd import mk_mmd

    n = min(len(source), len(target))
    rng = np.random.default_rng(seed)
    s, t = source[rng.permutation(len(source))[:n]], target[rng.permutation(len(target))[:n]]
    unit = lambda x: x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-9)  # noqa: E731
    s, t = unit(s), unit(t)
    mmd = float(mk_mmd(torch.from_numpy(s), torch.from_numpy(t)))
    x, y = np.concatenate([s, t]), np.array([0] * n + [1] * n)
    accuracy = cross_val_score(LogisticRegression(max_iter=2000), x, y, cv=5).mean()
    return {"mmd": round(mmd, 5), "proxy_a_distance": round(2 * (1 - 2 * (1 - float(accuracy))), 4), "texts": n}


def labelled_file(path: str, recipe: Recipe, names) -> Splits:
    """A labelled file (adapt.target_test) read whole, with the run's label names."""
    spec = DataSpec(train=str(path), val_fraction=0.0, test_fraction=0.0, labels=list(names),
                    encoding=recipe.data.encoding, delimiter=recipe.data.delimiter, join_with=recipe.data.join_with)
    return load_splits(spec, purpose="evaluate")


def _paired(gold, adapted: np.ndarray, plain: np.ndarray, names, recipe: Recipe) -> dict:
    """Adapted against source-only on the same rows: both scores, the paired interval, McNemar and the verdict."""
    gold = np.asarray(gold)
    r = recipe.report
    task = next(iter(run_tasks(names).values()))
    right_a, right_p = task.kind.verdict_statistic(gold, adapted), task.kind.verdict_statistic(gold, plain)
    interval = stats.paired_bootstrap(right_a, right_p, r.bootstrap, recipe.training.seed, 1 - r.alpha)
    test = stats.mcnemar(right_a, right_p)
    keep = ("accuracy", "macro_f1", "n")
    score = lambda p: {k: task.kind.metrics(task, gold, p)[k] for k in keep}  # noqa: E731
    return {"adapted": score(adapted), "source_only": score(plain), "difference": stats.as_dict(interval),
            "mcnemar": stats.as_dict(test), "verdict": stats.verdict(interval, test, r.alpha).replace(" transfer", "")}


def adaptation_section(run_root: Path, recipe: Recipe, splits: Splits, adapted_test_probs: np.ndarray) -> dict | None:
    """The adaptation section of the report (None for a run that did not adapt); trains the source-only model."""
    if recipe.adapt.target is None:
        return None
    from ..adapt import read_target
    from ..inference import TextClassifier
    from ..pipeline import train

    started, names, seed = time.perf_counter(), splits.label_map.names, recipe.training.seed
    adapted = TextClassifier.load(run_root, trust_remote_code=recipe.trust_remote_code)
    with tempfile.TemporaryDirectory(prefix="nlptransfer-adapt-") as tmp:
        plain = split_recipe(recipe.replace(**{"adapt.target": None, "adapt.target_test": None}), splits,
                             splits.train, Path(tmp), "source-only")
        logger.info("report: training the same recipe source-only on the same splits (the adaptation's reference)")
        with quiet():
            source_only = train(plain)
        reference = TextClassifier.load(source_only.path, trust_remote_code=recipe.trust_remote_code)
        plain_test = reference.predict_proba(list(splits.test.texts))
        with quiet():
            target = read_target(recipe.replace(**{"adapt.target_test": None}))
        rng = np.random.default_rng(seed)
        pick = lambda texts: [texts[i] for i in sorted(rng.permutation(len(texts))[:DISTANCE_TEXTS])]  # noqa: E731
        source_texts, target_texts = pick(list(splits.train.texts)), pick(target)
        distance = {name: domain_distance(model.embed(source_texts), model.embed(target_texts), seed)
                    for name, model in (("source_only", reference), ("adapted", adapted))}
        section = {"method": recipe.adapt.method, "weight": recipe.adapt.weight, "target": recipe.adapt.target,
                   "target_texts": len(target), "selection_rule": selection_rule(recipe), "domain_distance": distance,
                   "source": _paired(splits.test.labels, adapted_test_probs, plain_test, names, recipe)}
        if recipe.adapt.target_test:
            rows = labelled_file(recipe.adapt.target_test, recipe, names).train
            texts = list(rows.texts)
            section["target_test"] = {"file": recipe.adapt.target_test,
                                      **_paired(rows.labels, adapted.predict_proba(texts), reference.predict_proba(texts),
                                                names, recipe)}
    section["seconds"] = round(time.perf_counter() - started, 3)
    return section


def adaptation_lines(section: dict) -> list[str]:
    """The section in Markdown lines (the report's summary prints them)."""
    def line(part: dict, where: str) -> str:
        d = part["difference"]
        return (f"- {where}: adapted {part['adapted']['accuracy']:.4f} vs source-only "
                f"{part['source_only']['accuracy']:.4f} on {part['adapted']['n']} rows, difference {d['estimate']:+.4f} "
                f"[{d['low']:+.4f}, {d['high']:+.4f}], McNemar p {part['mcnemar']['p_value']:.4g}: "
                f"**{part['verdict']}**")

    distance = section["domain_distance"]
    lines = [f"## Domain adaptation ({section['method']}, weight {section['weight']:g}, "
             f"{section['target_texts']} target texts)", ""]
    if "target_test" in section:
        lines.append(line(section["target_test"], "target domain (adapt.target_test)"))
    else:
        lines.append("- target domain: no adapt.target_test given, so no target accuracy and no verdict")
    lines += [line(section["source"], "source domain (test split; a drop is forgetting)"),
              f"- domain distance, source-only -> adapted: MMD² {distance['source_only']['mmd']:.4f} -> "
              f"{distance['adapted']['mmd']:.4f}, proxy A-distance {distance['source_only']['proxy_a_distance']:.3f} "
              f"-> {distance['adapted']['proxy_a_distance']:.3f} ({distance['adapted']['texts']} texts a domain)",
              f"- selection: {section['selection_rule']}", ""]
    return lines
