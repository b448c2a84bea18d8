"""The hook reference, read from the hookspec docstrings: ``docs/hooks.md`` is generated here.

Every hook in :mod:`tsos_rules.hookspecs` documents, in its docstring:

- its **purpose** (the text before the first field),
- each argument as ``:param name: ...`` (exactly the hook's arguments, no more, no less),
- its result as ``:returns: ...``,
- an ``Example::`` block (indented code), and
- ``.. versionadded:: X.Y``.

:func:`problems` lists what is missing, :func:`render` writes the Markdown page, and::

    python -m tsos_rules._hookdocs            # rewrite docs/hooks.md
    python -m tsos_rules._hookdocs --check    # exit 1 when docs/hooks.md is stale or a hook
                                             # is undocumented (CI runs the same check)
"""

from __future__ import annotations

import argparse
import inspect
import re
import sys
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs

from tsos_rules import hookspecs
from tsos_rules.markers import PROJECT

#: Where the generated page lives, relative to the repository root.
DEFAULT_OUTPUT = Path("docs") / "hooks.md"

_FIELD = re.compile(r"^:(param\s+(?P<param>\w+)|returns?|rtype):\s*(?P<text>.*)$")
_DIRECTIVE = re.compile(
    r"^\.\.\s+(?P<name>versionadded|versionchanged|deprecated)::\s*(?P<arg>.*)$"
)
_ROLE = re.compile(r":(?:class|func|meth|mod|attr|data|exc|obj):`~?([^`]+)`")


@attrs.frozen
class HookDoc:
    """One hook's reference entry, parsed from its docstring."""

    name: str
    signature: str
    argnames: tuple[str, ...]
    purpose: str
    params: dict[str, str]
    returns: str
    example: str
    versionadded: str
    changes: tuple[tuple[str, str], ...]
    firstresult: bool
    historic: bool


def hookspec_functions(module: Any = hookspecs) -> list[Callable[..., Any]]:
    """Every function of ``module`` marked with ``tsos_rules.hookspec``, in source order."""
    marker = f"{PROJECT}_spec"
    found = [
        value
        for value in vars(module).values()
        if inspect.isfunction(value) and hasattr(value, marker)
    ]
    return sorted(found, key=lambda fn: fn.__code__.co_firstlineno)


def parse(function: Callable[..., Any]) -> HookDoc:
    """Split a hookspec docstring into purpose, params, returns, example and versions."""
    doc = inspect.cleandoc(function.__doc__ or "")
    purpose: list[str] = []
    params: dict[str, str] = {}
    returns = ""
    example: list[str] = []
    versionadded = ""
    changes: list[tuple[str, str]] = []
    current: tuple[str, str] | None = None  # ("param", name) / ("returns", "") being continued
    in_example = False
    seen_field = False
    for line in doc.splitlines():
        stripped = line.strip()
        if in_example:
            if not stripped or line.startswith((" ", "\t")):
                example.append(line)
                continue
            in_example = False
        field = _FIELD.match(stripped)
        directive = _DIRECTIVE.match(stripped)
        if field:
            seen_field = True
            text = field.group("text")
            if field.group("param"):
                current = ("param", field.group("param"))
                params[current[1]] = text
            elif stripped.startswith(":rtype"):
                current = None
            else:
                current = ("returns", "")
                returns = text
        elif directive:
            seen_field = True
            current = None
            if directive.group("name") == "versionadded":
                versionadded = directive.group("arg").strip()
            else:
                changes.append((directive.group("name"), directive.group("arg").strip()))
                current = ("change", "")
        elif stripped.rstrip(":") in ("Example", "Examples") and stripped.endswith("::"):
            seen_field = True
            current = None
            in_example = True
        elif current is not None and stripped and line.startswith((" ", "\t")):
            kind, name = current
            if kind == "param":
                params[name] = f"{params[name]} {stripped}"
            elif kind == "change":
                directive_name, text = changes[-1]
                changes[-1] = (
                    directive_name,
                    f"{text}: {stripped}" if ":" not in text else f"{text} {stripped}",
                )
            else:
                returns = f"{returns} {stripped}"
        elif not seen_field:
            purpose.append(line)
        elif stripped:
            # Prose after the fields belongs to the purpose too (a note, a warning).
            current = None
            purpose.append(line)
    spec_opts: dict[str, Any] = getattr(function, f"{PROJECT}_spec", {}) or {}
    signature = inspect.signature(function)
    return HookDoc(
        name=function.__name__,
        signature=f"{function.__name__}{_signature_text(signature)}",
        argnames=tuple(signature.parameters),
        purpose="\n".join(purpose).strip(),
        params=params,
        returns=returns.strip(),
        example=textwrap.dedent("\n".join(example)).strip("\n"),
        versionadded=versionadded,
        changes=tuple(changes),
        firstresult=bool(spec_opts.get("firstresult")),
        historic=bool(spec_opts.get("historic")),
    )


def _signature_text(signature: inspect.Signature) -> str:
    parts = []
    for parameter in signature.parameters.values():
        annotation = parameter.annotation
        if annotation is inspect.Parameter.empty:
            parts.append(parameter.name)
        else:
            parts.append(f"{parameter.name}: {_annotation(annotation)}")
    result = signature.return_annotation
    tail = "" if result is inspect.Signature.empty else f" -> {_annotation(result)}"
    return f"({', '.join(parts)}){tail}"


def _annotation(annotation: Any) -> str:
    return annotation if isinstance(annotation, str) else inspect.formatannotation(annotation)


def problems(docs: Sequence[HookDoc] | None = None) -> list[str]:
    """What is missing from the hook docstrings, one line per problem naming hook and part."""
    docs = list(docs) if docs is not None else [parse(fn) for fn in hookspec_functions()]
    out: list[str] = []
    for doc in docs:
        if not doc.purpose:
            out.append(f"{doc.name}: no purpose (the docstring's first paragraph)")
        for name in doc.argnames:
            if not doc.params.get(name, "").strip():
                out.append(f"{doc.name}: argument {name!r} is not documented (:param {name}:)")
        for name in doc.params:
            if name not in doc.argnames:
                out.append(f"{doc.name}: ':param {name}:' documents no argument of the hook")
        if not doc.returns:
            out.append(f"{doc.name}: no ':returns:' (say 'nothing' when it returns None)")
        if not doc.example.strip():
            out.append(f"{doc.name}: no 'Example::' block")
        if not re.fullmatch(r"\d+(\.\d+)*", doc.versionadded):
            out.append(f"{doc.name}: no '.. versionadded:: X.Y'")
    return out


_HEADER = """\
# Hook reference

<!-- Generated from src/tsos_rules/hookspecs.py by `python -m tsos_rules._hookdocs`.
     Do not edit by hand: edit the docstrings and re-run it (a test fails when this is stale). -->

A plugin is an ordinary Python module (or object) whose functions are decorated with
`tsos_rules.hookimpl` and named after one of the hooks below. Publish it under the
`tsos_rules` entry-point group and `pip install` makes it active; see
[plugins.md](plugins.md) for discovery and disabling, and the tutorials
([rule pack](tutorial-rule-pack.md), [connector](tutorial-connector.md)) for a walk-through.

```toml
# pyproject.toml of your package
[project.entry-points.tsos_rules]
my-pack = "my_package.plugin"
```

```python
# my_package/plugin.py
from tsos_rules import hookimpl

@hookimpl
def tsos_rules_register_packs(register):
    register(MY_PACK)
```

An implementation may take any subset of a hook's arguments, by name. Built-in packs and
connectors use exactly these hooks too.
"""


def render(docs: Sequence[HookDoc] | None = None) -> str:
    """The Markdown hook reference page."""
    docs = list(docs) if docs is not None else [parse(fn) for fn in hookspec_functions()]
    lines = [_HEADER, "## Hooks", ""]
    lines += [
        f"- [`{doc.name}`](#{doc.name}): {_markdown(_first_sentence(doc.purpose))}" for doc in docs
    ]
    for doc in docs:
        lines += ["", f"## {doc.name}", "", "```python", f"{doc.signature}", "```", ""]
        calling = "first non-None result wins" if doc.firstresult else "every plugin is called"
        facts = [f"added in {doc.versionadded}", calling]
        if doc.historic:
            facts.append("historic (late registrations are called too)")
        lines += [f"*{'; '.join(facts).capitalize()}.*", "", _markdown(doc.purpose), ""]
        lines += ["**Arguments**", ""]
        lines += [f"- `{name}`: {_markdown(doc.params.get(name, ''))}" for name in doc.argnames]
        if not doc.argnames:
            lines.append("- none")
        lines += ["", f"**Returns**: {_markdown(doc.returns)}", "", "**Example**", "", "```python"]
        lines += [doc.example, "```"]
        for kind, text in doc.changes:
            label = {"versionchanged": "Changed in", "deprecated": "Deprecated since"}[kind]
            lines += ["", f"*{label} {_markdown(text)}*"]
    return "\n".join(lines).rstrip() + "\n"


def _markdown(text: str) -> str:
    """reST inline markup as Markdown: ``code`` and :class:`name` become `code` and `name`."""
    return _ROLE.sub(r"`\1`", text).replace("``", "`")


def _first_sentence(text: str) -> str:
    flat = " ".join(text.split())
    head, dot, _ = flat.partition(". ")
    return head + ("." if dot else "")


def main(argv: Sequence[str] | None = None) -> int:
    """Write (or with ``--check``, verify) the hook reference page; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m tsos_rules._hookdocs",
        description="Generate docs/hooks.md from the hookspec docstrings.",
        epilog="Examples: python -m tsos_rules._hookdocs; python -m tsos_rules._hookdocs --check",
    )
    parser.add_argument("--output", "-o", type=Path, default=DEFAULT_OUTPUT, help="'-': stdout")
    parser.add_argument("--check", action="store_true", help="fail when the page is stale")
    args = parser.parse_args(argv)
    missing = problems()
    for problem in missing:
        print(f"hookdocs: {problem}", file=sys.stderr)
    if missing:
        return 1
    text = render()
    output: Path = args.output
    if str(output) == "-":
        sys.stdout.write(text)
        return 0
    if args.check:
        current = output.read_text(encoding="utf-8") if output.exists() else ""
        if current != text:
            print(
                f"hookdocs: {output} is stale; run 'python -m tsos_rules._hookdocs'",
                file=sys.stderr,
            )
            return 1
        return 0
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    print(f"wrote {output} ({len(text.splitlines())} lines)")
    return 0


if __name__ == "__main__":  # pragma: no cover - exercised through the CLI tests
    sys.exit(main())
