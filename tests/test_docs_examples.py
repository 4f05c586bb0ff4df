"""Every fenced ``python`` block of README.md and docs/ runs, so the documentation cannot rot.

Each block is one test, named by its file and line (``docs/spool.md:3``). It runs in a fresh
interpreter (``tests/docs_example_runner.py``) against a collector started for the session, with
the literal ``http://127.0.0.1:8787`` (the collector's default address) replaced by that
collector's URL. The runner refuses every non-loopback host, so an example that would reach
Segment's or Mixpanel's servers fails. Blocks run in parallel subprocesses, started together
the first time a block's result is asked for.

A mark on the line immediately before the fence changes what happens:

- ``<!-- example: skip (the reason) -->``: only compiled, never run (it needs a framework
  server, a key file, Segment's servers...). The reason is required.
- ``<!-- example: continue -->``: runs after the page's previous block, in the same process, as
  one program; the chain goes back through every ``continue``. Use it for a block that needs an
  earlier block's names.
- ``<!-- example: pytest -->``: the block is a test module; it runs under pytest, with the
  segment_clone plugin's fixtures (examples of ``segment_clone.testing``).

Any other ``<!-- example: ... -->`` mark fails, so a typo cannot silently skip a block.
Tracebacks and compile errors name the Markdown file and line: the block is padded with blank
lines so that its line numbers are the file's.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from segment_clone.collector import Collector

ROOT = Path(__file__).resolve().parent.parent
RUNNER = Path(__file__).with_name("docs_example_runner.py")
DOC_URL = "http://127.0.0.1:8787"
MARK = re.compile(r"^<!--\s*example:\s*(?P<kind>\w+)\s*(?:\((?P<reason>.*)\))?\s*-->\s*$")
FENCE = re.compile(r"^(?P<indent>\s*)```python\s*$")
BLOCK_TIMEOUT = 30.0
WORKERS = 3


@dataclass(frozen=True)
class Block:
    path: str  # relative to the repository, as the test id shows it
    line: int  # line of the opening fence
    code: tuple[str, ...]  # the block's lines, de-indented
    mark: str  # "run", "skip", "continue" or "pytest"
    reason: str = ""
    previous: Block | None = None  # the page's previous block, for "continue"

    @property
    def name(self) -> str:
        return f"{self.path}:{self.line}"

    def chain(self) -> list[Block]:
        """This block and, for a continuation, the blocks it continues, first first."""
        blocks = [self]
        while blocks[0].mark == "continue":
            previous = blocks[0].previous
            if previous is None:
                raise ValueError(f"{self.name}: 'continue' on the first block of the page")
            blocks.insert(0, previous)
        return blocks

    def source(self) -> str:
        """The chain's code, each line at its own line number in the Markdown file."""
        lines: list[str] = []
        for block in self.chain():
            lines += [""] * (block.line - len(lines))
            lines += block.code
        return "\n".join(lines) + "\n"


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def parse(path: Path) -> list[Block]:
    """The python blocks of one Markdown file, with their marks."""
    rel = path.relative_to(ROOT).as_posix()
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        start, indent = i, len(fence["indent"])
        i += 1
        code = []
        while i < len(lines) and lines[i].strip() != "```":
            code.append(lines[i][indent:])
            i += 1
        if i == len(lines):
            raise ValueError(f"{rel}:{start + 1}: the python block is never closed")
        mark, reason = "run", ""
        before = lines[start - 1].strip() if start else ""
        if not before and start > 1 and lines[start - 2].strip().startswith("<!-- example"):
            raise ValueError(f"{rel}:{start - 1}: an example mark must be right above the fence")
        if before.startswith("<!--") and "example" in before:
            found = MARK.match(before)
            if not found or found["kind"] not in ("skip", "continue", "pytest"):
                raise ValueError(f"{rel}:{start}: unknown example mark {before!r}")
            mark, reason = found["kind"], (found["reason"] or "").strip()
            if mark == "skip" and not reason:
                raise ValueError(f"{rel}:{start}: 'example: skip' needs a reason in parentheses")
        previous = blocks[-1] if blocks else None
        blocks.append(Block(rel, start + 1, tuple(code), mark, reason, previous))
        i += 1
    return blocks


BLOCKS = [block for path in doc_files() for block in parse(path)]


def run_block(block: Block, url: str, workdir: Path) -> subprocess.CompletedProcess[str]:
    """Run one block (with the chain it continues) in a fresh interpreter."""
    mode = "pytest" if block.mark == "pytest" else "run"
    stem = re.sub(r"\W", "_", block.name)
    source = workdir / (f"test_{stem}.py" if mode == "pytest" else f"{stem}.py")
    source.write_text(block.source().replace(DOC_URL, url), encoding="utf-8")
    command = [sys.executable, str(RUNNER), mode, str(source), block.path]
    try:
        return subprocess.run(
            command, cwd=workdir, capture_output=True, text=True, timeout=BLOCK_TIMEOUT
        )
    except subprocess.TimeoutExpired as e:
        output = f"{e.stdout or ''}{e.stderr or ''}\nstill running after {BLOCK_TIMEOUT:.0f} s"
        return subprocess.CompletedProcess(command, -1, "", output)


@pytest.fixture(scope="session")
def example_runs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Future[subprocess.CompletedProcess[str]]]]:
    """Start every selected block at once, against one collector; each test awaits its own."""
    selected = [
        item.callspec.params["block"]
        for item in request.session.items
        if isinstance(item, pytest.Function)
        and item.originalname == "test_example_runs"
        and hasattr(item, "callspec")
    ]
    db = tmp_path_factory.mktemp("docs-collector") / "events.db"
    with Collector(db, port=0).start() as collector, ThreadPoolExecutor(WORKERS) as pool:
        futures = {}
        # the pytest blocks take longest: start them first
        for block in sorted(selected, key=lambda block: block.mark != "pytest"):
            workdir = tmp_path_factory.mktemp("example")
            futures[block.name] = pool.submit(run_block, block, collector.url, workdir)
        yield futures


def test_every_page_has_been_parsed() -> None:
    """The collection itself: README.md and the docs pages hold examples."""
    assert any(block.path == "README.md" for block in BLOCKS)
    assert any(block.path.startswith("docs/") for block in BLOCKS)


@pytest.mark.parametrize("block", BLOCKS, ids=lambda block: block.name)
def test_example_compiles(block: Block) -> None:
    """Every block, skipped or not, is valid Python (a continuation with what it continues)."""
    compile(block.source(), block.path, "exec")


RUNNABLE = [block for block in BLOCKS if block.mark != "skip"]


@pytest.mark.parametrize("block", RUNNABLE, ids=lambda block: block.name)
def test_example_runs(
    block: Block, example_runs: dict[str, Future[subprocess.CompletedProcess[str]]]
) -> None:
    done = example_runs[block.name].result()
    if done.returncode != 0:
        output = f"{done.stdout}{done.stderr}"
        pytest.fail(f"{block.name}: the example failed (exit {done.returncode})\n{output}", False)
