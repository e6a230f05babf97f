"""`nlptransfer serve`: a finished run over HTTP. Its server settings' flags are made from ServeConfig's fields (and
its DriftSettings'): a field with a "help" in its metadata is a flag."""
from __future__ import annotations

import dataclasses
import typing

from ..errors import RunError
from ..serve.config import ServeConfig
from .flags import positive_int, trust_flag

#: argparse types of the settings' fields: their whole numbers are sizes and counts, each at least 1
_TYPES = {int: positive_int, float: float}


def _flag(field: dataclasses.Field) -> str:
    return field.metadata.get("flag", "--" + field.name.replace("_", "-"))


def _dest(field: dataclasses.Field) -> str:
    return _flag(field)[2:].replace("-", "_")


def _flagged(settings: type) -> typing.Iterator[tuple[dataclasses.Field, type]]:
    """The fields of the dataclass `settings` that have a flag, with their types, nested settings' fields too."""
    types = typing.get_type_hints(settings)
    for field in dataclasses.fields(settings):
        if dataclasses.is_dataclass(types[field.name]):
            yield from _flagged(types[field.name])
        elif "help" in field.metadata:
            yield field, types[field.name]


def add_settings_flags(parser, settings: type) -> None:
    """A flag for every field of the dataclass `settings` that has one: its default, help and type."""
    for field, kind in _flagged(settings):
        extra = {k: field.metadata[k] for k in ("metavar",) if k in field.metadata}
        if kind is bool:
            parser.add_argument(_flag(field), action="store_true", help=field.metadata["help"])
        else:
            parser.add_argument(_flag(field), type=_TYPES.get(kind), default=field.default,
                                help=field.metadata["help"], **extra)


def settings_from(args, settings: type):
    """An instance of the dataclass `settings` with what the flags say (the defaults where a field has no flag)."""
    types = typing.get_type_hints(settings)
    values = {}
    for field in dataclasses.fields(settings):
        if dataclasses.is_dataclass(types[field.name]):
            values[field.name] = settings_from(args, types[field.name])
        elif "help" in field.metadata:
            values[field.name] = getattr(args, _dest(field))
    return settings(**values)


def add_parser(sub) -> None:
    """The `serve` verb and its flags."""
    p = sub.add_parser("serve", help="serve a finished run over HTTP: batched predictions, metrics, drift")
    p.add_argument("run", help="run folder, or a pushed repo NAMESPACE/NAME")
    p.add_argument("--hub", metavar="PATH", help="with a hub repo: a folder hub instead of the Hugging Face Hub")
    p.add_argument("--revision", help="with a hub repo: branch or commit (default main)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s)")
    p.add_argument("--port", type=positive_int, default=8000, help="port to listen on (default %(default)s)")
    p.add_argument("--backend", choices=("torch", "onnx", "onnx-int8"), default="torch",
                   help="onnx / onnx-int8: ONNX Runtime on the run's onnx/ export (`nlptransfer export RUN --onnx`)")
    p.add_argument("--workers", type=positive_int, default=1, help="worker processes (each loads the model)")
    add_settings_flags(p, ServeConfig)
    trust_flag(p)
    p.set_defaults(func=handle)


def handle(args) -> int:
    """Serve until stopped."""
    try:
        from ..serve import serve
        from ..serve.run import preflight
    except ImportError as e:
        raise RunError(f'serving needs fastapi, uvicorn and prometheus-client: pip install "nlptransfer[serve]" '
                       f"({e.name} is missing)") from None
    config = settings_from(args, ServeConfig)
    preflight(args.host, args.port, config)  # before the line that says it serves
    print(f"serving {args.run} on http://{args.host}:{args.port} ({args.backend}, {args.workers} worker(s)); "
          "docs at /docs", flush=True)
    serve(args.run, host=args.host, port=args.port, backend=args.backend, workers=args.workers, config=config,
          hub=args.hub, revision=args.revision, trust_remote_code=args.trust_remote_code)
    return 0
