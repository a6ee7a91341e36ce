"""Sphinx roles in docstrings do not show on the site: ``docs/_gen/sphinx_roles.py`` turns them into code or links.

Without the hook, ``mkdocs build`` left ``:meth:``, ``:class:`` and the like before some 35 names of
the Python API page.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

HOOK = Path(__file__).resolve().parents[2] / "docs" / "_gen" / "sphinx_roles.py"


def _hook() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sphinx_roles", HOOK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PAGE = ('<h3 id="connectors.base.DataItem">DataItem</h3><h4 id="connectors.base.DataItem.to_dict">to_dict</h4>'
        '<h4 id="connectors.base.DataSourceConfig.to_dict">to_dict</h4>'
        "<p>masked :class:<code>~connectors.base.DataItem</code> values; see :meth:<code>to_dict</code>, "
        ":func:<code>elsewhere.run</code>, :mod:<code>.server</code>, :meth:<code>DataItem.to_dict()</code>.</p>")


def test_a_role_becomes_code_linked_where_the_page_documents_its_target() -> None:
    html = _hook().linked_roles(PAGE)
    assert ":class:" not in html and ":meth:" not in html and ":func:" not in html and ":mod:" not in html
    assert '<a href="#connectors.base.DataItem"><code>DataItem</code></a>' in html  # ~: the last part shown
    assert "see <code>to_dict</code>," in html  # two headings end with it: no guess
    assert "<code>elsewhere.run</code>," in html and "<code>server</code>," in html  # not on the page: plain code
    assert '<a href="#connectors.base.DataItem.to_dict"><code>DataItem.to_dict()</code></a>' in html
