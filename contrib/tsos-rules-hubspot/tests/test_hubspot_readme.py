"""The README's example runs as written."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_example_runs() -> None:
    text = README.read_text(encoding="utf-8")
    (example,) = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    namespace: dict[str, Any] = {}
    exec(compile(example, str(README), "exec"), namespace)
    result = namespace["result"]
    assert [o.id for o in result.snapshot.opportunities] == [namespace["deal"]]
    assert result.snapshot.opportunities[0].stage == "contractsent"


def test_the_readme_names_every_setting() -> None:
    import attrs
    from tsos_rules_hubspot import HubSpotSettings

    text = README.read_text(encoding="utf-8")
    missing = [f.name for f in attrs.fields(HubSpotSettings) if f"`{f.name}`" not in text]
    missing = [name for name in missing if f"{name} =" not in text]
    assert missing == []
