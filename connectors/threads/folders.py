"""Thread folders: the thread id rule, ``<base>/<thread_id>``, and what a thread's folder holds of ours."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path

from connectors.base import DataSourceConnector
from connectors.errors import ConfigurationError, NotFoundError

MAX_THREAD_ID_LENGTH = 128
THREAD_ID_PATTERN = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_-]{{0,{MAX_THREAD_ID_LENGTH - 1}}}")
STAGING_PREFIX = ".da-attach-"
GENERATED_DIR = "generated"

__all__ = [
    "GENERATED_DIR", "MAX_THREAD_ID_LENGTH", "STAGING_PREFIX", "THREAD_ID_PATTERN", "ConnectorFor",
    "UnknownThreadError", "check_thread_id", "thread_folder",
]

class UnknownThreadError(NotFoundError):
    """The thread's folder does not exist: an unknown thread, or one that ended (its folder was removed)."""


ConnectorFor = Callable[[str], Awaitable[DataSourceConnector]]
"""How a source id becomes a connected connector (``SourceRegistry.connector``, or the API's pool)."""


def check_thread_id(thread_id: object) -> str:
    """``thread_id`` when it is a safe folder name (1-128 letters, digits, ``-``, ``_``; not leading ``-``/``_``).

    Args:
        thread_id: The id as given (hostile input: any object).

    Returns:
        The id, unchanged.

    Raises:
        ConfigurationError: the id would not name one folder right under the base directory.
    """
    if isinstance(thread_id, str) and THREAD_ID_PATTERN.fullmatch(thread_id):
        return thread_id
    shown = repr(thread_id)
    shown = shown if len(shown) <= 60 else shown[:59] + "…"
    raise ConfigurationError(
        f"invalid thread id {shown}: 1 to {MAX_THREAD_ID_LENGTH} ASCII letters, digits, '-' and '_', "
        "starting with a letter or digit"
    )


def thread_folder(base_dir: str | os.PathLike[str], thread_id: str) -> Path:
    """``<base_dir>/<thread_id>``, absolute (the id checked first).

    Args:
        base_dir: DeepAnalyze's workspace folder.
        thread_id: The thread (hostile input).

    Returns:
        The thread's folder (nothing is created).

    Raises:
        ConfigurationError: ``thread_id`` is not a valid thread id.
    """
    return Path(os.path.abspath(base_dir)) / check_thread_id(thread_id)


def remove_staging(staging: Path) -> None:
    """Remove an attach's staging folder, if it is still there."""
    # rmtree works by descriptors and never follows a link out of the folder it removes
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(staging)
