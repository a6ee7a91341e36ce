"""Old import paths kept for one release: a module ``__getattr__`` that warns and hands out the moved name.

Example:
    >>> __getattr__ = moved_names("connectors.lineage", {"read_provenance": "connectors.landing.lineage"})
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Mapping
from typing import Any


def moved_names(old: str, homes: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for names that moved out of module ``old``.

    Args:
        old: the module's dotted name, as users import it.
        homes: each moved name -> the module it lives in now.

    Returns:
        A function to assign to the module's ``__getattr__``: it raises a
        ``DeprecationWarning`` naming the new home, then returns the name from there.

    Raises:
        AttributeError: raised by the returned function for a name that is not in ``homes``.
    """

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {old!r} has no attribute {name!r}")
        warnings.warn(f"{old}.{name} is deprecated; import it from {home}", DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module(home), name)

    return __getattr__
