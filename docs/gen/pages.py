"""mkdocs-gen-files script: writes the generated reference pages into the site when it is built (they are never
files in docs/, so they cannot drift from the code). The page functions live in reference_pages.py and server_pages.py."""
from __future__ import annotations

import sys
from pathlib import Path

import mkdocs_gen_files

HERE = Path(__file__).resolve().parent
for path in (str(HERE), str(HERE.parents[1])):  # the generators, and the repository (nlptransfer, from the source)
    if path not in sys.path:
        sys.path.insert(0, path)

from reference_pages import cli_page, python_api_page, recipe_page, run_folder_page  # noqa: E402
from server_pages import http_api_page, metrics_page  # noqa: E402

#: each generated page and the function that writes it
PAGES = {
    "reference/cli.md": cli_page,
    "reference/recipe.md": recipe_page,
    "reference/python-api.md": python_api_page,
    "reference/run-folder.md": run_folder_page,
    "reference/http-api.md": http_api_page,
    "reference/metrics.md": metrics_page,
}

for name, page in PAGES.items():
    with mkdocs_gen_files.open(name, "w") as f:
        f.write(page())
