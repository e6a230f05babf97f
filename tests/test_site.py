"""The documentation site: its generated reference covers every recipe key (each with help), every command and flag,
every public name, every run folder file, endpoint and metric; `mkdocs build --strict` passes; and the built site
renders its navigation and a working search in a real headless browser."""
from __future__ import annotations

import argparse
import dataclasses
import functools
import http.server
import importlib
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urljoin

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
GEN = ROOT / "docs" / "gen"
if str(GEN) not in sys.path:
    sys.path.insert(0, str(GEN))

import reference_pages  # noqa: E402  (docs/gen: the generators the site's build runs)
import server_pages  # noqa: E402

#: the page tree every writer links to: each path is in the nav, and a file in docs/ or a generated page
TREE = ["index.md", "get-started/install.md", "get-started/first-run.md", "get-started/run-folder.md",
        "get-started/predict-python.md", "guides/fine-tune.md", "guides/check-data.md", "guides/transfer-report.md",
        "guides/few-shot.md", "guides/multi-task.md", "guides/multi-label.md", "guides/domain-adaptation.md", "guides/large-files.md",
        "guides/publish.md", "guides/serve.md", "guides/scale.md", "guides/extend.md", "guides/trust.md",
        "reference/cli.md", "reference/recipe.md", "reference/python-api.md", "reference/run-folder.md",
        "reference/http-api.md", "reference/metrics.md", "benchmarks/index.md", "benchmarks/speed.md",
        "benchmarks/few-shot.md", "benchmarks/domain-adaptation.md", "benchmarks/multi-task.md", "benchmarks/multilabel.md",
        "benchmarks/data-scale.md", "benchmarks/serving.md"]
GENERATED = {"reference/cli.md", "reference/recipe.md", "reference/python-api.md", "reference/run-folder.md",
             "reference/http-api.md", "reference/metrics.md"}
QUIET = {"NO_MKDOCS_2_WARNING": "1", "DISABLE_MKDOCS_2_WARNING": "true"}


# ---------------------------------------------------------------- what the generated reference covers (fast)


def _validated_keys() -> list[str]:
    """Every dotted key the recipe validator accepts, read from its own schema (not from the generator)."""
    from nlptransfer import recipe

    keys = []

    def walk(cls: type, prefix: str) -> None:
        for key, hint in recipe._fields(cls).items():
            if dataclasses.is_dataclass(hint):
                walk(hint, f"{prefix}{key}.")
            else:
                keys.append(prefix + key)

    walk(recipe.Recipe, "")
    return keys


def test_every_recipe_key_is_in_the_reference_with_its_type_default_and_help():
    keys = _validated_keys()
    rows = {key: (hint, default, help_text) for key, hint, default, help_text in reference_pages.recipe_keys()}
    assert sorted(rows) == sorted(keys)
    assert {"training.lr", "data.label_columns", "peft.r", "adapt.method", "labels.descriptions",
            "contrastive.iterations", "report.alpha"} <= set(rows)
    missing = [key for key, (_, _, help_text) in rows.items() if not help_text.strip()]
    assert missing == [], f"recipe keys without help: add a #: comment to their field: {missing}"
    page = reference_pages.recipe_page()
    for key, (hint, default, help_text) in rows.items():
        assert f"| `{key}` | `{hint}` | `{default}` |" in page, key
    assert "| `training.lr` | `float | None` | `null` | None = the strategy's default |" in page
    assert "| `data.join_with` | `str` | `\"\\n\"` |" in page


def test_field_help_reads_the_comment_on_the_line_and_the_lines_above():
    from nlptransfer.sections import TrainingSection
    from nlptransfer.strategies.zero_shot import LabelsSection

    training = reference_pages.field_help(TrainingSection)
    assert training["epochs"] == "passes over the training data"
    assert training["objectives"].startswith("loss terms and their weights: registered objective names")
    assert training["task_weighting"].endswith("with s trained beside the heads)")  # two lines above the field
    assert reference_pages.field_help(LabelsSection)["descriptions"].endswith("the keys are the labels (in this order)")


def _cli_arguments(parser: argparse.ArgumentParser, words: tuple[str, ...]):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*words, name), None
                yield from _cli_arguments(sub, (*words, name))
        elif not isinstance(action, argparse._HelpAction):
            yield words, action


def test_every_command_and_flag_has_help():
    """So the CLI reference has no empty cell: a new command or flag without help= fails here."""
    lacking = []
    for words, help_text, parser in reference_pages.commands():
        lacking += [] if help_text else [" ".join(words)]
        lacking += [f"{' '.join(words)} {a.option_strings or a.dest}" for a in reference_pages.arguments(parser)
                    if not a.help or a.help.startswith("(default")]
    assert lacking == [], f"add help= to: {lacking}"

def test_every_command_and_flag_is_in_the_cli_reference():
    from nlptransfer.cli import VERBS, build_parser

    page = reference_pages.cli_page()
    sections = {m.group(1): m.start() for m in re.finditer(r"^## nlptransfer (.+)$", page, flags=re.M)}
    ends = sorted(sections.values()) + [len(page)]
    body = {name: page[start:ends[ends.index(start) + 1]] for name, start in sections.items()}
    seen = 0
    for words, action in _cli_arguments(build_parser(), ()):
        command = " ".join(words)
        assert command in sections, f"command 'nlptransfer {command}' is not in the CLI reference"
        if action is None:
            continue
        names = action.option_strings or [str(action.metavar or action.dest)]
        for name in names:
            assert f"`{name}" in body[command], f"{name} of 'nlptransfer {command}' is not in the CLI reference"
        if action.help and "%(" not in action.help:
            assert reference_pages.cell(action.help) in body[command]
        seen += 1
    assert len(sections) >= len(VERBS) + 4 and seen > 60  # recipes list/show/validate/cp, and every flag
    assert "| `--workers WORKERS` | worker processes (each loads the model) | `1` |" in body["serve"]
    assert "| `--backend {torch,onnx,onnx-int8}` |" in body["serve"] and "| torch, onnx, onnx-int8 |" in body["serve"]
    assert "| `--resume [RUN]` |" in body["run"]


def test_every_public_name_is_in_the_python_api_reference():
    import nlptransfer

    page = reference_pages.python_api_page()
    blocks = dict(re.findall(r"^::: (\S+)\n    options:\n      heading: (\S+)\n      toc_label: \2$", page, flags=re.M))
    shown = set(blocks.values()) - set(reference_pages.MORE)
    assert shown | {"__version__"} == set(nlptransfer.__all__)
    assert "`nlptransfer.__version__`" in page
    for path, name in blocks.items():
        module, _, attribute = path.rpartition(".")
        shown_as = getattr(nlptransfer, name) if name in nlptransfer.__all__ else getattr(
            importlib.import_module(name.rpartition(".")[0]), name.rpartition(".")[2])
        assert getattr(importlib.import_module(module), attribute) is shown_as


def test_the_run_folder_reference_lists_every_file_with_what_and_when():
    from nlptransfer.run import FILES, LAYOUT

    assert set(FILES) == set(LAYOUT), "describe every LAYOUT entry in nlptransfer.run.FILES"
    assert all(holds and when for holds, when in FILES.values())
    page = reference_pages.run_folder_page()
    for key, name in LAYOUT.items():
        assert f"| `{name}" in page, name
    assert "| `metrics.json` |" in page and "| `model/` |" in page


def test_the_http_reference_is_the_servers_openapi_schema():
    schema = server_pages.openapi_schema()
    page = server_pages.http_api_page()
    assert {"/health", "/ready", "/metadata", "/metrics", "/v1/drift", "/v1/predict"} <= set(schema["paths"])
    for path, methods in schema["paths"].items():
        for method in methods:
            assert f"### {method.upper()} {path}" in page
    for name in schema["components"]["schemas"]:
        assert f"### {name}" in page
    assert "| `texts` | string or array of string | yes |" in page
    assert '"openapi":' in page


def test_the_metrics_reference_names_every_metric_the_server_exports():
    from nlptransfer.serve.monitoring import Monitoring

    exported = set(re.findall(r"^# TYPE (\S+) ", Monitoring().exposition().decode(), flags=re.M))
    page = server_pages.metrics_page()
    documented = {name: series for name, _, _, _, series in server_pages.metrics()}
    named = {re.sub(r"_(total|created)$", "", name) for name in exported}  # a counter's family; a _created series
    assert named == set(documented) and len(documented) >= 14
    for name in documented:
        assert f"| `{name}` |" in page
    assert {name for name in exported if name.endswith("_total")} <= {s for v in documented.values() for s in v}
    assert "nlptransfer_requests_total" in page and "nlptransfer_batch_size_bucket" in page


def test_the_nav_holds_the_page_tree_and_every_page_exists_or_is_generated():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))

    def pages(node) -> list[str]:
        if isinstance(node, str):
            return [node]
        if isinstance(node, list):
            return [p for item in node for p in pages(item)]
        return [p for value in node.values() for p in pages(value)]

    assert pages(config["nav"]) == TREE
    assert config["strict"] is True
    assert set(config["validation"].values()) == {"warn"}  # strict: each of them fails the build
    generated = set(_generated_pages())
    assert generated == GENERATED
    for page in set(TREE) - GENERATED:
        assert (ROOT / "docs" / page).is_file(), page
    for page in GENERATED:
        assert not (ROOT / "docs" / page).exists(), f"docs/{page} is generated: a file there would hide it"


def _generated_pages() -> list[str]:
    """The pages docs/gen/pages.py writes (read from its PAGES table, without running mkdocs)."""
    source = (GEN / "pages.py").read_text(encoding="utf-8")
    table = source[source.index("PAGES = {"):source.index("}", source.index("PAGES = {"))]
    return re.findall(r'"(reference/[a-z-]+\.md)"', table)


# ---------------------------------------------------------------- the built site (slow)


@pytest.fixture(scope="module")
def built_site(tmp_path_factory) -> Path:
    if shutil.which("mkdocs") is None:
        pytest.skip("mkdocs is not installed (pip install -e '.[docs]')")
    site = tmp_path_factory.mktemp("site")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600, env={**os.environ, **QUIET})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    return site


@pytest.mark.slow
def test_mkdocs_build_strict_passes_and_writes_every_page(built_site):
    for page in TREE:  # guides/serve.md -> guides/serve/index.html; benchmarks/index.md -> benchmarks/index.html
        stem = page.removesuffix(".md")
        html = built_site / (f"{stem}.html" if stem.endswith("index") else f"{stem}/index.html")
        assert html.is_file(), page
    recipe = (built_site / "reference" / "recipe" / "index.html").read_text(encoding="utf-8")
    assert "<code>training.lr</code>" in recipe and "<code>str | None</code>" in recipe
    api = (built_site / "reference" / "python-api" / "index.html").read_text(encoding="utf-8")
    for name in ("finetune", "TextClassifier", "RecipeError", "push"):
        assert re.search(rf'<h3 id="[\w.]+\.{name}" class="doc doc-heading">\s*{name}\b', api), name
    assert (built_site / "search" / "search_index.json").is_file()


class _Site(http.server.SimpleHTTPRequestHandler):
    """Serves the built site, records each path asked for, and holds each page's load for a moment of real time
    (a slow image), so that the headless browser's virtual clock waits while the search worker indexes the site."""

    asked: list[str] = []
    hold = 2.5  #: seconds each page's load is held

    def log_message(self, *args) -> None:
        self.asked.append(self.path)

    def do_GET(self) -> None:
        if self.path.startswith("/__hold"):
            time.sleep(self.hold)
            self.send_response(204)
            self.end_headers()
            return
        path = self.path.split("?", 1)[0]
        if path.endswith("/"):
            page = Path(self.translate_path(path)) / "index.html"
            body = page.read_bytes().replace(b"</body>", b'<img src="/__hold" alt=""></body>', 1)
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()


def _dump(browser: str, url: str, profile: Path) -> str:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
             "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}", "--virtual-time-budget=10000"]
    done = subprocess.run([browser, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.slow
def test_the_site_renders_navigation_and_search_in_a_browser(built_site, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if not browser:
        pytest.skip("chromium is not installed (apt-get install -y chromium): the browser test needs it")
    _Site.asked = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Site, directory=str(built_site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_port}/"
    try:
        home = _dump(browser, base, tmp_path / "profile")
        for hold in (2.5, 6, 15):  # a loaded machine indexes slower: hold the page longer and look again
            _Site.hold = hold
            guide = _dump(browser, base + "guides/fine-tune/?q=recipe", tmp_path / "profile")
            if "md-search-result__item" in guide:
                break
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
    every = {base + (p.removesuffix("index.md") if p.endswith("index.md") else p.removesuffix(".md") + "/")
             for p in TREE}
    for url, page in ((base, home), (base + "guides/fine-tune/", guide)):
        tabs = re.findall(r'class="md-tabs__link[^"]*"[^>]*>\s*([^<]+?)\s*<', page)
        assert tabs == ["Home", "Get started", "Guides", "Reference", "Benchmarks"], tabs
        links = {urljoin(url, href) for href in re.findall(r'<a href="([^"#]*)"[^>]*class="md-nav__link', page)}
        assert every <= links, f"pages missing from the navigation of {url}: {sorted(every - links)}"
        assert re.search(r'<input[^>]+class="md-search__input\b', page), "no search input"
    assert "<h1" in guide and "Fine-tune on your CSV" in guide
    # the search worker fetched and indexed the site: the query in the address (?q=) found pages
    assert "/search/search_index.json" in _Site.asked
    found = re.search(r'class="md-search-result__meta">\s*(\d+) matching document', guide)
    assert found and int(found.group(1)) >= 1, re.findall(r'md-search-result__meta">[^<]*', guide)
    assert "md-search-result__item" in guide
