"""The compact column text of the thread manifest: what each attached file holds, within a size budget.

Per file, one line under the file's line::

    - orders.parquet: public.orders (where status = %s, limit 500) from source wh, version ..., 500 rows
      columns (4): id integer 1..500, status text e.g. 'paid', total numeric(10,2) 1.25..625.00, note text (sensitive)

The budget (documented in the README): at most :data:`MAX_COLUMNS_SHOWN` columns and
:data:`MAX_COLUMNS_CHARS` characters per file; the rest is cut and counted (``… +37 more columns``),
so a 500-column table costs the prompt a few hundred characters, not its whole schema. The full
profile stays in the file's lineage record (``.lineage/<name>.json``).
"""

from __future__ import annotations

from typing import Any

__all__ = ["MAX_COLUMNS_CHARS", "MAX_COLUMNS_SHOWN", "MAX_VALUE_CHARS"]  # the text itself is attach.py's

MAX_COLUMNS_SHOWN = 25
MAX_COLUMNS_CHARS = 600
MAX_VALUE_CHARS = 24


def _clean(text: str) -> str:
    """``text`` on one line: a name or value from a file never adds a line (or a fake entry) to the prompt."""
    return "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in text)


def _short(value: Any) -> str:
    text = _clean(str(value))
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"


def column_text(column: dict[str, Any]) -> str:
    """``total numeric(10,2) 1.25..625.00, 3 null`` for one profiled column."""
    kind = column.get("source_type") or column.get("file_type") or "?"
    text = _clean(f"{column.get('name')} {kind}")
    if column.get("sensitive"):
        return f"{text} (sensitive)"
    low, high = column.get("min"), column.get("max")
    if low is not None and high is not None and column.get("file_type") not in ("string", "large_string"):
        text += f" {_short(low)}..{_short(high)}"
    elif column.get("examples"):
        text += " e.g. " + ", ".join(repr(_short(v)) for v in column["examples"][:2])
    nulls = column.get("nulls")
    return f"{text}, {nulls} null" if isinstance(nulls, int) and nulls > 0 else text


def columns_text(profile: dict[str, Any] | None) -> str:
    """``columns (N): ...`` within the budget; empty when there is no profile."""
    columns = (profile or {}).get("columns")
    if not isinstance(columns, list) or not columns:
        return ""
    head = f"columns ({len(columns)}{_of_rows(profile or {})}): "
    shown: list[str] = []
    used = len(head)
    for column in columns[:MAX_COLUMNS_SHOWN]:
        text = column_text(column)
        if used + len(text) + 2 > MAX_COLUMNS_CHARS and shown:
            break
        shown.append(text)
        used += len(text) + 2
    rest = len(columns) - len(shown)
    return head + "; ".join(shown) + (f"; … +{rest} more columns" if rest else "")


def _of_rows(profile: dict[str, Any]) -> str:
    """``, values of 1,200,000 of 5,000,000 rows`` when the column figures describe part of the rows."""
    part, rows = profile.get("profiled_rows"), profile.get("rows")
    if not isinstance(part, int) or not isinstance(rows, int) or part >= rows:
        return ""
    return f", values of {part:,} of {rows:,} rows"


def sized_text(options: dict[str, Any]) -> str:
    """``where status = %s, limit 500, sample 0.1 seed 7``: how a file was cut, short."""
    parts = []
    if options.get("columns"):
        parts.append(f"{len(options['columns'])} columns")
    if options.get("where"):
        parts.append("where " + _short(" ".join(str(options["where"]).split())))  # split(): every separator
    if options.get("sample") is not None:
        parts.append(f"sample {options['sample']:g} seed {options.get('seed', 0)}")
    if options.get("limit") is not None:
        parts.append(f"limit {options['limit']}")
    return ", ".join(parts)
