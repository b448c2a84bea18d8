"""Keep documentation honest: run a Markdown file's Python example and compare its output.

A README example ends with the output it prints, as comment lines starting with ``# ``::

    print(finding.rule)
    # my-pack.big-deal

:func:`run_markdown_example` runs the block and returns what it printed and what the comments
promise, so a test can assert they match.
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import attrs

__all__ = ["ExampleRun", "python_blocks", "run_markdown_example"]

_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


@attrs.frozen
class ExampleRun:
    """One example: its code, what it printed, and the output its ``# `` comments promise."""

    code: str
    printed: list[str]
    expected: list[str]


def python_blocks(path: str | Path) -> list[str]:
    """The ``python`` fenced code blocks of a Markdown file, in order."""
    return _BLOCK.findall(Path(path).read_text(encoding="utf-8"))


def run_markdown_example(path: str | Path, index: int = -1) -> ExampleRun:
    """Run the ``index``-th python block of ``path`` (the last by default) in a fresh namespace.

    The expected output is every trailing-comment line of the block that starts with ``# ``
    at the start of a line.
    """
    blocks = python_blocks(path)
    if not blocks:
        raise ValueError(f"{path}: no ```python block")
    code = blocks[index]
    expected = [line[2:] for line in code.splitlines() if line.startswith("# ")]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, f"{path} (example {index})", "exec"), {"__name__": "__example__"})
    return ExampleRun(code, out.getvalue().splitlines(), expected)
