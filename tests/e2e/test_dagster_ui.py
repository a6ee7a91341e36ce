"""End to end in a real browser: the Dagster UI materializes data, and a sensor reacts.

What a person does, in headless Chromium against ``dagster dev -w workspace.yaml``
(webserver and daemon) over the harness's Azurite and PostgreSQL:

1. opens the asset graph and finds each source's ``remote`` asset and its datasets:
   the PostgreSQL table is an asset before any sync, and a user's own asset
   (another code location) shows downstream of it;
2. materializes the table from its asset page, and one blob from the ``orders``
   set, which opted in to one partition per blob (Materialize, pick the item's
   partition, launch), and sees the runs succeed;
3. finds the files in the workspace with their lineage records, and the same
   facts (source URI, size, sha256, row count, column schema) on the asset pages;
4. turns the Azure source's sensor on, uploads a blob, and sees the sensor's run
   land that blob and only it, registered as a partition whose key reads as the blob's name.

The PostgreSQL password is a canary: it must never appear in a page, a
screenshot's visible text, or anything Dagster stored.
"""

from __future__ import annotations

import csv
import hashlib
import io
import time
from pathlib import Path
from typing import Any

import pytest

from connectors.errors import NotFoundError
from connectors.landing.lineage import read_provenance
from tests.e2e.conftest import ARTIFACTS, Stack
from tests.e2e.stack import (
    BLOB_CONTENT,
    BLOB_LANDED_FROM_UI,
    PG_PASSWORD_ENV,
    TABLE,
    TABLE_COLUMNS,
    TABLE_ROWS,
    sensor_runs,
    upload_blob,
    wait_for_runs,
)
from tests.e2e.ui import Ui

GROUPS = ["sample", "e2e_azure", "e2e_pg"]  # source slugs = asset groups
DATASETS = {"sample": ["files"], "e2e_azure": ["files", "orders"], "e2e_pg": ["customers"]}
SENSOR = "e2e_azure_sensor"
NEW_BLOB = "orders/2026-12.csv"
NEW_BLOB_CONTENT = b"order_id,amount\n4,3.10\n5,8.80\n"

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.mark.timeout(420)
def test_ui_materializes_items_and_sensor_lands_new_blob(
    stack: Stack, ui: Ui, capsys: pytest.CaptureFixture[str]
) -> None:
    with capsys.disabled():
        print(f"\ne2e screenshots: {ARTIFACTS}")

    # 1. The asset graph: one group per source, each with its remote asset and its datasets.
    ui.open_asset_graph(GROUPS)
    for group, datasets in DATASETS.items():
        assert ui.group_assets(group, ["remote", *datasets]) == ["remote", *datasets], group
    assert ui.upstream_of("customer_report", "customers")  # a user's asset, downstream of the table

    # 2. The table from its asset page, one blob from its partition; both runs at once.
    known: set[str] = set()
    blob_run = ui.materialize_item("e2e_azure/orders", BLOB_LANDED_FROM_UI, known)
    table_run = ui.materialize_asset("e2e_pg/public/customers", known)
    wait_for_runs(stack.dev, [blob_run, table_run])
    ui.run_page_shows_success(blob_run)
    ui.run_page_shows_success(table_run)

    # 3. The files, their lineage, and what the asset pages show.
    blob_record = check_landed_blob(stack, BLOB_LANDED_FROM_UI, BLOB_CONTENT, blob_run)
    table_record = check_landed_table(stack, table_run)
    check_blob_page(ui, blob_record)
    check_table_page(ui, table_record)
    ui.screenshot("asset-materialization")

    # The password reaches Dagster only as the name of an environment variable.
    resource_page = ui.resource_config("e2e_pg_source")
    assert PG_PASSWORD_ENV in resource_page

    # 4. The sensor, started from the UI, lands the new blob and only it.
    ui.start_sensor(SENSOR)
    upload_blob(stack.azurite, stack.seeded.container, NEW_BLOB, NEW_BLOB_CONTENT)
    sensor_run = wait_for_sensor_to_land(stack, NEW_BLOB)
    row = ui.sensor_runs_show(SENSOR, sensor_run, target="e2e_azure_sync")
    assert SENSOR in row  # "Launched by" the sensor
    check_landed_blob(stack, NEW_BLOB, NEW_BLOB_CONTENT, sensor_run)
    assert ui.partition_listed("e2e_azure/orders", NEW_BLOB)  # registered by the sync, readable as is
    assert read_provenance(blob_path(stack, BLOB_LANDED_FROM_UI)) == blob_record, \
        "the blob landed before was fetched again (its lineage record changed)"
    assert landed_files(stack) == {f"e2e-azure/{BLOB_LANDED_FROM_UI}", f"e2e-azure/{NEW_BLOB}",
                                   f"e2e-pg/{TABLE}.csv"}

    # The graph after all that, for the README and for people reading a CI failure.
    ui.open_asset_graph(GROUPS)
    ui.screenshot("asset-graph")
    assert not files_containing(stack.home, stack.seeded.canary), "the secret is stored in DAGSTER_HOME"
    assert stack.seeded.canary not in stack.dev.log_tail(10**9), "the secret is in dagster dev's output"
    with capsys.disabled():
        print(f"checked {len(ui.checked)} page states ({len(set(ui.checked))} pages) for the secret")


# --- the workspace --------------------------------------------------------------


def blob_path(stack: Stack, name: str) -> Path:
    return stack.workspace / "e2e-azure" / name


def landed_files(stack: Stack) -> set[str]:
    """Every landed file under the workspace (lineage records and locks aside)."""
    return {str(p.relative_to(stack.workspace)) for p in stack.workspace.rglob("*")
            if p.is_file() and ".lineage" not in p.parts and ".da_sources" not in p.parts}


def check_landed_blob(stack: Stack, name: str, content: bytes, run_id: str) -> dict[str, Any]:
    """The blob landed byte for byte, and its lineage record names its source, content and run."""
    path = blob_path(stack, name)
    assert path.read_bytes() == content
    record = read_provenance(path)
    assert record["source_id"] == "e2e-azure" and record["source_type"] == "azure_blob"
    assert record["identifier"] == name
    assert record["source_uri"].endswith(f"/{stack.seeded.container}/{name}")
    assert record["size"] == len(content)
    assert record["sha256"] == hashlib.sha256(content).hexdigest()
    assert record["run_id"] == run_id
    return record


def check_landed_table(stack: Stack, run_id: str) -> dict[str, Any]:
    """The table landed as CSV with every row, and its record has row count and columns."""
    path = stack.workspace / "e2e-pg" / f"{TABLE}.csv"
    rows = list(csv.reader(io.StringIO(path.read_text())))
    assert rows[0] == [name for name, _ in TABLE_COLUMNS]
    assert [int(row[0]) for row in rows[1:]] == [row[0] for row in TABLE_ROWS]
    record = read_provenance(path)
    assert record["source_id"] == "e2e-pg" and record["identifier"] == TABLE
    assert record["row_count"] == len(TABLE_ROWS)
    assert [(c["name"], c["type"]) for c in record["columns"]] == TABLE_COLUMNS
    assert record["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert record["run_id"] == run_id
    return record


def files_containing(root: Path, secret: str) -> list[Path]:
    """Files under ``root`` (Dagster's run, event and compute-log storage) that contain ``secret``."""
    needle = secret.encode()
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


# --- the asset pages ------------------------------------------------------------


def check_blob_page(ui: Ui, record: dict[str, Any]) -> None:
    shown = ui.materialization_metadata("e2e_azure/orders", record["identifier"])
    assert shown["dagster/uri"] == record["source_uri"]
    assert shown["size"] == str(record["size"])
    assert shown["sha256"] == record["sha256"]
    assert shown["path"] == record["local_path"]


def check_table_page(ui: Ui, record: dict[str, Any]) -> None:
    shown = ui.materialization_metadata("e2e_pg/public/customers")
    assert shown["dagster/uri"].startswith("postgresql://") and shown["dagster/table_name"] == TABLE
    assert shown["items_landed"] == "1" and shown["path"] == record["local_path"]
    assert shown["sha256"] == record["sha256"]
    assert shown["dagster/row_count"] == str(len(TABLE_ROWS))
    assert ui.column_schema() == TABLE_COLUMNS


# --- the sensor -----------------------------------------------------------------


def wait_for_sensor_to_land(stack: Stack, name: str, timeout: float = 150) -> str:
    """The id of the sensor's run that landed ``name`` (the daemon ticks every 5 s here).

    The first tick may also request the blob landed before, in the same run or an
    earlier one; the sync skips it because its lineage record has the listed version.
    """
    record_path = blob_path(stack, name)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = sensor_runs(stack.dev, SENSOR)
        failed = {r: s for r, s in runs.items() if s in ("FAILURE", "CANCELED")}
        assert not failed, f"sensor runs failed: {failed}\n{stack.dev.log_tail()}"
        run_id = landed_by(record_path)
        if run_id and runs.get(run_id) == "SUCCESS":
            return run_id
        time.sleep(1)
    raise AssertionError(f"no {SENSOR} run landed {name} within {timeout} s; sensor runs: "
                         f"{sensor_runs(stack.dev, SENSOR)}\n{stack.dev.log_tail()}")


def landed_by(path: Path) -> str | None:
    """The run recorded in the lineage of ``path``, or None while it has not landed."""
    try:
        return str(read_provenance(path)["run_id"])
    except NotFoundError:
        return None
