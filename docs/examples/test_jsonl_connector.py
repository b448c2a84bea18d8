"""The JSON-lines connector against the ConnectorContract (docs/tutorial-connector.md, step 6).

python -m pytest docs/examples/test_jsonl_connector.py -p tsos_rules.testing.pytest_plugin
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from jsonl_connector import JsonlConnector, edit_record, seed_folder

from tsos_rules.connectors.base import Connector
from tsos_rules.model import Snapshot
from tsos_rules.snapshot.document import snapshot_to_dict
from tsos_rules.testing import ConnectorContract


class TestJsonlConnector(ConnectorContract):
    def make_connector(self, tmp_path: Path) -> Connector:
        (tmp_path / "crm").mkdir(exist_ok=True)
        return JsonlConnector(tmp_path / "crm")

    def seed(self, connector: Connector, snapshot: Snapshot, *, at: dt.datetime) -> None:
        assert isinstance(connector, JsonlConnector)
        seed_folder(connector.folder, snapshot_to_dict(snapshot), at)

    def change_record(
        self,
        connector: Connector,
        record_type: str,
        record_id: str,
        changes: Mapping[str, Any],
        *,
        at: dt.datetime,
    ) -> None:
        assert isinstance(connector, JsonlConnector)
        edit_record(connector.folder, record_type, record_id, changes, at)

    def delete_record(
        self, connector: Connector, record_type: str, record_id: str, *, at: dt.datetime
    ) -> None:
        assert isinstance(connector, JsonlConnector)
        edit_record(connector.folder, record_type, record_id, {"_deleted": True}, at)

    def induce_error(self, connector: Connector, kind: str) -> bool:
        assert isinstance(connector, JsonlConnector)
        if kind == "fatal":  # the folder is gone (a wrong path in the config)
            connector.folder = connector.folder / "missing"
            return True
        if kind == "bad_record":
            edit_record(connector.folder, "opportunity", "o2", {"close_date": "soon"}, self.T0)
            return True
        return False  # a plain folder has no transient failures worth simulating
