"""The command line: parses arguments, calls the API, prints results. Errors print one message, exit 2."""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
from pathlib import Path

from .errors import DataError, NlpTransferError, RecipeError, RunError


def _data_changes(args) -> dict:
    """The key=value overrides, plus what the file and folder flags say (paths kept as given, not read as YAML)."""
    from .recipe import overrides

    changes = overrides(list(args.overrides or []))
    for flag, key in (("validation", "data.validation"), ("test", "data.test"), ("output", "output.dir"),
                      ("name", "output.name")):
        if getattr(args, flag, None):
            changes[key] = getattr(args, flag)
    if getattr(args, "trust_remote_code", False):
        changes["trust_remote_code"] = True
    return changes


def _run(args) -> int:
    from .api import finetune

    resume = args.resume if args.resume not in (None, True) else bool(args.resume)
    changes = _data_changes(args) | ({"report.enabled": True} if args.report else {})
    finetune(args.recipe, args.data, overrides=changes, resume=resume)
    return 0


def _adapt(args) -> int:
    from .api import adapt_encoder

    resume = args.resume if args.resume not in (None, True) else bool(args.resume)
    folder = adapt_encoder(args.recipe, args.target, overrides=_data_changes(args) | (
        {"data.train": args.data} if args.data else {}), resume=resume)
    print(f"adapted encoder: {folder / 'encoder'}\nuse it in any recipe: model={folder / 'encoder'}")
    return 0


def _check(args) -> int:
    from .api import resolve_data
    from .logs import quiet
    from .pipeline import check_data

    recipe = resolve_data(args.recipe, args.data, _data_changes(args))
    with quiet():
        report = check_data(recipe)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    else:
        for line in report.describe():
            print(line)
    if report.problems:
        raise DataError(report.problems)
    if not args.json:
        print("the data is ready: a run can start")
    return 0


def _report(args) -> int:
    from .report import build_report

    build_report(args.run, overrides=args.overrides, trust_remote_code=args.trust_remote_code)
    return 0


def _compare(args) -> int:
    from .report import compare_strategies

    recipe, overrides = "sentiment-minilm", list(args.overrides or [])
    if overrides and "=" not in overrides[0]:
        recipe, overrides = overrides[0], overrides[1:]
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    compare_strategies(recipe, args.data, strategies, overrides, adapt_weights=args.adapt_weights)
    return 0


def _predict(args) -> int:
    from .api import predict_file

    if args.hub or args.revision or not Path(args.run).exists():  # maybe a pushed repo NAMESPACE/NAME
        from .hub import locate

        args.run = str(locate(args.run, hub=args.hub, revision=args.revision))
    n = predict_file(args.run, args.input, args.output, text_columns=args.text_column, batch_size=args.batch_size,
                     backend=args.backend, trust_remote_code=args.trust_remote_code,
                     changes=_data_changes(argparse.Namespace(overrides=args.overrides)))
    print(f"wrote {n} predictions to {args.output}")
    return 0


def _serve(args) -> int:
    try:
        from .serve import ServeConfig, serve
        from .serve.drift import DriftSettings
    except ImportError as e:
        raise RunError(f'serving needs fastapi, uvicorn and prometheus-client: pip install "nlptransfer[serve]" '
                       f"({e.name} is missing)") from None
    drift = DriftSettings(window=args.drift_window, psi_threshold=args.drift_psi, p_threshold=args.drift_p,
                          min_mmd=args.drift_mmd)
    config = ServeConfig(max_batch_size=args.max_batch_size, max_batch_tokens=args.max_batch_tokens,
                         max_wait_ms=args.max_wait_ms, max_queue=args.max_queue, timeout_s=args.timeout,
                         max_texts=args.max_texts, api_key_env=args.api_key_env, prediction_log=args.prediction_log,
                         log_texts=args.log_texts, drift=drift)
    if args.api_key_env and not os.environ.get(args.api_key_env):
        raise RunError(f"--api-key-env {args.api_key_env}: that environment variable is empty or unset")
    print(f"serving {args.run} on http://{args.host}:{args.port} ({args.backend}, {args.workers} worker(s)); "
          "docs at /docs", flush=True)
    serve(args.run, host=args.host, port=args.port, backend=args.backend, workers=args.workers, config=config,
          hub=args.hub, revision=args.revision, trust_remote_code=args.trust_remote_code)
    return 0


def _push(args) -> int:
    from .publish import push

    push(args.run, args.repo, hub=args.hub, revision=args.revision, private=args.private, license=args.license,
         trust_remote_code=args.trust_remote_code)
    return 0


def _export(args) -> int:
    if not (args.merge or args.onnx):
        raise RunError("say what to export: --merge OUT (a standalone transformers model) and/or --onnx")
    from .publish import export_merged, export_onnx

    if args.merge:
        export_merged(args.run, args.merge, trust_remote_code=args.trust_remote_code)
    if args.onnx:
        export_onnx(args.run, trust_remote_code=args.trust_remote_code)
    return 0


def _evaluate(args) -> int:
    from .api import evaluate_run

    result = evaluate_run(args.run, args.data, text_columns=args.text_column, label_column=args.label_column,
                          trust_remote_code=args.trust_remote_code,
                          changes=_data_changes(argparse.Namespace(overrides=args.overrides)),
                          slice_by=args.slice_by)
    result.pop("data_report")
    if args.output:
        from .fsio import atomic_write_json

        atomic_write_json(Path(args.output), result)
    for task, scores in result.get("tasks", {None: result}).items():
        if task is not None:
            print(f"{task}:")
        print(f"accuracy {scores['accuracy']:.4f}  macro-F1 {scores['macro_f1']:.4f}  rows {scores['n']}")
        for name, c in scores["per_class"].items():
            print(f"  {name:>16}  P {c['precision']:.3f}  R {c['recall']:.3f}  F1 {c['f1']:.3f}  n {c['support']}")
    for warning in result["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    if result.get("tasks_missing"):
        print(f"not scored (no such column in {args.data}): {', '.join(result['tasks_missing'])}")
    return 0


def _cache(args) -> int:
    import shutil

    from .cache import cache_root

    root = cache_root()
    kinds = {"splits": "data stage results", "tokens": "token ids", "datasets": "data sets written as Parquet"}
    if args.clear:
        for kind in kinds:
            shutil.rmtree(root / kind, ignore_errors=True)
        print(f"cleared {root}")
        return 0
    print(f"cache: {root} (set NLPTRANSFER_CACHE to move it; `nlptransfer cache --clear` empties it)")
    for kind, what in kinds.items():
        files = [f for f in (root / kind).rglob("*") if f.is_file()] if (root / kind).is_dir() else []
        entries = len(list((root / kind).iterdir())) if (root / kind).is_dir() else 0
        print(f"  {kind:9} {entries:5} entries {sum(f.stat().st_size for f in files) / 2**20:10.1f} MB  ({what})")
    return 0


def _recipes(args) -> int:
    from . import recipe as recipes

    if args.action == "list":
        for name in recipes.shipped_names():
            r = recipes.load(name)
            print(f"{name:28} {r.strategy:7} {r.model:18} {r.description}")
    elif args.action == "show":
        print(recipes.find(args.name).read_text(encoding="utf-8"), end="")
    elif args.action == "validate":
        r = recipes.load(args.name, args.overrides)
        print(f"{args.name}: valid ({r.task}, {r.strategy}, {r.model})")
    elif args.action == "cp":
        source, target = recipes.find(args.name), Path(args.path)
        if target.is_dir():
            target = target / source.name
        if target.exists():
            raise RecipeError(f"{target} already exists; choose another path")
        shutil.copyfile(source, target)
        print(f"copied {source.name} to {target}")
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _weights(text: str) -> list[float]:
    """A comma-separated list of weights, each 0 or more (argparse type)."""
    try:
        weights = [float(w) for w in text.split(",") if w.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers such as 0.03,0.1,0.3, got '{text}'") from None
    if not weights or any(w < 0 for w in weights):
        raise argparse.ArgumentTypeError(f"expected weights of 0 or more, got '{text}'")
    return weights


def _file_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--validation", metavar="FILE", help="validation file; overrides data.validation")
    parser.add_argument("--test", metavar="FILE", help="test file; overrides data.test")


def _trust_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trust-remote-code", action="store_true",
                        help="let a model that ships its own code run it (a loaded folder never grants this itself)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nlptransfer", description="Transfer learning for text classification.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="fine-tune a recipe on a data file")
    p.add_argument("recipe", help="shipped recipe name (see `nlptransfer recipes list`) or a YAML path")
    p.add_argument("--data", help="training file (CSV, TSV, JSONL, Parquet), a Dataset.save_to_disk folder or "
                   "hf://datasets/NAME[:config]; overrides data.train")
    p.add_argument("--resume", nargs="?", const=True, default=None, metavar="RUN",
                   help="continue an interrupted run (its folder, or the recipe's output name) from its last checkpoint")
    p.add_argument("--report", action="store_true",
                   help="after training, write report/: tf-idf baseline, transfer indicators, verdict (extra fits)")
    _file_flags(p)
    p.add_argument("--output", metavar="DIR", help="parent folder of the run folder; overrides output.dir")
    p.add_argument("--name", help="run folder name; overrides output.name")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="recipe overrides, e.g. training.epochs=2")
    _trust_flag(p)
    p.set_defaults(func=_run)

    p = sub.add_parser("adapt", help="masked-LM pretraining of a recipe's encoder on a new domain's unlabelled "
                       "texts, alone: an encoder folder any recipe can start from")
    p.add_argument("recipe", help="shipped recipe name or a YAML path (its model, data.max_length, adapt.* settings)")
    p.add_argument("--target", metavar="FILE", help="the target domain's unlabelled texts; overrides adapt.target")
    p.add_argument("--data", help="the source training file (used when adapt.include_source=true)")
    p.add_argument("--resume", nargs="?", const=True, default=None, metavar="RUN",
                   help="continue an interrupted pretraining (its folder) from its last checkpoint")
    p.add_argument("--output", metavar="DIR", help="parent folder of the run folder; overrides output.dir")
    p.add_argument("--name", help="run folder name (default: <recipe name>-encoder); overrides output.name")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="recipe overrides, e.g. adapt.epochs=3")
    _trust_flag(p)
    p.set_defaults(func=_adapt)

    p = sub.add_parser("check", help="check the data as a run would read it, without training (like spaCy's "
                       "debug data): exit 0 when a run could start, 2 when not")
    p.add_argument("recipe", help="shipped recipe name or a YAML path (its data settings and model's tokenizer)")
    p.add_argument("--data", help="training file (CSV, TSV, JSONL, Parquet), a Dataset.save_to_disk folder or "
                   "hf://datasets/NAME[:config]; overrides data.train")
    _file_flags(p)
    p.add_argument("--json", action="store_true", help="print the data report (the schema of data_report.json)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="recipe overrides, e.g. data.delimiter=';'")
    _trust_flag(p)
    p.set_defaults(func=_check)

    p = sub.add_parser("report", help="did transfer help? write the transfer report of a finished run")
    p.add_argument("run", help="run folder")
    p.add_argument("overrides", nargs="*", metavar="report.key=value", help="report settings, e.g. report.price_per_hour=2")
    _trust_flag(p)
    p.set_defaults(func=_report)

    p = sub.add_parser("compare", help="fine-tune several strategies on the same splits and compare them")
    p.add_argument("--data", help="training file; overrides data.train")
    p.add_argument("--strategies", default="head,top_k,lora,full", help="comma-separated (default: %(default)s)")
    p.add_argument("--adapt-weights", metavar="W,W,...", type=_weights, help="also compare these adapt.weight values (a recipe that "
                   "adapts); the one kept is chosen by source validation, never by target labels")
    p.add_argument("overrides", nargs="*", metavar="[recipe] key=value",
                   help="a recipe name or YAML path first (default sentiment-minilm), then overrides")
    p.set_defaults(func=_compare)

    p = sub.add_parser("predict", help="predict labels for a file with a finished run")
    p.add_argument("run", help="run folder, or a pushed repo NAMESPACE/NAME")
    p.add_argument("--input", required=True, help="file of texts (CSV, TSV, JSONL, Parquet)")
    p.add_argument("--output", required=True, help="where to write the predictions (.csv, .tsv, .jsonl or .parquet)")
    p.add_argument("--text-column", action="append", help="text column (repeat to join several); default: inferred")
    p.add_argument("--batch-size", type=_positive_int, default=64, help="texts per batch (default %(default)s)")
    p.add_argument("--backend", choices=("torch", "onnx", "onnx-int8"), default="torch",
                   help="onnx / onnx-int8: ONNX Runtime on the run's onnx/ export (`nlptransfer export RUN --onnx`)")
    p.add_argument("--revision", help="with a hub repo: branch or commit (default main)")
    p.add_argument("--hub", metavar="PATH", help="with a hub repo: a folder hub instead of the Hugging Face Hub")
    p.add_argument("overrides", nargs="*", metavar="data.key=value",
                   help="how to read the input, e.g. data.delimiter=';' (default: as the run read its data)")
    _trust_flag(p)
    p.set_defaults(func=_predict)

    p = sub.add_parser("serve", help="serve a finished run over HTTP: batched predictions, metrics, drift")
    p.add_argument("run", help="run folder, or a pushed repo NAMESPACE/NAME")
    p.add_argument("--hub", metavar="PATH", help="with a hub repo: a folder hub instead of the Hugging Face Hub")
    p.add_argument("--revision", help="with a hub repo: branch or commit (default main)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s)")
    p.add_argument("--port", type=_positive_int, default=8000, help="(default %(default)s)")
    p.add_argument("--backend", choices=("torch", "onnx", "onnx-int8"), default="torch")
    p.add_argument("--workers", type=_positive_int, default=1, help="worker processes (each loads the model)")
    p.add_argument("--max-batch-size", type=_positive_int, default=64, help="texts per batch (default %(default)s)")
    p.add_argument("--max-batch-tokens", type=_positive_int, default=16384,
                   help="tokens per batch, summed over its texts (default %(default)s)")
    p.add_argument("--max-wait-ms", type=float, default=5.0,
                   help="how long a batch's first text waits for more (default %(default)s)")
    p.add_argument("--max-queue", type=_positive_int, default=1024,
                   help="texts waiting, at most; beyond that 503 (default %(default)s)")
    p.add_argument("--max-texts", type=_positive_int, default=256, help="texts per request (default %(default)s)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds a request may wait: then 504")
    p.add_argument("--api-key-env", metavar="VAR", help="require 'Authorization: Bearer <the value of VAR>'")
    p.add_argument("--prediction-log", metavar="FILE", help="log every prediction as JSONL (rotated)")
    p.add_argument("--log-texts", action="store_true", help="put the texts in the prediction log (else a sha256)")
    p.add_argument("--drift-window", type=_positive_int, default=500, help="live texts the drift test compares")
    p.add_argument("--drift-psi", type=float, default=0.25, help="PSI above this raises the drift alarm")
    p.add_argument("--drift-p", type=float, default=0.01, help="MMD p-value below this (with MMD^2 of at least "
                   "--drift-mmd) raises the drift alarm")
    p.add_argument("--drift-mmd", type=float, default=0.05, help="the least embedding MMD^2 that counts as drift")
    _trust_flag(p)
    p.set_defaults(func=_serve)

    p = sub.add_parser("push", help="check a finished run, then upload it with a model card to a hub")
    p.add_argument("run", help="run folder")
    p.add_argument("--repo", required=True, metavar="NAMESPACE/NAME", help="the hub repo, e.g. my-team/reviews-lora")
    p.add_argument("--revision", help="branch to push to (created from main if new; main stays as it is)")
    p.add_argument("--private", action="store_true", help="create the repo private (Hugging Face Hub)")
    p.add_argument("--hub", metavar="PATH", help="push to this folder hub (a local or mounted directory) instead of "
                   "the Hugging Face Hub (HF_ENDPOINT, HF_TOKEN or a saved login)")
    p.add_argument("--license", default="apache-2.0", help="license in the model card metadata (default apache-2.0)")
    _trust_flag(p)
    p.set_defaults(func=_push)

    p = sub.add_parser("export", help="write a standalone transformers model of a run (adapter merged), or ONNX")
    p.add_argument("run", help="run folder")
    p.add_argument("--merge", metavar="OUT", help="new folder for the merged model")
    p.add_argument("--onnx", action="store_true", help="write RUN/onnx/: float32 and int8 ONNX models for "
                   "`predict --backend onnx|onnx-int8`, checked against the run (needs nlptransfer[onnx])")
    _trust_flag(p)
    p.set_defaults(func=_export)

    p = sub.add_parser("evaluate", help="metrics of a finished run on a labelled file")
    p.add_argument("run", help="run folder")
    p.add_argument("--data", required=True, help="labelled file")
    p.add_argument("--text-column", action="append")
    p.add_argument("--label-column")
    p.add_argument("--slice-by", action="append", metavar="COLUMN",
                   help="also give accuracy, macro-F1 and recall per value of this column (repeatable)")
    p.add_argument("--output", help="also write the metrics as JSON here")
    p.add_argument("overrides", nargs="*", metavar="data.key=value",
                   help="how to read the file, e.g. data.delimiter=';' (default: as the run read its data)")
    _trust_flag(p)
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("cache", help="what the cache of data stage results and token ids holds, or --clear it")
    p.add_argument("--clear", action="store_true", help="delete every entry (always safe: runs make them again)")
    p.set_defaults(func=_cache)

    p = sub.add_parser("recipes", help="list, show, validate or copy shipped recipes")
    rsub = p.add_subparsers(dest="action", required=True)
    rsub.add_parser("list")
    rsub.add_parser("show").add_argument("name")
    v = rsub.add_parser("validate")
    v.add_argument("name")
    v.add_argument("overrides", nargs="*", metavar="key=value")
    c = rsub.add_parser("cp")
    c.add_argument("name")
    c.add_argument("path")
    p.set_defaults(func=_recipes)
    return parser


class _Stdout(logging.StreamHandler):
    """A handler writing to whatever sys.stdout is when a message is emitted (it may be replaced after set-up)."""

    def __init__(self):
        super().__init__(sys.stdout)

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, value):
        pass


class _Messages(logging.Formatter):
    """Info as the plain message; warnings and worse prefixed with their level."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return text if record.levelno < logging.WARNING else f"{record.levelname.lower()}: {text}"


def configure_logging() -> None:
    """nlptransfer's messages to stdout (info on the main process, warnings only on the others); transformers'
    own messages and weight-loading bars off (we report what matters ourselves)."""
    logger = logging.getLogger("nlptransfer")
    if not any(isinstance(h, _Stdout) for h in logger.handlers):
        handler = _Stdout()
        handler.setFormatter(_Messages("%(message)s"))
        logger.addHandler(handler)
    main_process = os.environ.get("RANK", "0") == "0"
    logger.setLevel(logging.INFO if main_process else logging.WARNING)
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if "transformers" in sys.modules:  # imported already (by a caller of main): set it directly
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
    else:  # read when transformers is first imported, which stays off the start-up path
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    # a masked-LM checkpoint ties its decoder to the word embeddings: Accelerate says at every save that it stored the
    # shared tensor once, and the model ties it again on load (the resume tests check that it is exact)
    logging.getLogger("accelerate.utils.other").setLevel(logging.ERROR)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `nlptransfer` command."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # key=value overrides may come before or after options: argparse stops collecting positionals at an option
    if extra and hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
        args.overrides = list(args.overrides or []) + extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if "TOKENIZERS_PARALLELISM" not in os.environ:  # off for what else runs here; on again for a bulk pass (tokens.py)
        os.environ["TOKENIZERS_PARALLELISM"] = "false"
        os.environ["NLPTRANSFER_TOKENIZER_THREADS"] = "bulk"  # tokens.BULK_THREADS
    configure_logging()
    import warnings

    # peft 0.21 calls an attribute transformers 5 renamed; the warning is theirs and says nothing to a user
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
    try:
        code = args.func(args)
    except NlpTransferError as e:
        print(f"error: {e}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        code = 130
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        _leave(code)
    return code


def _leave(code: int) -> None:
    """End a process of a multi-process run (torchrun, accelerate launch) once its work is done and written: the exit
    handlers run (the process group is destroyed), then the process ends without the interpreter's teardown, where
    gloo's threads can still abort it (SIGABRT, "terminate called without an active exception") and make torchrun
    report a finished run as failed."""
    import atexit

    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)


if __name__ == "__main__":
    sys.exit(main())
