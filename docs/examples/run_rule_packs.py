"""Run the tutorial's two packs on a small snapshot (docs/tutorial-rule-pack.md, the end).

python docs/examples/run_rule_packs.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from acme_pack import PACK as PYTHON_PACK

from tsos_rules import load_declarative_pack
from tsos_rules.testing import deal, evaluate, snapshot

YAML_PACK = load_declarative_pack(Path(__file__).with_name("acme-hygiene.yaml"))

SNAPSHOT = snapshot(
    opportunities=[
        deal("o1", name="Boeing fleet", amount=250_000, discount_percent=25),
        deal("o2", name="Airbus cabin", amount=None, stage="trial_close", probability=65),
        deal("o3", name="Embraer jets", amount=300_000, executive_sponsor="CFO Jane Doe"),
    ]
)


def main() -> int:
    for finding in evaluate([YAML_PACK, PYTHON_PACK], SNAPSHOT):
        print(f"{finding.record_id}  {finding.rule}  {finding.reason}")
        print(f"    {finding.message}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
