"""The source id rule, and the Dagster name derived from an id.

An id is 1 to 63 ASCII letters, digits, ``-`` and ``_``, the first a letter
(``[A-Za-z][A-Za-z0-9_-]{0,62}``), checked wherever a source is created or loaded; its Dagster
name ``N`` (:func:`dagster_name`) is the id lower-cased with ``-`` turned into ``_``. Why this
rule, and ids whose ``N`` collide: ``docs/design/ids.md``.

Example:
    >>> check_source_id("ds-azure-prod")
    'ds-azure-prod'
    >>> dagster_name("DS-Azure-Prod")
    'ds_azure_prod'
    >>> colliding_id("nc_pg", ["nc-pg", "other"])
    'nc-pg'
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from connectors.errors import ConfigurationError

MAX_SOURCE_ID_LENGTH = 63
SOURCE_ID_PATTERN = re.compile(rf"[A-Za-z][A-Za-z0-9_-]{{0,{MAX_SOURCE_ID_LENGTH - 1}}}")
SOURCE_ID_RULE = (
    f"a source id is 1 to {MAX_SOURCE_ID_LENGTH} characters: ASCII letters, digits, '-' and '_', "
    "starting with a letter (e.g. ds-azure-prod)"
)
_SHOWN = 40  # characters of a refused value echoed back: enough to recognise it, never 100 KB
_NOT_SLUG_CHAR = re.compile(r"[^a-z0-9_]")


class InvalidSourceIdError(ConfigurationError):
    """A source id breaks the rule, or maps to the same Dagster name as another source's."""


def shown(value: Any, limit: int = _SHOWN) -> str:
    """``repr(value)``, cut to about ``limit`` characters (a refused value is echoed bounded).

    Args:
        value: Anything, hostile input included.
        limit: The most characters shown of it.

    Returns:
        The bounded repr, with the full length said when cut.
    """
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[: limit - 1]}… ({len(str(value))} characters)"


def is_valid_source_id(value: object) -> bool:
    """Whether ``value`` follows the source id rule.

    Args:
        value: Anything (hostile input).

    Returns:
        True for a string that follows the rule.
    """
    return isinstance(value, str) and SOURCE_ID_PATTERN.fullmatch(value) is not None


def check_source_id(value: object) -> str:
    """``value`` when it is a valid source id.

    Args:
        value: Anything (hostile input).

    Returns:
        ``value``, unchanged.

    Raises:
        InvalidSourceIdError: naming the (bounded) value and stating the rule.
    """
    if isinstance(value, str) and SOURCE_ID_PATTERN.fullmatch(value):
        return value
    raise InvalidSourceIdError(f"invalid source id {shown(value)}: {SOURCE_ID_RULE}")


def dagster_name(source_id: str) -> str:
    """``N``: the Dagster name of a valid source id (lower-cased, ``-`` as ``_``).

    Args:
        source_id: A source id.

    Returns:
        The name its assets, jobs and sensors are named after.

    Raises:
        InvalidSourceIdError: ``source_id`` breaks the rule.
    """
    return check_source_id(source_id).lower().replace("-", "_")


def source_slug(source_id: str) -> str:
    """``N`` for any text: :func:`dagster_name` for a valid id, else every character outside ``[a-z0-9_]`` as ``_``.

    Args:
        source_id: a source id, possibly one that breaks the rule (read back from old state).

    Returns:
        A name of ``[a-z0-9_]`` characters only.
    """
    if is_valid_source_id(source_id):
        return dagster_name(source_id)
    return _NOT_SLUG_CHAR.sub("_", source_id.lower())


def colliding_id(source_id: str, others: Iterable[object]) -> str | None:
    """The first of ``others`` (other than ``source_id`` itself) with the same Dagster name, if any.

    Args:
        source_id: A valid source id.
        others: The other source ids (invalid ones are skipped).

    Returns:
        The colliding id, or None.

    Raises:
        InvalidSourceIdError: ``source_id`` breaks the rule.
    """
    name = dagster_name(source_id)
    for other in others:
        if other != source_id and is_valid_source_id(other) and dagster_name(str(other)) == name:
            return str(other)
    return None


def check_distinct(source_id: str, others: Iterable[object]) -> str:
    """``source_id`` when no id of ``others`` maps to its Dagster name.

    Args:
        source_id: A valid source id.
        others: The other source ids.

    Returns:
        ``source_id``, unchanged.

    Raises:
        InvalidSourceIdError: naming both ids and the shared name.
    """
    other = colliding_id(source_id, others)
    if other is not None:
        raise InvalidSourceIdError(
            f"source ids {other!r} and {source_id!r} both map to the Dagster name "
            f"{dagster_name(source_id)!r}; rename one of them"
        )
    return source_id
