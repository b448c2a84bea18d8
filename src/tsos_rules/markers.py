"""The pluggy markers, defined once and exported from the package root."""

from __future__ import annotations

import pluggy

PROJECT = "tsos_rules"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)
