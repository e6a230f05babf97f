"""`nlptransfer export`: a standalone transformers model of a run (adapter merged), or ONNX."""
from __future__ import annotations

from ..errors import RunError
from .flags import trust_flag


def add_parser(sub) -> None:
    """The `export` verb and its flags."""
    p = sub.add_parser("export", help="write a standalone transformers model of a run (adapter merged), or ONNX")
    p.add_argument("run", help="run folder")
    p.add_argument("--merge", metavar="OUT", help="new folder for the merged model")
    p.add_argument("--onnx", action="store_true", help="write RUN/onnx/: float32 and int8 ONNX models for "
                   "`predict --backend onnx|onnx-int8`, checked against the run (needs nlptransfer[onnx])")
    trust_flag(p)
    p.set_defaults(func=handle)


def handle(args) -> int:
    """Write what was asked for: the merged model, the ONNX models, or both."""
    if not (args.merge or args.onnx):
        raise RunError("say what to export: --merge OUT (a standalone transformers model) and/or --onnx")
    from ..publish import export_merged, export_onnx

    if args.merge:
        export_merged(args.run, args.merge, trust_remote_code=args.trust_remote_code)
    if args.onnx:
        export_onnx(args.run, trust_remote_code=args.trust_remote_code)
    return 0
