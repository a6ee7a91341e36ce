"""A mkdocs hook: Sphinx roles in docstrings (``:meth:`from_dict```) read as code, linked where the page has it.

The docstrings are Google style, rendered by mkdocstrings as Markdown, which knows no roles: without
this hook the page shows ``:meth:`` before the name. A role's target becomes a link when the page
documents it (its full path, or one heading whose path ends with it); otherwise it stays plain code.
"""

from __future__ import annotations

import re
from typing import Any

_ROLE = re.compile(r":(?:class|meth|func|data|mod|attr|exc|obj):<code>(~?)\.?([A-Za-z_][\w.]*)(\(\))?</code>")
_ID = re.compile(r'\bid="([A-Za-z_][\w.]*)"')


def linked_roles(html: str) -> str:
    """``html`` with every ``:role:<code>target</code>`` replaced by the target's code, linked when it is on the page.

    Args:
        html: a rendered page.

    Returns:
        The page; ``~a.b.C`` shows as ``C`` and ``.server`` (relative) as ``server``, as in Sphinx.
    """
    ids = set(_ID.findall(html))

    def replace(found: re.Match[str]) -> str:
        tilde, target, call = found.groups()
        shown = (target.rsplit(".", 1)[-1] if tilde else target) + (call or "")
        matches = [target] if target in ids else [i for i in ids if i.endswith(f".{target}")]
        code = f"<code>{shown}</code>"
        return f'<a href="#{matches[0]}">{code}</a>' if len(matches) == 1 else code

    return _ROLE.sub(replace, html)


def on_page_content(html: str, **_: Any) -> str:
    """Mkdocs' hook: rewrite the roles of every page."""
    return linked_roles(html)
