"""Train a recipe: data -> model -> strategy -> cache -> fit -> test -> run folder, the stages in order. It never
reports or publishes; listeners see its events (the data once read, every step and evaluation)."""
from __future__ import annotations

import shutil
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from . import models
from .adapt import adapted_encoder, attach_mlm_head, loop_recipe, read_target, target_stream
from .cache import cache_root
from .tokens import Encoded, tokenize, tokenize_cached, unknown_hint
from .data import DataReport, LabelMap, Splits
from .data.schema import labels_json
from .errors import DataError, NlpTransferError, RecipeError, RunError
from .fewshot import body_stage
from .logs import get_logger
from .metrics import LOCAL_METRICS, extra_metrics, load_metric, majority_warnings, ordinal_error, slice_metrics
from .recipe import Recipe, read_saved, refuse_untrusted_code
from .run import RunFolder
from .strategies import get_strategy, learning_rate_warnings
from .train.events import Listener, ProgressBar, RunLog, notify

logger = get_logger(__name__)


@dataclass
class TrainedRun:
    """A finished run: its folder and test metrics; `.classifier()` loads it for prediction."""

    path: Path
    metrics: dict
    recipe: Recipe | None = field(default=None, repr=False)  #: the resolved recipe it ran
    splits: Splits | None = field(default=None, repr=False)  #: the data it trained and was tested on
    main_process: bool = field(default=True, repr=False)  #: this process wrote the folder
    processes: int = field(default=1, repr=False)

    def classifier(self):
        """The trained model as a TextClassifier."""
        from .inference import TextClassifier

        return TextClassifier.load(self.path, trust_remote_code=bool(self.recipe and self.recipe.trust_remote_code))


def load_data(recipe: Recipe) -> Splits:
    """The train/validation/test splits a run of `recipe` uses (the same files and seed give the same rows). For a
    strategy that needs no labels (zero_shot), a training file without a label column is read as texts alone."""
    from .strategies import find_strategy

    strategy = find_strategy(recipe.strategy)
    unlabelled = None
    if strategy is not None and strategy.labels_optional:
        unlabelled = [str(n) for n in (recipe.data.labels or recipe.labels.descriptions
                                       or recipe.report.label_descriptions)]
    from .data.store import load_splits_cached

    return load_splits_cached(recipe.data, recipe.training.seed, unlabelled, cache_root() / "splits",
                              cache=recipe.data.cache)


def check_data(recipe: Recipe) -> DataReport:
    """The data stage of a run of `recipe` alone, and its texts cut at the recipe's token limit (the model's
    tokenizer loads; its weights do not): the data report a run would write. Its `problems` say what would stop
    the run; none means a run could start."""
    try:
        splits = load_data(recipe)
    except DataError as e:
        report = e.report or DataReport()
        report.problems = list(e.problems)
        return report
    base = models.resolve(recipe.model, recipe.model_revision)
    _encode(models.load_tokenizer(base, recipe.trust_remote_code), models.load_config(base, recipe.trust_remote_code),
            recipe, splits)
    return splits.report


def train(recipe: Recipe, *, resume: bool | str | Path = False, listeners: Sequence[Listener] = ()) -> TrainedRun:
    """Run `recipe` end to end and write its run folder; `resume`: continue the recipe's interrupted run (True) or
    the one in that folder, exactly as it was configured. Bad input stops before a new folder is made; a process
    that trains in a folder holds its lock, so a second one is refused."""
    from accelerate.utils import set_seed

    from .train.loop import make_accelerator

    started = time.perf_counter()
    accelerator = make_accelerator(recipe)
    main = accelerator.is_main_process
    listeners = list(listeners) if main else []  # only the main process's listeners see events (and write)
    with ExitStack() as held:
        run, resuming = (_open_run(recipe, resume, accelerator, held) if resume else (None, False))
        if run is not None:  # the caller's recipe only says whether code may run; the saved one says how to train
            saved = read_saved(run.path("recipe")) if run.path("recipe").exists() else recipe
            refuse_untrusted_code(saved, recipe.trust_remote_code, run.root)
            recipe = saved
            if not resuming and main:
                run.truncate_log(0)  # killed before its first checkpoint: start over in the same folder
        set_seed(recipe.training.seed)
        splits = load_data(_with_saved_labels(recipe, run))
        target = read_target(recipe)  # before any folder is made: a bad target file leaves nothing behind
        for line in splits.report.summary_lines():
            logger.info(line)
        notify(listeners, "on_data", recipe, splits)

        base = models.resolve(recipe.model, recipe.model_revision)
        tokenizer = models.load_tokenizer(base, recipe.trust_remote_code)
        config = models.load_config(base, recipe.trust_remote_code)
        hints = len(splits.report.hints)
        encoded = _encode(tokenizer, config, recipe, splits)
        for hint in splits.report.hints[hints:]:
            logger.warning(hint)
        strategy = get_strategy(recipe.strategy)
        net, new_weights = models.load_classifier(base, splits.label_map, recipe.trust_remote_code, **_tasks(recipe, splits))
        prepared = strategy.prepare(net, recipe, new_weights)
        attach_mlm_head(prepared, base, recipe)
        logger.info(f"model {recipe.model} ({config.model_type}), strategy {recipe.strategy}: "
                    f"{prepared.trainable:,} trainable of {prepared.total:,} parameters "
                    f"({100 * prepared.trainable / prepared.total:.2f}%)")
        lr_warnings = learning_rate_warnings(recipe)
        for lr_warning in lr_warnings:
            logger.warning(lr_warning)
        modules = {n: load_metric(n) for n in recipe.evaluation.metrics if n not in LOCAL_METRICS}  # fail early
        made = run is None
        if made:  # only now: data, model and strategy checked out, so bad input leaves no folder behind
            run, resuming = _open_run(recipe, False, accelerator, held)
        try:
            if main:
                _first_files(run, recipe, splits)
            encoder = adapted_encoder(recipe, run, target, splits.train.texts, accelerator,
                                      listeners=_run_listeners(recipe, RunFolder(run.path("adapt")), main))
            if encoder is None and strategy.body_on_pairs:  # contrastive: the body learns from pairs first
                encoder = body_stage(recipe, run, splits, encoded, tokenizer, accelerator,
                                     lambda folder: _run_listeners(recipe, folder, main))
            if encoder is not None:  # adapt.method mlm (the encoder adapted to the target), or the strategy's own
                set_seed(recipe.training.seed)  # its new head starts the same whether the pretraining ran or resumed
                net, new_weights = models.load_classifier(encoder, splits.label_map, recipe.trust_remote_code,
                                                          **_tasks(recipe, splits))
                prepared = strategy.prepare(net, recipe, new_weights)
                attach_mlm_head(prepared, encoder, recipe)  # mlm+ce: the head warmed up with it
            model, metrics, probs = _train_in(run, resuming, recipe, splits, tokenizer, encoded, strategy, prepared,
                                              accelerator, listeners + _run_listeners(recipe, run, main), modules,
                                              target_stream(recipe, target, tokenizer,
                                                            models.max_length(tokenizer, config, recipe.data.max_length))
                                              if target else None)
        except NlpTransferError:
            if made and main and not (run.path("checkpoints") / "last").exists():
                shutil.rmtree(run.root, ignore_errors=True)  # nothing to resume: leave no half-made folder
            raise
        metrics["total_seconds"] = round(time.perf_counter() - started, 3)
        if main:
            run.save_weights(model.net, tokenizer, strategy.adapter)
            _save_profile(run, model, tokenizer, splits, recipe, encoded)
            if probs is not None:
                _write_predictions(run, splits, probs)
            elif splits.train.labels is None:  # texts without labels (zero_shot): what it predicts for them
                probs = _probabilities(model, encoded["train"], recipe.training.eval_batch_size,
                                       tokenizer.pad_token_id or 0, accelerator.device)
                _write_predictions(run, splits, probs, "train")
            metrics["warnings"] = lr_warnings + _score_warnings(metrics)
            run.write_json("metrics", metrics)
            _say_metrics(metrics, run)
        accelerator.wait_for_everyone()
    return TrainedRun(run.root, metrics, recipe, splits, main, accelerator.num_processes)


def pretrain_encoder(recipe: Recipe, *, resume: bool | str | Path = False) -> Path:
    """`nlptransfer adapt`: masked-LM pretraining of the recipe's encoder on its adapt.target texts (and the source
    training texts when adapt.include_source) alone, in a run folder of its own; returns the folder (the adapted
    encoder is its encoder/, a model folder that recipes name as `model:`). Bad input stops before a folder is made."""
    from accelerate.utils import set_seed

    from .adapt import pretrain, pretraining_texts
    from .train.loop import make_accelerator

    if recipe.adapt.target is None and not resume:
        raise RecipeError("nlptransfer adapt pretrains on the target domain's texts: give them as adapt.target=FILE "
                          "(or --target FILE)")
    accelerator = make_accelerator(recipe)
    named = recipe.replace(**{"output.name": recipe.output.name or f"{recipe.name}-encoder"})
    with ExitStack() as held:
        run = _open_run(named, resume, accelerator, held)[0] if resume else None
        if run is not None and run.path("recipe").exists():  # resumed: exactly as it was configured
            recipe = read_saved(run.path("recipe"))
        set_seed(recipe.training.seed)
        source = list(load_data(recipe).train.texts) if recipe.adapt.include_source else []
        target = read_target(recipe.replace(**{"adapt.target_test": None}))
        texts, held_out = pretraining_texts(recipe, target, source)
        if run is None:  # only now: the texts checked out, so bad input leaves no folder behind
            run = _open_run(named, False, accelerator, held)[0]
        try:
            pretrain(recipe, texts, held_out, run, accelerator, resume=bool(resume),
                     listeners=_run_listeners(recipe, run, accelerator.is_main_process))
        except NlpTransferError:
            if not resume and accelerator.is_main_process and not (run.path("checkpoints") / "last").exists():
                shutil.rmtree(run.root, ignore_errors=True)
            raise
    return run.root


def _train_in(run, resuming, recipe, splits, tokenizer, encoded, strategy, prepared, accelerator, listeners, modules,
              streams=None):
    """Training and the test: (trained model, metrics, test probabilities or None)."""
    result, pseudo = _fit(prepared, strategy, encoded, recipe, splits, tokenizer, accelerator, run, resuming,
                          listeners, streams)
    metrics = {"strategy": recipe.strategy, "model": recipe.model,
               "trainable_parameters": prepared.trainable, "total_parameters": prepared.total,
               "validation": result.best, "best_step": result.best_step, "steps": result.steps,
               "examples_seen": result.examples_seen, "train_seconds": round(result.train_seconds, 3)}
    if strategy.pseudo_labels is not None:  # its own labels trained, so no gold label chose: validation is a score
        metrics["self_training"] = pseudo
        if "validation" in encoded and splits.validation.labels is not None:
            metrics["validation"] = _score(result.model, encoded["validation"], splits.validation,
                                           splits.label_map.names, recipe, tokenizer, accelerator)[0]
    if splits.train.labels is None:
        metrics["texts"] = len(splits.train)
    return result.model, metrics, _test(result.model, encoded, recipe, splits, tokenizer, accelerator, metrics,
                                        modules)


def _tasks(recipe: Recipe, splits: Splits) -> dict:
    """load_classifier's multi-task arguments: every task's label map and whether task weights are learned."""
    if not splits.tasks:
        return {}
    return {"tasks": splits.tasks, "uncertainty": recipe.training.task_weighting == "uncertainty"}


def label_names(splits: Splits):
    """What the loop and the scoring take as the labels: the label names, or a multi-task run's tasks (task ->
    LabelMap)."""
    return splits.tasks or splits.label_map.names


def _first_files(run: RunFolder, recipe: Recipe, splits: Splits) -> None:
    """What a run folder holds from the start: the resolved recipe (so that it can be resumed), labels, data report."""
    run.write_text("recipe", recipe.to_yaml())
    run.write_json("labels", labels_json(splits.label_map, splits.tasks))
    run.write_json("data_report", splits.report.to_dict())


def _with_saved_labels(recipe: Recipe, run: RunFolder | None) -> Recipe:
    """A resumed run keeps the label order it started with (labels.json), whatever the data gives now (a multi-task
    run's label orders follow from its files and seed alone)."""
    if run is None or not run.path("labels").exists() or recipe.data.label_columns:
        return recipe
    names = list(LabelMap.from_dict(run.read_json("labels")).names)
    return recipe.replace(**{"data.labels": names})


def _run_listeners(recipe: Recipe, run: RunFolder, main: bool) -> list[Listener]:
    """The run's own listeners, on the main process only: the run log and the progress bar."""
    if not main:
        return []
    return [RunLog(run)] + ([ProgressBar()] if recipe.training.progress else [])


def _open_run(recipe: Recipe, resume: bool | str | Path, accelerator, held: ExitStack) -> tuple[RunFolder, bool]:
    """The run folder (new, or the one to resume), agreed across processes and locked by the main process for as
    long as `held` is, and whether it has a checkpoint."""
    from accelerate.utils import broadcast_object_list

    out = recipe.output
    name = out.name or recipe.name
    chosen = [None]
    if accelerator.is_main_process:
        if resume:
            root = Path(resume) if isinstance(resume, (str, Path)) and not isinstance(resume, bool) else Path(out.dir) / name
            run = RunFolder.existing(root, need=("recipe",))
            held.enter_context(run.lock())
            if run.is_complete:
                raise RunError(f"{root} already finished (metrics.json exists); nothing to resume")
        else:
            run = RunFolder.new(out.dir, name)
            held.enter_context(run.lock())
        chosen = [str(run.root)]
    broadcast_object_list(chosen)
    run = RunFolder(chosen[0])
    return run, bool(resume) and (run.path("checkpoints") / "last").exists()


def _encode(tokenizer, config, recipe: Recipe, splits: Splits) -> dict[str, Encoded]:
    """Token ids of every split, cut at the recipe's (or the model's) limit; truncations counted in the report."""
    limit = models.max_length(tokenizer, config, recipe.data.max_length)
    started = time.perf_counter()
    encode = tokenize_cached if recipe.data.cache else tokenize
    encoded = {name: encode(tokenizer, part.texts, limit, part.labels)
               for name, part in (("train", splits.train), ("validation", splits.validation), ("test", splits.test))
               if part is not None}
    splits.report.truncated = {name: e.truncated for name, e in encoded.items()}
    if (hint := unknown_hint(tokenizer, encoded["train"])) is not None:
        splits.report.hints.append(hint)  # in data_report.json and check's report; a run also logs it
    how = ("cached" if all(e.cached for e in encoded.values())
           else ", ".join(f"{name} {'cached' if e.cached else 'tokenized'}" for name, e in encoded.items()))
    logger.info(f"tokenized: {how} ({sum(map(len, encoded.values())):,} texts, {time.perf_counter() - started:.1f} s;"
                f" cache {cache_root() if recipe.data.cache else 'off'})")
    truncated = sum(splits.report.truncated.values())
    if truncated:
        logger.info(f"truncated {truncated} texts to {limit} tokens ({splits.report.truncated})")
    return encoded


def _fit(prepared, strategy, encoded, recipe, splits, tokenizer, accelerator, run, resuming, listeners, streams=None):
    """The frozen part's output cached where the strategy allows it, then the loop (with the target domain's batch
    stream and the adaptation term when the recipe adapts). A strategy that labels its own training rows
    (zero_shot's self-training) trains on those, with no validation split to choose by, or not at all. Returns the
    loop's result and the strategy's summary of its labels (None when the data's labels trained)."""
    from .train.cache import cache_inputs
    from .train.loop import FitResult, fit

    t = recipe.training
    pad_id = tokenizer.pad_token_id or 0
    parts = {name: encoded[name] for name in ("train", "validation") if name in encoded}
    if strategy.pseudo_labels is not None:
        parts.pop("validation", None)
    if t.cache_features:
        parts = cache_inputs(prepared.model, strategy.cacheable, parts, t.eval_batch_size, pad_id, accelerator.device)
    if strategy.init_head is not None:
        from .train.cache import Features, cache_features

        train = parts["train"]
        if not isinstance(train, Features):
            train = cache_features(prepared.model, train, t.eval_batch_size, pad_id, accelerator.device)
            prepared.model.train()
        strategy.init_head(prepared.model, train.features, train.labels, recipe)
    pseudo = None
    if strategy.pseudo_labels is not None:
        def probabilities() -> np.ndarray:
            probs = _probabilities(prepared.model, parts["train"], t.eval_batch_size, pad_id, accelerator.device)
            prepared.model.train()
            return probs

        chosen = strategy.pseudo_labels(probabilities, recipe, splits.label_map.names)
        if chosen is None:  # nothing trains: the prepared model is the classifier
            return FitResult(prepared.model, None, 0, 0, 0.0, 0), None
        rows, labels, pseudo = chosen
        parts["train"] = _relabelled(parts["train"], rows, labels)
    result = fit(prepared, parts["train"], parts.get("validation"), loop_recipe(recipe), label_names(splits),
                 pad_id, accelerator, run, resume=resuming, listeners=listeners, streams=streams)
    return result, pseudo


def _relabelled(data, rows: list[int], labels: list[int]):
    """The rows `rows` of `data` (token ids or cached features) with `labels` (a strategy's own)."""
    from .train.cache import Features

    if isinstance(data, Features):
        return Features(data.features[rows], labels, [data.lengths[i] for i in rows])
    return Encoded([data.input_ids[i] for i in rows], labels)


def _test(model, encoded, recipe, splits, tokenizer, accelerator, metrics: dict, modules: dict
          ) -> np.ndarray | None:
    """Test metrics into `metrics` (with the recipe's extra metrics and slices); returns the test probabilities
    (None without a test split)."""
    if "test" not in encoded:
        return None
    if splits.tasks:
        return _test_tasks(model, encoded, recipe, splits, tokenizer, accelerator, metrics, modules)
    test, probs = _score(model, encoded["test"], splits.test, splits.label_map.names, recipe, tokenizer, accelerator)
    gold, predicted, names = splits.test.labels, probs.argmax(1), splits.label_map.names
    if recipe.task == "sentiment":
        test["ordinal_error"] = ordinal_error(gold, predicted.tolist())
    test.update(extra_metrics(recipe.evaluation.metrics, gold, predicted, names, probs, modules))
    if splits.test.slices:
        test["slices"] = [slice_metrics(gold, predicted, names, values, column, seed=recipe.training.seed)
                          for column, values in splits.test.slices.items()]
    metrics["test"] = test
    return probs


def _test_tasks(model, encoded, recipe, splits, tokenizer, accelerator, metrics: dict, modules: dict) -> dict:
    """A multi-task run's test metrics (each task's, with the recipe's extra metrics and slices, on the rows labelled
    for it; and their means); returns each task's test probabilities."""
    from .train.loop import task_column

    test, probs = _score(model, encoded["test"], splits.test, splits.tasks, recipe, tokenizer, accelerator)
    for i, (task, label_map) in enumerate(splits.tasks.items()):
        gold, present = task_column(splits.test.labels, i)
        gold, predicted, names = gold.tolist(), probs[task][present].argmax(1), label_map.names
        scores = test["tasks"][task]
        scores.update(extra_metrics(recipe.evaluation.metrics, gold, predicted, names, probs[task][present], modules))
        if splits.test.slices:
            scores["slices"] = [slice_metrics(gold, predicted, names, [values[k] for k in present], column,
                                              seed=recipe.training.seed)
                                for column, values in splits.test.slices.items()]
    metrics["test"] = test
    return probs


def _score(model, encoded, part, names, recipe, tokenizer, accelerator) -> tuple[dict, np.ndarray]:
    """Metrics and class probabilities of `model` on one split (`part`, tokenized as `encoded`)."""
    from .batching import eval_loader
    from .train.loop import evaluate

    model = model.to(accelerator.device)
    loader = accelerator.prepare(eval_loader(encoded, recipe.training.eval_batch_size, tokenizer.pad_token_id or 0))
    return evaluate(model, loader, part.labels, names, accelerator)


def _save_profile(run: RunFolder, model, tokenizer, splits: Splits, recipe: Recipe, encoded) -> None:
    """The reference profile a server measures drift against: from the validation texts (else test, else train)."""
    from .inference import TextClassifier
    from .inference.profile import build_profile, save_profile

    source, part = next((n, p) for n, p in (("validation", splits.validation), ("test", splits.test),
                                             ("train", splits.train)) if p is not None)
    limit = models.max_length(tokenizer, model.core.config, recipe.data.max_length)
    classifier = TextClassifier(model, tokenizer, splits.label_map, limit, recipe)
    save_profile(build_profile(classifier, list(part.texts), source, recipe.training.seed), run.root)


def _probabilities(model, data, batch_size: int, pad_id: int, device) -> np.ndarray:
    """Class probabilities of `model` (left in eval mode) on the rows of `data` (token ids or cached features)."""
    from .batching import predict_logits, softmax
    from .train.cache import evaluation_batches

    return softmax(predict_logits(model.to(device), evaluation_batches(data, batch_size, pad_id))[0])


def _write_predictions(run: RunFolder, splits: Splits, probs: np.ndarray | dict, split: str = "test") -> None:
    """predictions.csv: the test rows (text, gold, predicted, probability per class), or the texts of an unlabelled
    training file (without gold). Multi-task: gold_TASK (empty where the row has no label), predicted_TASK and
    prob_TASK_LABEL for every task."""
    if splits.tasks:
        part, header, columns = getattr(splits, split), ["text"], []
        for i, (task, m) in enumerate(splits.tasks.items()):
            header += [f"gold_{task}", f"predicted_{task}", *[f"prob_{task}_{n}" for n in m.names]]
            columns.append((i, m.names, probs[task]))
        rows = [[text] + [x for i, names, p in columns
                          for x in ("" if gold[i] < 0 else names[gold[i]], names[int(p[r].argmax())],
                                    *[f"{v:.6f}" for v in p[r]])]
                for r, (text, gold) in enumerate(zip(part.texts, part.labels))]
        run.write_csv("predictions", header, rows)
        return
    names, part = splits.label_map.names, getattr(splits, split)
    gold = [[names[g]] for g in part.labels] if part.labels is not None else [[] for _ in part.texts]
    rows = [[text, *g, names[int(p.argmax())], *[f"{x:.6f}" for x in p]] for text, g, p in zip(part.texts, gold, probs)]
    header = ["text", *(["gold"] if part.labels is not None else []), "predicted", *[f"prob_{n}" for n in names]]
    run.write_csv("predictions", header, rows)


def _score_warnings(metrics: dict) -> list[str]:
    """The test scores' warnings (metrics.majority_warning: no better than the class balance), per task."""
    return majority_warnings(metrics["test"], "test") if metrics.get("test") else []


def _say_metrics(metrics: dict, run: RunFolder) -> None:
    test = metrics.get("test")
    for task, scores in (test or {}).get("tasks", {}).items():
        logger.info(f"test, {task}: accuracy {scores['accuracy']:.4f}, macro-F1 {scores['macro_f1']:.4f} on "
                    f"{scores['n']} rows")
    if test and "tasks" in test:
        logger.info(f"test, mean over {len(test['tasks'])} tasks: accuracy {test['accuracy']:.4f}, macro-F1 "
                    f"{test['macro_f1']:.4f}")
    elif test:
        logger.info(f"test: accuracy {test['accuracy']:.4f}, macro-F1 {test['macro_f1']:.4f} on {test['n']} rows")
    elif metrics.get("validation"):
        logger.info(f"validation: accuracy {metrics['validation']['accuracy']:.4f} (no test split)")
    elif "texts" in metrics:
        logger.info(f"{metrics['texts']} texts without labels: their predictions are in {run.path('predictions')}")
    for warning in _score_warnings(metrics):  # stored in metrics.json "warnings", with any learning-rate warning
        logger.warning(warning)
    logger.info(f"run folder: {run.root}")
