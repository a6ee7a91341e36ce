"""Names at a thread's top level: readable, never colliding (case, Unicode form, races), always fitting."""

from __future__ import annotations

import asyncio
import os
import re
import unicodedata
from pathlib import Path

import pytest

from connectors.errors import ConfigurationError
from connectors.registry import SourceRegistry
from connectors.threads import (
    Attachment,
    ThreadRecords,
    attach_to_thread,
    default_state_dir,
    folded,
    name_candidates,
)


@pytest.fixture
def registry(tmp_path: Path) -> SourceRegistry:
    root = tmp_path / "docs"
    (root / "x").mkdir(parents=True)
    (root / "data.csv").write_text("lower")
    (root / "x" / "data.csv").write_text("x lower")
    (root / "generated").write_text("a file called generated")
    (root / ("n" * 246 + ".csv")).write_text("long")
    (root / unicodedata.normalize("NFD", "café.csv")).write_text("nfd")
    registry = SourceRegistry(tmp_path / "sources.yaml")
    registry.add({"id": "docs", "type": "local_file", "name": "Docs", "config": {"root": str(root)}})
    return registry


def attach(registry: SourceRegistry, base: Path, thread_id: str, *paths: str) -> Attachment:
    async def run() -> Attachment:
        async with registry:
            return await attach_to_thread(registry, base, thread_id, [{"source_id": "docs", "path": p} for p in paths],
                                          create=True)

    return asyncio.run(run())


def test_case_and_unicode_form_and_reserved_names_never_collide(registry: SourceRegistry, tmp_path: Path) -> None:
    base = tmp_path / "workspace"
    (base / "t").mkdir(parents=True)
    (base / "t" / "DATA.csv").write_text("the agent's")
    (base / "t" / unicodedata.normalize("NFC", "café.csv")).write_text("the agent's nfc")
    nfd = unicodedata.normalize("NFD", "café.csv")
    names = [f.name for f in attach(registry, base, "t", "data.csv", "x/data.csv", "generated", nfd).files]
    nfd_renamed = unicodedata.normalize("NFD", "café-docs.csv")
    assert names == ["data-docs.csv", "data-docs-2.csv", "generated-docs", nfd_renamed]
    assert (base / "t" / "DATA.csv").read_text() == "the agent's"
    assert (ThreadRecords(default_state_dir(), "t").read("data-docs-2.csv") or {})["identifier"] == "x/data.csv"
    assert len({folded(n) for n in os.listdir(base / "t")}) == len(os.listdir(base / "t"))


def test_a_long_name_is_shortened_to_fit(registry: SourceRegistry, tmp_path: Path) -> None:
    base = tmp_path / "workspace"
    long = "n" * 246 + ".csv"
    (base / "t").mkdir(parents=True)
    (base / "t" / long).write_text("the user's")
    names = [f.name for f in attach(registry, base, "t", long).files]
    assert names[0].endswith("-docs.csv") and len(names[0].encode()) == 250
    assert ThreadRecords(default_state_dir(), "t").read(names[0]) is not None


def test_concurrent_attaches_of_one_item_to_one_thread_give_one_file(registry: SourceRegistry, tmp_path: Path) -> None:
    base = tmp_path / "workspace"
    (base / "t").mkdir(parents=True)

    async def run() -> list[Attachment]:
        async with registry:
            return list(await asyncio.gather(*(
                attach_to_thread(registry, base, "t", [{"source_id": "docs", "path": "data.csv"}]) for _ in range(8))))

    files = [f for a in asyncio.run(run()) for f in a.files]
    assert {f.name for f in files} == {"data.csv"}
    assert sorted(f.status for f in files) == ["attached"] + ["unchanged"] * 7
    assert os.listdir(base / "t") == ["data.csv"] and (base / "t" / "data.csv").read_text() == "lower"


def test_name_candidates_are_distinct_and_fit() -> None:
    for name in ["a.csv", ".env", "archive.tar.gz", "x" * 250, "é" * 125, "noext"]:
        candidates = list(name_candidates(name, "source-id"))
        assert len({folded(c) for c in candidates}) == len(candidates)
        assert all(len(c.encode()) <= 250 for c in candidates[1:])


def test_bad_references_say_which_and_why(registry: SourceRegistry, tmp_path: Path) -> None:
    base = tmp_path / "workspace"
    cases = {
        "reference 1: path: Input should be a valid string": [{"source_id": "docs", "path": "data.csv"},
                                                               {"source_id": "docs", "path": 5}],
        "reference 0: give exactly one of path, glob, table, query": [{"source_id": "docs"}],
        "reference 0: a query needs a name": [{"source_id": "docs", "query": "select 1"}],
        "reference 0: name: 1 to 100 letters": [{"source_id": "docs", "query": "select 1", "name": "../x"}],
        "reference 0: extra: Extra inputs are not permitted": [{"source_id": "docs", "path": "a", "extra": 1}],
        "no references to attach": [],
    }
    for message, references in cases.items():
        with pytest.raises(ConfigurationError, match=re.escape(message)):
            asyncio.run(attach_to_thread(registry, base, "t", references))
    assert not base.exists()
