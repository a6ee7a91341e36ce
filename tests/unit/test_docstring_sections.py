"""Public functions say what they take, give and raise (``Args:``, ``Returns:``/``Yields:``, ``Raises:``).

Public means: the names in a module's ``__all__`` where it has one, else every name without a
leading underscore that the module defines; for a public class, its own public methods. A method
that overrides a documented one and has no docstring of its own inherits the base's. The sections
are asked for only where they say something: ``Args:`` when the function takes arguments,
``Returns:``/``Yields:`` when its annotation is not ``None``, ``Raises:`` when its body raises a
named exception itself.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import textwrap
import warnings
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import connectors
import da_pipelines


def _modules() -> Iterator[ModuleType]:
    for package in (connectors, da_pipelines):
        yield package
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if any(part.startswith("_") for part in info.name.split(".")):
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("error", DeprecationWarning)
                try:
                    yield importlib.import_module(info.name)
                except DeprecationWarning:  # a retired path kept as a shim for one release
                    continue


def _public_names(module: ModuleType) -> list[str]:
    declared = getattr(module, "__all__", None)
    if declared is not None:
        return list(declared)
    return [name for name, value in vars(module).items()
            if not name.startswith("_") and getattr(value, "__module__", None) == module.__name__]


def _functions(module: ModuleType) -> Iterator[tuple[str, Callable[..., Any]]]:
    for name in _public_names(module):
        value = getattr(module, name, None)
        if getattr(value, "__module__", None) != module.__name__:
            continue  # re-exported: checked where it is defined
        if inspect.isfunction(value):
            yield f"{module.__name__}.{name}", value
        elif inspect.isclass(value):
            for method_name, method in vars(value).items():
                if isinstance(method, staticmethod | classmethod):
                    method = method.__func__
                if not method_name.startswith("_") and inspect.isfunction(method):
                    yield f"{module.__name__}.{name}.{method_name}", method


def _raises_named(function: Callable[..., Any]) -> bool:
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    except (OSError, TypeError, SyntaxError):
        return False
    body = tree.body[0]
    for node in ast.walk(body):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) and node is not body:
            continue
        if isinstance(node, ast.Raise) and node.exc is not None:
            return True
    return False


def _missing(function: Callable[..., Any]) -> list[str]:
    own = function.__doc__
    if own is None:
        return [] if inspect.getdoc(function) else ["docstring"]
    signature = inspect.signature(function)
    takes = [name for name in signature.parameters if name not in ("self", "cls")]
    gives = signature.return_annotation not in (inspect.Signature.empty, None, "None", "NoReturn")
    missing = []
    if takes and "Args:" not in own:
        missing.append("Args:")
    if gives and "Returns:" not in own and "Yields:" not in own:
        missing.append("Returns:")
    if _raises_named(function) and "Raises:" not in own:
        missing.append("Raises:")
    return missing


def _gaps() -> dict[str, list[str]]:
    gaps: dict[str, list[str]] = {}
    for module in _modules():
        for name, function in _functions(module):
            if missing := _missing(function):
                gaps[name] = missing
    return gaps


def test_public_functions_document_their_arguments_results_and_errors() -> None:
    gaps = _gaps()
    assert gaps == {}, "\n".join(f"{name}: no {', '.join(missing)}" for name, missing in sorted(gaps.items()))


def test_the_rule_sees_a_function_without_sections() -> None:
    def documented_badly(value: int) -> int:
        """Double it."""
        if value < 0:
            raise ValueError("negative")
        return value * 2

    assert _missing(documented_badly) == ["Args:", "Returns:", "Raises:"]
