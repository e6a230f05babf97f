"""`nlptransfer cache`: what the cache holds, or --clear it."""
from __future__ import annotations

#: the cache's folders and what each holds
KINDS = {"splits": "data stage results", "tokens": "token ids", "datasets": "data sets written as Parquet"}


def add_parser(sub) -> None:
    """The `cache` verb and its flags."""
    p = sub.add_parser("cache", help="what the cache of data stage results and token ids holds, or --clear it")
    p.add_argument("--clear", action="store_true",
                   help="delete every entry no run in progress uses (safe: runs make them again)")
    p.set_defaults(func=handle)


def handle(args) -> int:
    """Print each kind's entries and size, or empty the cache of what no run uses."""
    from ..cache import DIGESTS, cache_root, clear
    from ..fsio import is_temporary

    root = cache_root()
    if args.clear:
        removed, kept = 0, []
        for kind in KINDS:
            gone, held = clear(root / kind)
            removed, kept = removed + gone, kept + held
        print(f"cleared {root}: {removed} entries removed" + (f", {len(kept)} kept:" if kept else ""))
        for line in kept:
            print(f"  kept {line}")
        return 0
    print(f"cache: {root} (set NLPTRANSFER_CACHE to move it; `nlptransfer cache --clear` empties it)")
    for kind, what in KINDS.items():
        files = [f for f in (root / kind).rglob("*") if f.is_file()] if (root / kind).is_dir() else []
        entries = len([p for p in (root / kind).iterdir() if not is_temporary(p.name)
                       and not p.name.endswith(f".{DIGESTS}")]) if (root / kind).is_dir() else 0
        print(f"  {kind:9} {entries:5} entries {sum(f.stat().st_size for f in files) / 2**20:10.1f} MB  ({what})")
    return 0
