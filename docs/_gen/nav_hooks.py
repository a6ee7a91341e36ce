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


def _pages(nav: Any) -> list[str]:
    """Every page path the nav names, at any depth."""
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, dict):
        return [page for value in nav.values() for page in _pages(value)]
    if isinstance(nav, list):
        return [page for item in nav for page in _pages(item)]
    return []


def on_config(config: Any) -> Any:
    """Insert ``Design`` (one entry per ``docs/design/*.md``) before the Reference section."""
    nav = config["nav"]
    listed = set(_pages(nav))
    design = [page for page in sorted((Path(config["docs_dir"]) / "design").glob("*.md"))
              if f"design/{page.name}" not in listed]  # one listed by hand in mkdocs.yml stays where it is
    if not design:
        return config
    entries = [{_title(page): f"design/{page.name}"} for page in design]
    at = next((i for i, item in enumerate(nav) if isinstance(item, dict) and "Reference" in item), len(nav))
    nav.insert(at, {"Design": entries})
    return config
