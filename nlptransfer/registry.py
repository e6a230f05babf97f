"""Registries of what users extend (strategies, objectives, adaptation methods, task kinds): a name is registered once,
and a second registration of it is refused naming both. Also the recipe sections those entries own: a settings
dataclass under one top-level recipe key, with its check, that the recipe composes and validates with the rest."""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Generic, Iterator, TypeVar

from .errors import RegistryError

if TYPE_CHECKING:
    from .recipe import Recipe

T = TypeVar("T")


def origin(function: Callable) -> str:
    """Where a registered function is defined, as module.qualified_name."""
    return f"{getattr(function, '__module__', '?')}.{getattr(function, '__qualname__', repr(function))}"


def caller(depth: int = 2) -> str:
    """The module that called the registering function (`depth` frames up from the caller of this one)."""
    return sys._getframe(depth).f_globals.get("__name__", "?")


class Registry(Generic[T]):
    """Entries of one kind by name, each with where it was registered; a name cannot be registered twice."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._origins: dict[str, str] = {}

    def add(self, name: str, entry: T, where: str) -> T:
        """Register `entry` as `name` (`where`: the module or function registering it); RegistryError if taken."""
        self.refuse_taken(name, where)
        self._entries[name] = entry
        self._origins[name] = where
        return entry

    def refuse_taken(self, name: str, where: str) -> None:
        """RegistryError naming both registrations when `name` is taken already."""
        if name in self._entries:
            raise RegistryError(f"{self.kind} '{name}' is registered twice: by {self._origins[name]} and again by "
                                f"{where}; give one of them another name (or import the module registering it once)")

    def where(self, name: str) -> str:
        """Where entry `name` was registered."""
        return self._origins[name]

    def get(self, name: str) -> T | None:
        return self._entries.get(name)

    def __getitem__(self, name: str) -> T:
        return self._entries[name]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def names(self) -> list[str]:
        return list(self._entries)


@dataclass(frozen=True)
class Section:
    """A recipe section a registry entry owns: its top-level key, its settings dataclass (every field defaulted), the
    check of a validated recipe that returns its problems (messages, run whenever a recipe is validated), and the
    warnings a run logs before training (settings that are valid but likely mistaken, e.g. a learning rate far off)."""

    key: str
    settings: type
    check: Callable[["Recipe"], list[str]] | None = None
    warnings: Callable[["Recipe"], list[str]] | None = None


#: the sections registry entries own, in registration order (the order of the resolved recipe's YAML)
SECTIONS: Registry[Section] = Registry("recipe section")


def register_section(section: Section, owner: str) -> Section:
    """Add `section` to the recipe (`owner`: what registers it, for a refused duplicate key)."""
    return SECTIONS.add(section.key, section, owner)
