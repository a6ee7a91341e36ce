"""What the S3 fetch path imports: start-up time counts in every CLI call and in the 1 GiB benchmark."""

from __future__ import annotations

import json
import subprocess
import sys

NOT_NEEDED = ("azure", "pyarrow", "numpy", "connectors.threads", "connectors.api.app", "fastapi", "dagster", "botocore",
              "awscrt")


def _imported_after(statement: str) -> list[str]:
    script = (f"import json, sys; {statement}; "
              f"print(json.dumps(sorted(m for m in sys.modules if m.startswith({NOT_NEEDED!r}))))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return list(json.loads(done.stdout))


def test_the_s3_connector_loads_no_azure_sdk_and_no_dataframe_library() -> None:
    assert _imported_after("import connectors.s3") == []


def test_the_cli_loads_neither_threads_nor_pyarrow_before_a_command_needs_them() -> None:
    assert _imported_after("import connectors.cli, connectors.s3") == []


def test_an_s3_connector_names_its_type_without_loading_the_azure_connector() -> None:
    config = "{'bucket': 'b', 'credential': 'anonymous'}"
    statement = ("from connectors import DataSourceConfig; from connectors.s3 import S3Connector; "
                 f"S3Connector(DataSourceConfig(id='a', type='s3', name='a', config={config})).type_name()")
    assert _imported_after(statement) == []
