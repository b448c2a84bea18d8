"""tsos-rules-pipeline-hygiene: stalled deals and late deal registrations, as a YAML pack."""

from pathlib import Path

from tsos_rules import load_declarative_pack

#: The pack's source file, shipped inside the package.
PACK_FILE = Path(__file__).with_name("pipeline-hygiene.yaml")
#: The pack, loaded and validated once at import.
PACK = load_declarative_pack(PACK_FILE)

__all__ = ["PACK", "PACK_FILE"]
__version__ = "0.1.0"
