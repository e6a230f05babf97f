"""The documentation, executed as a user would read it: every ```bash and ```python block of `docs/**/*.md` and
`README.md`, the README's first commands, the quickstart notebook, and both entry points.

How a page's blocks run (writers of pages: this is the contract):

- Only ```bash and ```python blocks run. ```text (output shown to the reader), ```yaml (recipe files), ```console
  (benchmark commands that take minutes to hours, on benchmarks/ pages only) and every other language are shown,
  never run. A fence without a language is refused (say ```text), and so are ```sh, ```shell, ```py and the like,
  which would slip past the runner unrun.
- A bash or python block whose fence has `<!-- not run: REASON -->` on the line right before it is skipped. At most
  1 in 5 of the bash and python blocks of the whole site may be marked, and every mark needs its reason.
- One test per page (`test_page_blocks_run[docs/guides/serve.md]`), marked slow; the README's page runs in
  `test_readme_install_and_main_job_run_offline`, after its install command. A page's blocks run in order, in
  one fresh working folder per page that holds `examples/` and `recipes/` (links to the repository's), offline
  (HF_HUB_OFFLINE=1), with an empty NLPTRANSFER_CACHE of its own and this checkout first on PYTHONPATH. So a later
  block may read the files an earlier block of the SAME page wrote (`runs/<name>`), never another page's.
- A bash block runs as `bash -euo pipefail -c BLOCK`: every command must succeed. A python block runs as
  `python -c BLOCK`, one process per block: Python variables do NOT carry from one block to the next, so each
  python block imports and defines what it uses (it may read files an earlier block wrote).
- Lines that install packages (`pip install ...`) or run the test suite (`python -m pytest ...`) are not run: the
  test environment is already installed, and the suite must not run itself. A block holding only such lines (the
  README's install and test commands) counts as skipped; the README's first three commands are checked by
  `test_readme_first_commands_are_install_run_and_test_and_ci_runs_the_test_command` and the slow
  `test_readme_install_and_main_job_run_offline`.
- A block may leave a process running in the background (`nlptransfer serve ... &`) for later blocks of its page:
  every process a block started is stopped (SIGTERM, then SIGKILL) once the page's last block has run or failed.
- A failing block fails its page's test with the page, the block's line, its code and the tail of its output.

`python -m tests.test_docs` prints, per page, the blocks that run, are marked, or only shown, and the totals.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import ROOT, cli_env

RUN_LANGUAGES = {"bash", "python"}
#: languages that look runnable but would escape the runner: write ```bash or ```python instead
REFUSED_LANGUAGES = {"", "sh", "shell", "zsh", "py", "python3", "pycon", "ipython", "shell-session"}
MARK = re.compile(r"^\s*<!--\s*not run:(.*?)-->\s*$")
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
NOT_RUN_LINE = re.compile(r"^\s*(pip|pip3|python -m pip) install\b|^\s*python -m pytest\b")
BLOCK_TIMEOUT = 600  # seconds: one block; the embedded model's sample run takes about 20 s on 2 cores


@dataclass(frozen=True)
class Block:
    page: str            # path relative to the repository, e.g. docs/guides/serve.md
    line: int            # 1-based line of the opening fence
    language: str        # the first word of the fence's info string, lowercased ('' when none)
    code: str            # the block's text, its fence's indentation removed
    mark: str | None     # the reason of a `<!-- not run: REASON -->` right before the fence, else None

    @property
    def runs(self) -> bool:
        return self.language in RUN_LANGUAGES and self.mark is None and bool(self.runnable_code().strip())

    def runnable_code(self) -> str:
        """The code the runner executes: the block without its install and test-suite lines (bash only)."""
        if self.language != "bash":
            return self.code
        return "\n".join(line for line in self.code.splitlines() if not NOT_RUN_LINE.match(line))


class PageError(ValueError):
    """A page's fences or marks are malformed (an unclosed fence, a mark without its reason or its fence)."""


def doc_pages(root: Path = ROOT) -> list[Path]:
    """README.md, then every page under docs/, sorted."""
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


def page_id(page: Path, root: Path = ROOT) -> str:
    return page.relative_to(root).as_posix()


def parse_blocks(text: str, page: str = "<page>") -> list[Block]:
    """The fenced blocks of a Markdown page in order; PageError for an unclosed fence or a stray or empty mark."""
    lines = text.splitlines()
    blocks, i, problems = [], 0, []
    while i < len(lines):
        opened = FENCE.match(lines[i])
        if not opened:
            if MARK.match(lines[i]) and not (i + 1 < len(lines) and FENCE.match(lines[i + 1])):
                problems.append(f"{page}:{i + 1}: a `<!-- not run: ... -->` mark must be the line right before a fence")
            i += 1
            continue
        indent, fence = opened["indent"], opened["fence"]
        language = (opened["info"].strip().split() or [""])[0].lower().strip("{}.")
        mark = MARK.match(lines[i - 1]) if i > 0 else None
        closing = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
        end = next((j for j in range(i + 1, len(lines)) if closing.match(lines[j])), None)
        if end is None:
            problems.append(f"{page}:{i + 1}: the {fence}{language} fence is never closed")
            break
        body = [line[len(indent):] if line.startswith(indent) else line.lstrip() for line in lines[i + 1:end]]
        reason = mark.group(1).strip() if mark else None
        if mark and not reason:
            problems.append(f"{page}:{i}: a `<!-- not run: REASON -->` mark needs its reason")
        if mark and language not in RUN_LANGUAGES:
            problems.append(f"{page}:{i}: a not-run mark before a ```{language} block (only bash and python run)")
        blocks.append(Block(page, i + 1, language, "\n".join(body) + "\n", reason))
        i = end + 1
    if problems:
        raise PageError("\n".join(problems))
    return blocks


def page_blocks(page: Path, root: Path = ROOT) -> list[Block]:
    return parse_blocks(page.read_text(encoding="utf-8"), page_id(page, root))


def page_folder(folder: Path, root: Path = ROOT) -> Path:
    """A fresh working folder for one page: `examples/` and `recipes/` (links to the repository's), an empty cache."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("examples", "recipes"):
        (folder / name).symlink_to(root / name)
    (folder / ".cache").mkdir()
    return folder


def block_env(folder: Path) -> dict[str, str]:
    """The environment of a page's blocks: offline, this checkout first, the page's own empty cache, and this
    interpreter's folder first on PATH (so `python` and `nlptransfer` are the ones the tests run with)."""
    env = cli_env(one_thread=False, NLPTRANSFER_CACHE=str(folder / ".cache"))
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


def run_block(block: Block, folder: Path, env: dict[str, str]) -> tuple[int, str, str, int]:
    """Run one block in `folder` (bash under -euo pipefail; python in a process of its own), in a process group of
    its own. Returns its exit status, stdout, stderr and the group's id: what it left running in the background
    (a server started with `&`) runs on until `stop_group`. Its output goes to files, so a background process that
    keeps them open does not hold the block up. subprocess.TimeoutExpired past BLOCK_TIMEOUT."""
    code = block.runnable_code()
    cmd = ["bash", "-euo", "pipefail", "-c", code] if block.language == "bash" else [sys.executable, "-c", code]
    outputs = folder.with_name(folder.name + "-output")  # beside the page's folder, so a block never sees them
    outputs.mkdir(exist_ok=True)
    out_path, err_path = outputs / f"line-{block.line}.out", outputs / f"line-{block.line}.err"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        process = subprocess.Popen(cmd, cwd=folder, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                   start_new_session=True)
    try:
        status = process.wait(timeout=BLOCK_TIMEOUT)
    except subprocess.TimeoutExpired as e:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        e.stdout, e.stderr = out_path.read_bytes(), err_path.read_bytes()
        raise
    read = lambda path: path.read_text(encoding="utf-8", errors="replace")  # noqa: E731
    return status, read(out_path), read(err_path), process.pid


def stop_group(group: int, grace: float = 10.0) -> None:
    """Stop what is left of a block's process group: SIGTERM, then SIGKILL after `grace` seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(group, sig)
        except (ProcessLookupError, PermissionError):
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            try:
                os.killpg(group, 0)
            except (ProcessLookupError, PermissionError):
                return
            time.sleep(0.05)


def run_page(page: Path, folder: Path, root: Path = ROOT) -> list[tuple[Block, float]]:
    """Run a page's runnable blocks in order in one fresh `folder`; AssertionError naming the first that fails.
    What a block leaves running in the background is stopped once the page is done. Returns each block run with
    its seconds."""
    page_folder(folder, root)
    env, timings, groups = block_env(folder), [], []
    try:
        for block in page_blocks(page, root):
            if not block.runs:
                continue
            started = time.perf_counter()
            try:
                status, stdout, stderr, group = run_block(block, folder, env)
            except subprocess.TimeoutExpired as e:
                raise AssertionError(f"{block.page}:{block.line}: the ```{block.language} block ran over "
                                     f"{BLOCK_TIMEOUT} s\n--- block ---\n{block.code}--- output (end) ---\n"
                                     f"{_tail(e.stdout)}{_tail(e.stderr)}") from None
            groups.append(group)
            timings.append((block, time.perf_counter() - started))
            if status != 0:
                raise AssertionError(
                    f"{block.page}:{block.line}: the ```{block.language} block failed (exit status {status})\n"
                    f"--- block ---\n{block.code}--- stdout (end) ---\n{_tail(stdout)}\n"
                    f"--- stderr (end) ---\n{_tail(stderr)}")
    finally:
        for group in groups:
            stop_group(group)
    return timings


def _tail(text: str | bytes | None, chars: int = 3000) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return (text or "")[-chars:]


def site_counts(pages: list[Path], root: Path = ROOT) -> dict[str, dict[str, int]]:
    """Per page: blocks that run, bash/python blocks marked not run, bash/python blocks holding only install or
    test-suite lines, and blocks only shown (text, yaml, console, ...)."""
    counts = {}
    for page in pages:
        blocks = page_blocks(page, root)
        runnable = [b for b in blocks if b.language in RUN_LANGUAGES]
        counts[page_id(page, root)] = {
            "run": sum(b.runs for b in blocks),
            "marked": sum(b.mark is not None for b in runnable),
            "install_or_tests": sum(b.mark is None and not b.runs for b in runnable),
            "shown": len(blocks) - len(runnable)}
    return counts


# ---------------------------------------------------------------------------------------------------------------
# The site's pages: fast checks on their fences and marks, and one slow test per page that runs its blocks

PAGES = doc_pages()


def test_every_fence_is_closed_and_every_mark_has_its_reason_and_its_fence():
    problems = []
    for page in PAGES:
        try:
            page_blocks(page)
        except PageError as e:
            problems.append(str(e))
    assert not problems, "\n".join(problems)


def test_no_block_escapes_the_runner_under_another_language():
    wrong = [f"{b.page}:{b.line}: ```{b.language or '(no language)'}" for page in PAGES for b in page_blocks(page)
             if b.language in REFUSED_LANGUAGES
             or (b.language == "console" and not b.page.startswith("docs/benchmarks/"))]
    assert not wrong, ("blocks that would not run: write ```bash or ```python (or ```text for output; ```console "
                       "only on benchmarks/ pages):\n" + "\n".join(wrong))


def test_at_most_one_in_five_blocks_is_marked_not_run():
    counts = site_counts(PAGES)
    marked = sum(c["marked"] for c in counts.values())
    runnable = sum(c["run"] + c["marked"] for c in counts.values())
    print(f"docs: {runnable - marked} blocks run, {marked} marked not run")
    assert marked * 5 <= runnable, (f"{marked} of {runnable} bash/python blocks are marked not run (at most 1 in 5): "
                                    + ", ".join(f"{p} {c['marked']}" for p, c in counts.items() if c["marked"]))


def test_readme_is_under_150_lines():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) < 150, f"README.md has {len(lines)} lines: move detail to a page under docs/"


def test_readme_links_go_to_files_that_exist():
    """GitHub renders the README's relative links as files of the repository: each must exist (mkdocs checks the
    site's own links; the reference pages are generated when the site is built, so the README cannot link to them)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = [t.split("#")[0] for t in re.findall(r"\]\(([^)\s]+)\)", text) if not re.match(r"[a-z]+:", t)]
    missing = [t for t in targets if t and not (ROOT / t).exists()]
    assert targets and not missing, f"README.md links to files that do not exist: {missing}"


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES[1:], ids=[page_id(p) for p in PAGES[1:]])  # the README's: the install test
def test_page_blocks_run(page, tmp_path):
    timings = run_page(page, tmp_path / "page")
    print(f"{page_id(page)}: {len(timings)} blocks run in {sum(s for _, s in timings):.1f} s: "
          + ", ".join(f"line {b.line} {s:.1f} s" for b, s in timings))


# ---------------------------------------------------------------------------------------------------------------
# The runner itself, on pages written here

RUNNER_PAGE = """# A page

<!-- not run: needs a GPU -->
```bash
exit 1
```

```bash
command -v nlptransfer > listed.txt   # a comment
pip install nothing-that-exists
test -L examples && test -L recipes
echo "$NLPTRANSFER_CACHE $HF_HUB_OFFLINE" > cache.txt
```

```text
this is output, never run
```

1. A list item with an indented block:

    ```python
    from pathlib import Path
    assert Path("listed.txt").read_text().strip().endswith("nlptransfer")
    Path("python-ran").write_text("yes")
    ```

```yaml
strategy: head
```
"""


def _fake_site(root: Path, pages: dict[str, str]) -> Path:
    root.mkdir(parents=True)
    for name in ("examples", "recipes"):
        (root / name).symlink_to(ROOT / name)
    for rel, text in pages.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    return root


def test_runner_parses_languages_marks_and_indented_blocks():
    blocks = parse_blocks(RUNNER_PAGE, "p.md")
    assert [(b.language, b.mark, b.runs) for b in blocks] == [
        ("bash", "needs a GPU", False), ("bash", None, True), ("text", None, False), ("python", None, True),
        ("yaml", None, False)]
    assert blocks[3].code.startswith('from pathlib import Path\nassert Path("listed.txt")')
    assert "pip install" not in blocks[1].runnable_code() and "command -v nlptransfer" in blocks[1].runnable_code()
    only_install = parse_blocks("```bash\npip install -e \".[serve]\"\npython -m pytest -q\n```\n")[0]
    assert not only_install.runs


@pytest.mark.parametrize("text, problem", [
    ("```bash\necho hi\n", "never closed"),
    ("<!-- not run: -->\n```bash\necho hi\n```\n", "needs its reason"),
    ("<!-- not run: a GPU -->\n\n```bash\necho hi\n```\n", "right before a fence"),
    ("<!-- not run: output -->\n```text\nhi\n```\n", "only bash and python run"),
])
def test_runner_refuses_malformed_pages(text, problem):
    with pytest.raises(PageError, match=problem):
        parse_blocks(text, "p.md")


def test_runner_runs_a_page_in_order_in_its_own_folder(tmp_path):
    root = _fake_site(tmp_path / "repo", {"docs/page.md": RUNNER_PAGE})
    folder = tmp_path / "work"
    timings = run_page(root / "docs" / "page.md", folder, root)
    assert [b.line for b, _ in timings] == [8, 21]
    assert (folder / "python-ran").read_text() == "yes"
    assert (folder / "cache.txt").read_text().split() == [str(folder / ".cache"), "1"]
    assert site_counts([root / "docs" / "page.md"], root) == {
        "docs/page.md": {"run": 2, "marked": 1, "install_or_tests": 0, "shown": 2}}


def test_runner_fails_a_page_naming_the_block_and_its_output(tmp_path):
    page = "# P\n\n```bash\necho first > first.txt\n```\n\n```python\nx = 1\n```\n\n```python\nprint(x)\n```\n" \
           "\n```bash\necho never > never.txt\n```\n"
    root = _fake_site(tmp_path / "repo", {"docs/p.md": page})
    folder = tmp_path / "work"
    with pytest.raises(AssertionError) as failed:
        run_page(root / "docs" / "p.md", folder, root)
    message = str(failed.value)
    # python blocks do not share variables: the third block fails, with its code and its error
    assert message.startswith("docs/p.md:11: the ```python block failed (exit status 1)")
    assert "print(x)" in message and "NameError: name 'x' is not defined" in message
    assert (folder / "first.txt").exists() and not (folder / "never.txt").exists()


def test_runner_stops_what_a_page_left_running_in_the_background(tmp_path):
    page = "```bash\nsleep 300 &\necho $! > pid\n```\n\n```bash\nkill -0 \"$(cat pid)\"\n```\n"
    root = _fake_site(tmp_path / "repo", {"docs/p.md": page})
    started = time.monotonic()
    timings = run_page(root / "docs" / "p.md", tmp_path / "work", root)
    assert len(timings) == 2 and time.monotonic() - started < 60  # the second block saw it alive; none waited on it
    pid = int((tmp_path / "work" / "pid").read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_runner_fails_a_block_that_runs_too_long(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "BLOCK_TIMEOUT", 1)
    root = _fake_site(tmp_path / "repo", {"docs/p.md": "```bash\necho started\nsleep 30\n```\n"})
    with pytest.raises(AssertionError, match=r"(?s)docs/p.md:1: the ```bash block ran over 1 s.*started"):
        run_page(root / "docs" / "p.md", tmp_path / "work", root)


def test_runner_bash_blocks_stop_at_the_first_failing_command(tmp_path):
    root = _fake_site(tmp_path / "repo", {"docs/p.md": "```bash\nfalse | cat\necho after > after.txt\n```\n"})
    with pytest.raises(AssertionError, match="exit status 1"):
        run_page(root / "docs" / "p.md", tmp_path / "work", root)
    assert not (tmp_path / "work" / "after.txt").exists()


# ---------------------------------------------------------------------------------------------------------------
# The README's first commands, the notebook and the entry points


def readme_commands() -> list[str]:
    """The shell commands of the README's fenced bash blocks, in order (comments dropped)."""
    commands = []
    for block in page_blocks(ROOT / "README.md"):
        if block.language != "bash":
            continue
        for line in block.code.splitlines():
            line = line.split("  #")[0].strip()
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


def test_readme_first_commands_are_install_run_and_test_and_ci_runs_the_test_command():
    install, run, test = readme_commands()[:3]
    assert install == 'pip install torch==2.13.0 && pip install -e ".[dev]"'
    assert run == "nlptransfer run sentiment-minilm --data examples/reviews.csv"
    assert test == "python -m pytest -q"
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert test in ci  # CI runs exactly the README's test command
    assert any(line.startswith("pip install") and "torch==2.13.0" in line and '-e ".[dev]"' in line for line in ci)


@pytest.mark.slow
def test_readme_install_and_main_job_run_offline(tmp_path):
    """The README's install command, then its page of blocks as every page runs (its main job, exactly as written,
    and the Python that loads the run), from a folder that has the shipped examples/ (keeps runs/ out of the repo):
    the README's one page test."""
    install = readme_commands()[0]
    done = subprocess.run(install, shell=True, cwd=ROOT, env=cli_env(one_thread=False), capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    ran = run_page(ROOT / "README.md", tmp_path / "page")
    assert [b.code.strip() for b, _ in ran][0] == readme_commands()[1]
    folder = tmp_path / "page" / "runs" / "sentiment-minilm"
    inferred = json.loads((folder / "data_report.json").read_text())["inferred"]
    assert inferred["text_columns"]["columns"] == ["review"] and inferred["label_column"]["column"] == "label"
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["model"] == "minilm" and metrics["test"]["n"] == 24
    assert metrics["test"]["accuracy"] >= 0.8, metrics["test"]  # the pretrained model learns the sample reviews
    assert (folder / "model" / "model.safetensors").exists()


@pytest.mark.slow
def test_python_dash_m_and_console_script_both_work():
    for cmd in ([sys.executable, "-m", "nlptransfer", "recipes", "list"], [shutil.which("nlptransfer"), "recipes", "list"]):
        assert cmd[0], "the nlptransfer console script is not installed"
        done = subprocess.run(cmd, capture_output=True, text=True, env=cli_env(one_thread=False), timeout=120)
        assert done.returncode == 0, done.stderr
        names = [line.split()[0] for line in done.stdout.splitlines()]
        assert "sentiment-minilm" in names and "sentiment-minilm-lora" in names
    bad = subprocess.run([sys.executable, "-m", "nlptransfer", "recipes", "show", "sentimnet-minilm"],
                         capture_output=True, text=True, env=cli_env(one_thread=False), timeout=120)
    assert bad.returncode == 2 and bad.stderr.startswith("error: no recipe named 'sentimnet-minilm'")
    assert "sentiment-minilm" in bad.stderr


@pytest.mark.slow
def test_quickstart_notebook_runs(tmp_path):
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(ROOT / "notebooks" / "quickstart.ipynb", as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
    def shown(o) -> str:  # what the user reads: printed text and results (stderr carries progress bars)
        return o.get("text", "") if o.get("name") == "stdout" else o.get("data", {}).get("text/plain", "")

    outputs = ["".join(shown(o) for o in cell.get("outputs", [])) for cell in nb.cells if cell.cell_type == "code"]
    assert "(240, 3)" in outputs[0]
    assert "metrics.json" in outputs[2] and "predictions.csv" in outputs[2]
    accuracy = float(re.search(r"test accuracy ([0-9.]+)", outputs[3]).group(1))
    assert accuracy >= 0.75
    lines = outputs[4].strip().splitlines()
    assert lines[0].split()[0] == "positive" and lines[1].split()[0] == "negative"


if __name__ == "__main__":  # python -m tests.test_docs: what the docs tests run, page by page
    counts = site_counts(PAGES)
    for page, c in counts.items():
        print(f"{page:45} run {c['run']:3}  marked {c['marked']:2}  install/tests {c['install_or_tests']:2}  "
              f"shown {c['shown']:3}")
    total = {k: sum(c[k] for c in counts.values()) for k in ("run", "marked", "install_or_tests", "shown")}
    print(f"{'total (' + str(len(counts)) + ' pages)':45} run {total['run']:3}  marked {total['marked']:2}  "
          f"install/tests {total['install_or_tests']:2}  shown {total['shown']:3}")
