"""Recipe: a validated, frozen description of a run, read from YAML plus dotted key=value overrides. It composes the
recipe's own sections (sections.py) with those registry entries register (nlptransfer.registry.SECTIONS) and validates
them all at once."""
from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .data.schema import DataSpec
from .errors import RecipeError, RegistryError, quoted, shortened
from .registry import SECTIONS, Section
from .sections import (EvaluationSection, OutputSection, ReportSection, TrainingSection, check_data, check_names,
                       check_registered, check_report, check_tasks, check_training)

#: what the head reads: native (the architecture's own head input, the first token), mean (the masked mean of the
#: token states, through the architecture's head), embedding (the sentence embedding: the masked mean, L2-normalised,
#: read by the head's output layer alone, as sentence-transformers models such as all-MiniLM-L6-v2 embed)
POOLINGS = ("native", "mean", "embedding")
_SCIENTIFIC = re.compile(r"[-+]?\d+(\.\d*)?[eE][-+]?\d+")
#: the recipe's own checks; each registered section brings its own
_CHECKS = (check_training, check_data, check_report, check_tasks, check_names)
#: the most a recipe's YAML may hold written out with every alias (*name) repeated: values plus their characters; the
#: deepest it may nest; the most problems one error lists
MAX_SIZE, MAX_DEPTH, MAX_LISTED = 1_000_000, 32, 30


def registered_sections() -> list[Section]:
    """The sections registry entries own: the built-in entries' and installed plugins', in registration order."""
    from . import adaptation, objectives, strategies  # noqa: F401  the built-in entries register their sections
    from .plugins import load_plugins

    load_plugins("nlptransfer.strategies")
    load_plugins("nlptransfer.objectives")
    own = [key for key in SECTIONS if key in Recipe.__dataclass_fields__]
    if own:
        raise RegistryError(f"recipe section {own[0]!r} is registered by {SECTIONS.where(own[0])}, but it is a key of "
                            "the recipe itself: give the section another key")
    return [SECTIONS[key] for key in SECTIONS]


def _default_sections() -> dict[str, Any]:
    return {s.key: s.settings() for s in registered_sections()}


@dataclass(frozen=True)
class Recipe:
    """A complete run description: model, task, strategy, data, training and output, and the sections of registry
    entries (recipe.contrastive, recipe.adapt, ... read as attributes)."""

    name: str = "run"  #: the run folder's name unless output.name is set; a recipe file without it: the file's name
    description: str = ""  #: what the recipe is for, in a sentence (`nlptransfer recipes list` shows it)
    model: str = "minilm"  #: alias, hub id or local path
    model_revision: str | None = None  #: hub revision (branch, tag or commit)
    trust_remote_code: bool = False  #: run code shipped with a hub model
    task: str = "classification"  #: classification | sentiment (ordered labels) | multi_label (a set per row)
    strategy: str = "full"  #: head | top_k | full | lora | ia3 | any PEFT method name | a registered strategy
    top_k: int = 2  #: top_k: encoder layers that train (from the top)
    layer_lr_decay: float = 1.0  #: top_k/full: lr multiplier per layer going down (1 = none)
    pooling: str = "native"  #: native | mean | embedding (POOLINGS)
    data: DataSpec = field(default_factory=DataSpec)
    training: TrainingSection = field(default_factory=TrainingSection)
    evaluation: EvaluationSection = field(default_factory=EvaluationSection)
    output: OutputSection = field(default_factory=OutputSection)
    report: ReportSection = field(default_factory=ReportSection)
    #: the registered sections by key (peft, adapt, labels, contrastive, a plugin's), each read as recipe.<key>
    sections: dict[str, Any] = field(default_factory=_default_sections)

    def __getattr__(self, name: str) -> Any:
        sections = self.__dict__.get("sections", {})
        if name in sections:
            return sections[name]
        raise AttributeError(f"'Recipe' has no field or registered section '{name}'")

    def to_dict(self) -> dict:
        """The resolved recipe as plain data (every default filled in)."""
        data = dataclasses.asdict(self)
        data.update(data.pop("sections"))
        return data

    def to_yaml(self) -> str:
        """The resolved recipe as YAML."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def replace(self, **changes: Any) -> "Recipe":
        """A copy with dotted-key changes applied and validated, e.g. replace(**{"training.lr": 1e-4})."""
        data = self.to_dict()
        for key, value in changes.items():
            _set_dotted(data, key, value)
        return from_dict(data)


# ---------------------------------------------------------------- parsing and validation


def _fields(cls: type) -> dict[str, Any]:
    if cls is Recipe:
        return _schema()
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _schema() -> dict[str, Any]:
    """The recipe's top-level keys and their types: its own fields, then the registered sections."""
    hints = typing.get_type_hints(Recipe)
    own = {f.name: hints[f.name] for f in dataclasses.fields(Recipe) if f.name != "sections"}
    return {**own, **{s.key: s.settings for s in registered_sections()}}


def _suggest(key: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(key, valid, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _check_type(path: str, value: Any, hint: Any, problems: list[str]) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _check_type(path, value, inner[0], problems)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            problems.append(f"{quoted(path)} must be a mapping of its keys, got {quoted(value)}")
            return hint()
        return _build(hint, value, path + ".", problems)
    if origin is list:
        if isinstance(value, (str, int, float)):
            value = [value]
        if not isinstance(value, (list, tuple)):
            problems.append(f"{quoted(path)} must be a list, got {quoted(value)}")
            return None
        return [_check_type(f"{path}[{i}]", v, args[0], problems) for i, v in enumerate(value)]
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            problems.append(f"{quoted(path)} must be a mapping, got {quoted(value)}")
            return {}
        if not args:
            return dict(value)
        return {k: _check_type(f"{path}.{k}", v, args[1], problems) for k, v in value.items()}
    if hint is Any:
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
        problems.append(f"{quoted(path)} must be true or false, got {quoted(value)}")
        return False
    if hint is float and isinstance(value, str) and _SCIENTIFIC.fullmatch(value.strip()):
        value = float(value)  # YAML 1.1 reads 1e-4 (no dot) as a string
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if hint in (int, str) and isinstance(value, hint) and not isinstance(value, bool):
        return value
    if hint is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    problems.append(f"{quoted(path)} must be {getattr(hint, '__name__', hint)}, got {quoted(value)}")
    return None


def _build(cls: type, data: dict, prefix: str, problems: list[str]) -> Any:
    fields = _fields(cls)
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            valid = ", ".join(fields)
            problems.append(f"unknown key {quoted(f'{prefix}{key}')}{_suggest(str(key), list(fields))}; valid keys "
                            f"here: {valid}")
            continue
        kwargs[key] = _check_type(prefix + key, value, fields[key], problems)
    if problems:
        return None
    if cls is Recipe:
        kwargs["sections"] = {s.key: kwargs.pop(s.key, None) or s.settings() for s in registered_sections()}
    return cls(**kwargs)


def _check_combinations(recipe: Recipe, registered: bool) -> list[str]:
    problems = []
    if registered:
        problems += check_registered(recipe)
    if recipe.pooling not in POOLINGS:
        problems.append(f"pooling must be one of {', '.join(POOLINGS)}, got {quoted(recipe.pooling)}")
    if not 0 < recipe.layer_lr_decay <= 1:
        problems.append(f"layer_lr_decay must be in (0, 1], got {recipe.layer_lr_decay}")
    for check in (*_CHECKS, *(s.check for s in registered_sections() if s.check)):
        problems += check(recipe)
    return problems + _check_finite(recipe.to_dict())


def _check_finite(data: dict, prefix: str = "") -> list[str]:
    """Every number in the recipe must be finite (a NaN passes every range check, then breaks training)."""
    problems = []
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, float) and not math.isfinite(value):
            problems.append(f"{quoted(path)} must be a finite number, got {value}")
        elif isinstance(value, dict):
            problems += _check_finite(value, path + ".")
    return problems


def from_dict(data: dict | None, source: str = "recipe", registered: bool = True) -> Recipe:
    """Validate plain data into a Recipe, raising RecipeError that lists every problem. registered=False leaves
    out the checks against the strategy and objective registries (prediction needs neither), and keeps the section of
    an entry nobody registered here (a plugin's, not installed) as it is, unchecked."""
    problems: list[str] = []
    data, unchecked = dict(data or {}), {}
    if not registered:
        schema = _schema()
        unchecked = {k: data.pop(k) for k in list(data) if k not in schema and isinstance(data[k], dict)}
    recipe = _build(Recipe, data, "", problems)
    if recipe is not None:
        problems += _check_combinations(recipe, registered)
    if problems:
        more = [f"... and {len(problems) - MAX_LISTED:,} more"] if len(problems) > MAX_LISTED else []
        raise RecipeError(f"invalid {source}:\n" + "\n".join(f"  - {p}" for p in problems[:MAX_LISTED] + more))
    return dataclasses.replace(recipe, sections={**recipe.sections, **unchecked}) if unchecked else recipe


def parse_override(text: str) -> tuple[str, Any]:
    """Split 'training.lr=1e-4' into ('training.lr', 0.0001), parsing the value as YAML."""
    if "=" not in text:
        raise RecipeError(f"override {quoted(text)} must look like key=value, e.g. training.epochs=2")
    key, raw = text.split("=", 1)
    try:
        value = read_yaml(raw, f"override {quoted(key.strip())}") if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def _set_dotted(data: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise RecipeError(f"override {quoted(key)}: {quoted(part)} is not a section")
        node = child
    node[parts[-1]] = value


class _BoundedLoader(yaml.SafeLoader):
    """A SafeLoader that sizes each value as it composes it, an alias (*name) as the value it repeats, and refuses a
    document past MAX_SIZE or MAX_DEPTH (an alias bomb) before anything is built from it."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self.sizes: dict[int, int] = {}  # id(node) -> its size written out (the nodes live as long as the loader)
        self.size = self.depth = 0

    def compose_node(self, parent, index):
        alias, start = self.check_event(yaml.AliasEvent), self.size
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise RecipeError(f"nests values more than {MAX_DEPTH} levels deep; a recipe needs a few")
        node = super().compose_node(parent, index)
        self.depth -= 1
        if alias and id(node) not in self.sizes:
            raise RecipeError("has an alias (*name) inside the value it repeats: written out, it never ends")
        own = 1 + (len(node.value) if isinstance(node, yaml.ScalarNode) else 0)
        self.size += self.sizes[id(node)] if alias else own
        self.sizes.setdefault(id(node), self.size - start)
        if self.size > MAX_SIZE:
            raise RecipeError(f"is over {MAX_SIZE:,} characters written out with its aliases (*name) repeated; a "
                              f"recipe needs far fewer: refused (an alias bomb?)")
        return node


def read_yaml(text: str, what: str) -> Any:
    """The data of YAML `text` (`what`: the file or override it is, for messages), read safely and bounded in size
    (MAX_SIZE) and nesting (MAX_DEPTH): RecipeError past them, yaml.YAMLError when it is not YAML."""
    try:
        return yaml.load(text, Loader=_BoundedLoader)
    except RecipeError as e:
        raise RecipeError(f"{what} {e}") from None
    except ValueError as e:  # a value YAML's syntax allows but Python refuses, e.g. an integer of 5,000 digits
        raise yaml.YAMLError(str(e)) from None


def shipped_dir() -> Path:
    """The folder of recipes shipped with the package."""
    return Path(str(resources.files("nlptransfer.recipes")))


def shipped_names() -> list[str]:
    """Names of the shipped recipes."""
    return sorted(p.stem for p in shipped_dir().glob("*.yaml"))


def find(name_or_path: str) -> Path:
    """The YAML file of a shipped recipe name or a path."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        if not path.is_file():
            raise RecipeError(f"recipe file not found: {shortened(name_or_path)}")
        return path
    candidate = shipped_dir() / f"{name_or_path}.yaml"
    if candidate.is_file():
        return candidate
    names = shipped_names()
    raise RecipeError(
        f"no recipe named {quoted(name_or_path)}{_suggest(name_or_path, names)}; shipped recipes: {', '.join(names)} "
        "(or give a path to a YAML file)"
    )


def read_saved(path: str | Path, registered: bool = True) -> Recipe:
    """The resolved recipe saved in a run or repo folder (its recipe.yaml), validated again (registered=False:
    without the registry checks, for prediction, which needs no strategy or objective)."""
    from .errors import RunError

    path = Path(path)
    try:
        data = read_yaml(_text(path, RunError), str(path))
    except yaml.YAMLError as e:
        raise RunError(f"{path} is damaged: it is not valid YAML ({str(e).splitlines()[0]}); restore it") from None
    if not isinstance(data, dict):
        raise RunError(f"{path} is damaged: it holds no recipe (a mapping of recipe keys); restore it")
    return from_dict(data, source=str(path), registered=registered)


def _text(path: Path, error: type[Exception]) -> str:
    """The text of a recipe file; `error` when it is over MAX_SIZE bytes or not UTF-8 (never read whole first)."""
    if (size := path.stat().st_size) > MAX_SIZE:
        raise error(f"{path} is {size:,} bytes: a recipe is a YAML file of at most {MAX_SIZE:,}; give the recipe itself")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise error(f"{path} is not a recipe: it is not UTF-8 text (byte {e.start}); give a YAML file") from None


def refuse_untrusted_code(recipe: Recipe, allowed: bool, source: str | Path) -> None:
    """RunError when the recipe saved in `source` asks for trust_remote_code and the caller did not allow it: a
    loaded file never grants that permission itself (as transformers requires the caller to say it)."""
    from .errors import RunError

    if recipe.trust_remote_code and not allowed:
        raise RunError(f"{source} was trained with trust_remote_code: its model {quoted(recipe.model)} runs code that "
                       f"it ships. A loaded folder never grants that itself: pass --trust-remote-code (in Python "
                       f"trust_remote_code=True) if you trust that code")


def overrides(given: list[str] | dict[str, Any] | None) -> dict[str, Any]:
    """Overrides as {dotted key: value}: from 'key=value' strings (values parsed as YAML) or a mapping."""
    if isinstance(given, dict):
        return dict(given)
    return dict(parse_override(o) for o in given or [])


def load(name_or_path: str, changes: list[str] | dict[str, Any] | None = None) -> Recipe:
    """Load a shipped recipe or YAML file, apply overrides, validate and return it."""
    path = find(name_or_path)
    try:
        data = read_yaml(_text(path, RecipeError), str(path)) or {}
    except yaml.YAMLError as e:
        raise RecipeError(f"{path} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise RecipeError(f"{path} must be a mapping of recipe keys, got {type(data).__name__}")
    data.setdefault("name", path.stem)
    data = _over_defaults(Recipe, data)  # so that a dotted override adds to a default mapping (training.objectives.x=1)
    for key, value in overrides(changes).items():
        _set_dotted(data, key, value)
    return from_dict(data, source=f"recipe {path.name}")


def _over_defaults(cls: type, data: dict) -> dict:
    """`data` laid over the defaults of `cls`: sections merge key by key; any other value (a mapping such as
    training.objectives too) replaces the default whole. Unknown keys stay, to be reported."""
    merged = Recipe().to_dict() if cls is Recipe else dataclasses.asdict(cls())
    hints = _fields(cls)
    for key, value in data.items():
        if key in hints and dataclasses.is_dataclass(hints[key]) and isinstance(value, dict):
            merged[key] = _over_defaults(hints[key], value)
        else:
            merged[key] = value
    return merged


def resolve(recipe: str | Recipe, data: str | None = None,
            changes: list[str] | dict[str, Any] | None = None) -> Recipe:
    """The recipe to run: a shipped name, YAML path or Recipe, with overrides and the training file applied."""
    given = overrides(changes)
    resolved = recipe.replace(**given) if isinstance(recipe, Recipe) else load(recipe, given)
    return resolved.replace(**{"data.train": str(data)}) if data is not None else resolved
