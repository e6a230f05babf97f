"""Plugins: installed packages can offer strategies and objectives through the entry-point groups
"nlptransfer.strategies" and "nlptransfer.objectives"; each entry names a module that registers them on import
(e.g. in a plugin's pyproject.toml: [project.entry-points."nlptransfer.strategies"] bias = "my_pkg.bias")."""
from __future__ import annotations

_LOADED: set[str] = set()


def load_plugins(group: str) -> None:
    """Import every module offered under entry-point group `group` (once per process)."""
    if group in _LOADED:
        return
    _LOADED.add(group)
    from importlib.metadata import entry_points

    for entry in entry_points(group=group):
        entry.load()
