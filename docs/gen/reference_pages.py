"""The reference pages that read the code: the CLI (from the argparse parser), the recipe (from the Recipe dataclasses
and the registered sections, with each field's `#:` help), the Python API (mkdocstrings blocks for nlptransfer.__all__)
and the run folder (from nlptransfer.run). Each page function returns Markdown; docs/gen/pages.py writes them into
the site at build time, and tests/test_site.py calls them directly."""
from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
import inspect
import io
import json
import textwrap
import tokenize
import typing

#: the first paragraph of every generated page
INTRO = "Generated from the code when the site is built: it lists what this version of nlptransfer accepts."


def cell(text: object) -> str:
    """Text that is safe in a Markdown table cell: one line, pipes escaped, no raw HTML."""
    return " ".join(str(text).split()).replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def code(text: object) -> str:
    """`text` as a code span inside a table cell (Markdown keeps a pipe or < in a code span as it is)."""
    text = " ".join(str(text).split())
    return f"`` {text} ``" if "`" in text else f"`{text}`"


# ---------------------------------------------------------------- the command line


def _walk(parser: argparse.ArgumentParser, path: tuple[str, ...]) -> list[tuple[tuple[str, ...], str,
                                                                              argparse.ArgumentParser]]:
    """Every command under `parser`: (its words, its help, its parser), depth first in the order they were added."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            for name, sub in action.choices.items():
                found.append(((*path, name), helps.get(name, ""), sub))
                found += _walk(sub, (*path, name))
    return found


def commands() -> list[tuple[tuple[str, ...], str, argparse.ArgumentParser]]:
    """Every command of `nlptransfer` (its words after `nlptransfer`, its help, its parser)."""
    from nlptransfer.cli import build_parser

    return _walk(build_parser(), ())


def _flag_help(action: argparse.Action) -> str:
    text = action.help or ""
    if "%(" in text:
        text = text % {**vars(action), "prog": "nlptransfer"}
    return text


def _default(action: argparse.Action) -> str:
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)) or action.nargs == 0:
        return ""
    if action.default in (None, argparse.SUPPRESS) or action.default == []:
        return ""
    return code(action.default)


def arguments(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The arguments and flags of one command (not --help, not its subcommands)."""
    return [a for a in parser._actions if not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction))]


def _argument_name(action: argparse.Action) -> str:
    """The argument as `--help` writes it: --resume [RUN], --backend {torch,onnx}, key=value [key=value ...]."""
    return argparse.HelpFormatter("nlptransfer")._format_action_invocation(action)


def cli_page() -> str:
    """reference/cli.md: every command and flag of `nlptransfer`, from its parser."""
    lines = ["# Command line", "", INTRO, "",
             "Every command reads `key=value` recipe overrides where its usage shows them. Run "
             "`nlptransfer COMMAND --help` for the same text in a terminal.", ""]
    for words, help_text, parser in commands():
        lines += [f"## nlptransfer {' '.join(words)}", ""]
        if help_text:
            lines += [help_text[0].upper() + help_text[1:] + ("" if help_text.endswith(".") else "."), ""]
        usage = parser.format_usage().rstrip().splitlines()  # "usage: " opens the first line and indents the rest
        lines += ["```text", usage[0].removeprefix("usage: "), *(u[7:] for u in usage[1:]), "```", ""]
        rows = arguments(parser)
        if rows:
            lines += ["| argument | help | default | choices |", "| --- | --- | --- | --- |"]
            for action in rows:
                choices = ", ".join(map(str, action.choices)) if action.choices else ""
                lines.append(f"| {code(_argument_name(action))} | {cell(_flag_help(action))} | {_default(action)} "
                             f"| {cell(choices)} |")
            lines.append("")
    return "\n".join(lines)


# ---------------------------------------------------------------- the recipe


@functools.cache
def _comments(module: str) -> dict[int, str]:
    """The `#:` comments of a module's source by line number (1-based), their text after `#:`."""
    import importlib

    source = inspect.getsource(importlib.import_module(module))
    found = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT and token.string.startswith("#:"):
            found[token.start[0]] = token.string[2:].strip()
    return found


@functools.cache
def _source_lines(module: str) -> list[str]:
    import importlib

    return inspect.getsource(importlib.import_module(module)).splitlines()


def field_help(cls: type) -> dict[str, str]:
    """Each field of dataclass `cls` and its help: the `#:` comment ending its line, or the `#:` lines right above it
    (the attribute docstring pattern); the metadata's "help" for a field that has one and no comment."""
    module = cls.__module__
    comments, lines = _comments(module), _source_lines(module)
    tree = ast.parse(textwrap.dedent("\n".join(lines)))
    node = next(n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == cls.__name__)
    meta = {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls)}
    helps = {}
    for statement in node.body:
        if not (isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name)):
            continue
        name = statement.target.id
        trailing = [comments[n] for n in range(statement.lineno, statement.end_lineno + 1) if n in comments
                    and not lines[n - 1].lstrip().startswith("#")]
        above, n = [], statement.lineno - 1
        while n in comments and lines[n - 1].lstrip().startswith("#:"):
            above.insert(0, comments[n])
            n -= 1
        helps[name] = " ".join(above + trailing).strip() or meta.get(name, "")
    return {f.name: helps.get(f.name, "") for f in dataclasses.fields(cls)}


def type_name(hint: object) -> str:
    """A type hint as a reader writes it: str | None, list[str], dict[str, float]."""
    if isinstance(hint, type) and not typing.get_args(hint):
        return hint.__name__
    return str(hint).replace("typing.", "").replace("NoneType", "None")


def default_value(f: dataclasses.Field) -> object:
    return f.default_factory() if f.default is dataclasses.MISSING else f.default


def _section_rows(prefix: str, cls: type) -> list[tuple[str, str, str, str]]:
    """(key, type, default, help) of every field of section `cls`, nested sections flattened."""
    hints, helps, rows = typing.get_type_hints(cls), field_help(cls), []
    for f in dataclasses.fields(cls):
        if f.name == "sections":
            continue
        if dataclasses.is_dataclass(hints[f.name]):
            continue  # a section of its own, listed under its key
        rows.append((prefix + f.name, type_name(hints[f.name]), json.dumps(default_value(f)), helps[f.name]))
    return rows


def recipe_sections() -> list[tuple[str, type, str]]:
    """The recipe's sections in the order of a resolved recipe: ("", Recipe) for its top-level keys, then each
    section's key, settings dataclass and what owns it (the recipe itself, or the registry entry that registers it)."""
    from nlptransfer.recipe import Recipe, registered_sections
    from nlptransfer.registry import SECTIONS

    hints = typing.get_type_hints(Recipe)
    own = [(f.name, hints[f.name], "the recipe") for f in dataclasses.fields(Recipe)
           if dataclasses.is_dataclass(hints[f.name])]
    registered = [(s.key, s.settings, f"{SECTIONS.where(s.key).split(' (')[0]} ({s.settings.__module__})")
                  for s in registered_sections()]
    return [("", Recipe, "the recipe"), *own, *registered]


def recipe_keys() -> list[tuple[str, str, str, str]]:
    """Every recipe key, dotted (training.lr): (key, type, default as JSON, help)."""
    rows = []
    for key, cls, _ in recipe_sections():
        rows += _section_rows(f"{key}." if key else "", cls)
    return rows


def _first_paragraph(cls: type) -> str:
    text = " ".join((inspect.getdoc(cls) or "").split("\n\n")[0].split())
    return text[:1].upper() + text[1:]


def recipe_page() -> str:
    """reference/recipe.md: every recipe key with its type, default and help."""
    lines = ["# Recipe keys", "", INTRO, "",
             "A recipe is a YAML file of these keys; any key can also be given on the command line as a dotted "
             "`key=value` override (for example `training.epochs=1`). A key not listed here is an error that names "
             "the valid keys. Defaults are written as JSON (`null` is YAML's none). A run saves its recipe with every "
             "default filled in as `recipe.yaml` in its run folder.", ""]
    for key, cls, owner in recipe_sections():
        title = "Top-level keys" if not key else f"`{key}`"
        lines += [f"## {title}", ""]
        about = _first_paragraph(cls) if key else "The keys at the top of a recipe file."
        lines += [about + (f" Registered by {owner}." if owner != "the recipe" else ""), ""]
        lines += ["| key | type | default | help |", "| --- | --- | --- | --- |"]
        for name, hint, default, help_text in _section_rows(f"{key}." if key else "", cls):
            lines.append(f"| {code(name)} | {code(hint)} | {code(default)} | {cell(help_text)} |")
        lines.append("")
    return "\n".join(lines)


# ---------------------------------------------------------------- the Python API


def api_objects() -> list[tuple[str, str]]:
    """Each public name of nlptransfer (its __all__) and the dotted path where it is defined."""
    import nlptransfer

    found = []
    for name in nlptransfer.__all__:
        if name == "__version__":
            found.append((name, "nlptransfer.version"))
            continue
        obj = getattr(nlptransfer, name)
        found.append((name, f"{obj.__module__}.{obj.__qualname__}"))
    return found


#: what the public names hand you or take, documented beside them: the name a user imports it by, and its path
MORE = {"nlptransfer.inference.Prediction": "nlptransfer.inference.classifier.Prediction",
        "nlptransfer.recipe.Recipe": "nlptransfer.recipe.Recipe",
        "nlptransfer.run.RunFolder": "nlptransfer.run.RunFolder"}


def python_api_page() -> str:
    """reference/python-api.md: a mkdocstrings block for every name in nlptransfer.__all__."""
    lines = ["# Python API", "", INTRO, "",
             "Import every name below from `nlptransfer` itself (`from nlptransfer import finetune`): the package "
             "loads the heavy parts (torch, transformers) when a name is first used.", ""]
    groups = {"Train and evaluate": ("finetune", "adapt_encoder", "evaluate_run", "load_recipe", "TrainedRun"),
              "Predict": ("TextClassifier", "predict_file"),
              "Publish": ("push", "pull", "export_merged", "export_onnx", "PushResult"),
              "Errors": ("NlpTransferError", "DataError", "RecipeError", "ModelNotFound", "HubError", "RunError")}
    where = dict(api_objects())
    listed = {n for names in groups.values() for n in names}
    groups["Other"] = tuple(n for n in where if n not in listed and n != "__version__")
    for title, names in groups.items():
        names = [n for n in names if n in where]
        if not names:
            continue
        lines += [f"## {title}", ""]
        for name in names:
            lines += [f"::: {where[name]}", "    options:", f"      heading: {name}", f"      toc_label: {name}", ""]
    lines += ["## What they hand you", "",
              "Not imported from `nlptransfer` itself: `TextClassifier.predict` returns `Prediction`s, "
              "`load_recipe` a `Recipe`, and a run folder is laid out by `RunFolder` "
              "([its files](run-folder.md)).", ""]
    for name, path in MORE.items():
        lines += [f"::: {path}", "    options:", f"      heading: {name}", f"      toc_label: {name}", ""]
    if "__version__" in where:
        from nlptransfer.version import __version__

        lines += ["## Version", "", f"`nlptransfer.__version__`: the installed version (`{__version__}` when this "
                  "page was built).", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------- the run folder


def run_folder_page() -> str:
    """reference/run-folder.md: the files of a run folder, from nlptransfer.run (LAYOUT and FILES)."""
    from nlptransfer.run import FILES, LAYOUT

    lines = ["# Run folder", "", INTRO, "",
             "`nlptransfer run` writes one folder per run, `runs/<name>/` by default (`output.dir`, `output.name`). "
             "Every file is written atomically: a reader never sees half a file. A folder ending in `/` is a "
             "folder.", "",
             "| file | what it holds | when it is written |", "| --- | --- | --- |"]
    for key, name in LAYOUT.items():
        holds, when = FILES[key]
        suffix = "/" if "." not in name else ""
        lines.append(f"| {code(name + suffix)} | {cell(holds)} | {cell(when)} |")
    return "\n".join(lines + [""])
