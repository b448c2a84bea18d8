"""Every hook is documented (purpose, arguments, returns, example, versionadded) and
docs/hooks.md is the page generated from the docstrings, not a stale copy."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tsos_rules import _hookdocs as hookdocs
from tsos_rules import hookspec
from tsos_rules.plugins import get_plugin_manager

#: These tests run as a plugin author's suite would: no config, no installed plugins.
pytestmark = pytest.mark.usefixtures("isolated_env")

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "hooks.md"


def test_every_hookspec_is_found() -> None:
    pm = get_plugin_manager(entry_points=False)
    registered = {name for name in vars(pm.hook) if name.startswith("tsos_rules_")}
    assert {fn.__name__ for fn in hookdocs.hookspec_functions()} == registered


def test_every_hook_is_fully_documented() -> None:
    assert hookdocs.problems() == []


def test_the_page_is_generated_from_the_docstrings() -> None:
    assert PAGE.read_text(encoding="utf-8") == hookdocs.render(), (
        "docs/hooks.md is stale: run 'python -m tsos_rules._hookdocs'"
    )


def test_the_page_documents_each_hook_with_its_example() -> None:
    page = PAGE.read_text(encoding="utf-8")
    for doc in map(hookdocs.parse, hookdocs.hookspec_functions()):
        assert f"## {doc.name}" in page
        assert doc.example.splitlines()[0] in page
        assert f"added in {doc.versionadded}" in page.lower()


class _Undocumented:
    """Hookspecs as a careless contributor might write them."""

    @staticmethod
    @hookspec
    def tsos_rules_bare(index):  # type: ignore[no-untyped-def]
        """Does something."""

    @staticmethod
    @hookspec
    def tsos_rules_half(index, findings):  # type: ignore[no-untyped-def]
        """Half documented.

        :param index: the index.
        :param extra: not an argument.
        :returns: nothing.

        .. versionadded:: 0.2
        """


def test_the_check_names_each_missing_part() -> None:
    docs = [
        hookdocs.parse(_Undocumented.tsos_rules_bare),
        hookdocs.parse(_Undocumented.tsos_rules_half),
    ]
    problems = hookdocs.problems(docs)
    assert "tsos_rules_bare: argument 'index' is not documented (:param index:)" in problems
    assert any(p.startswith("tsos_rules_bare: no ':returns:'") for p in problems)
    assert "tsos_rules_bare: no 'Example::' block" in problems
    assert "tsos_rules_bare: no '.. versionadded:: X.Y'" in problems
    assert "tsos_rules_half: argument 'findings' is not documented (:param findings:)" in problems
    assert "tsos_rules_half: ':param extra:' documents no argument of the hook" in problems
    assert not any(p.startswith("tsos_rules_half: no '.. versionadded") for p in problems)


def test_an_empty_docstring_has_no_purpose() -> None:
    def tsos_rules_nothing() -> None:
        pass

    assert "tsos_rules_nothing: no purpose (the docstring's first paragraph)" in hookdocs.problems(
        [hookdocs.parse(tsos_rules_nothing)]
    )


def test_parse_reads_multi_line_fields_and_changes() -> None:
    def tsos_rules_demo(register: object) -> None:
        """Purpose line.

        More purpose.

        :param register: first line
            continued line.
        :returns: a value
            over two lines.

        Example::

            @hookimpl
            def tsos_rules_demo(register):
                register(1)

        .. versionadded:: 0.1
        .. versionchanged:: 0.3
            Takes keyword arguments.
        """

    doc = hookdocs.parse(tsos_rules_demo)
    assert doc.purpose == "Purpose line.\n\nMore purpose."
    assert doc.params == {"register": "first line continued line."}
    assert doc.returns == "a value over two lines."
    assert doc.example.splitlines() == [
        "@hookimpl",
        "def tsos_rules_demo(register):",
        "    register(1)",
    ]
    assert doc.versionadded == "0.1"
    assert doc.changes == (("versionchanged", "0.3: Takes keyword arguments."),)
    assert "*Changed in 0.3: Takes keyword arguments.*" in hookdocs.render([doc])


@pytest.mark.parametrize("stale", [True, False])
def test_the_command_checks_and_writes_the_page(
    tmp_path: Path, stale: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    page = tmp_path / "hooks.md"
    page.write_text("old\n" if stale else hookdocs.render(), encoding="utf-8")
    assert hookdocs.main(["--check", "-o", str(page)]) == (1 if stale else 0)
    if stale:
        assert "is stale" in capsys.readouterr().err
        assert hookdocs.main(["-o", str(page)]) == 0
        assert page.read_text(encoding="utf-8") == hookdocs.render()


def test_python_dash_m_runs_the_check() -> None:
    check = subprocess.run(
        [sys.executable, "-m", "tsos_rules._hookdocs", "--check", "-o", str(PAGE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stderr
