"""A mkdocs hook: every page under ``docs/design/`` joins the nav's Design section, whatever its name.

The design notes (rationale moved out of docstrings) are added by whoever writes them; listing them by
hand in ``mkdocs.yml`` would make every new note break the strict build (a page outside the nav).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _title(page: Path) -> str:
    """The page's first heading, or its name."""
    for line in page.read_text().splitlines():
        if line.startswith("# "):
            return line[2:].strip().strip("`")
    return page.stem.replace("-", " ").replace("_", " ").capitalize()


def on_config(config: Any) -> Any:
    """Insert ``Design`` (one entry per ``docs/design/*.md``) before the Reference section."""
    design = sorted((Path(config["docs_dir"]) / "design").glob("*.md"))
    if not design:
        return config
    entries = [{_title(page): f"design/{page.name}"} for page in design]
    nav = config["nav"]
    at = next((i for i, item in enumerate(nav) if isinstance(item, dict) and "Reference" in item), len(nav))
    nav.insert(at, {"Design": entries})
    return config
