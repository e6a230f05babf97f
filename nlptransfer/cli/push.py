"""`nlptransfer push`: check a finished run, then upload it with a model card."""
from __future__ import annotations

from .flags import trust_flag


def add_parser(sub) -> None:
    """The `push` verb and its flags."""
    p = sub.add_parser("push", help="check a finished run, then upload it with a model card to a hub")
    p.add_argument("run", help="run folder")
    p.add_argument("--repo", required=True, metavar="NAMESPACE/NAME", help="the hub repo, e.g. my-team/reviews-lora")
    p.add_argument("--revision", help="branch to push to (created from main if new; main stays as it is)")
    p.add_argument("--private", action="store_true", help="create the repo private (Hugging Face Hub)")
    p.add_argument("--hub", metavar="PATH", help="push to this folder hub (a local or mounted directory) instead of "
                   "the Hugging Face Hub (HF_ENDPOINT, HF_TOKEN or a saved login)")
    p.add_argument("--license", default="apache-2.0", help="license in the model card metadata (default apache-2.0)")
    trust_flag(p)
    p.set_defaults(func=handle)


def handle(args) -> int:
    """Push the run."""
    from ..publish import push

    push(args.run, args.repo, hub=args.hub, revision=args.revision, private=args.private, license=args.license,
         trust_remote_code=args.trust_remote_code)
    return 0
