"""The connector core: config validation, the error tree, masking, independence from dagster."""

from __future__ import annotations

import pickle
import subprocess
import sys
import time

import pytest

from connectors import (
    AuthenticationError,
    ConfigurationError,
    ConnectionError,
    DataFetchError,
    DataSourceConfig,
    DataSourceError,
    DataSourceType,
    IntegrityError,
    NameCollisionError,
    NotFoundError,
    UnsafeNameError,
    WorkspaceError,
    is_retryable,
)

CANARY = "canary-7d1f0c-secret-value"


def azure_config(**config: object) -> DataSourceConfig:
    return DataSourceConfig(id="ds-azure", type="azure_blob", name="Azure", config=config)


def test_defaults_and_the_enum() -> None:
    before = int(time.time())
    config = DataSourceConfig(id="a", type=DataSourceType.LOCAL_FILE, name="A", config={"root": "/data"})
    assert before <= config.created_at <= int(time.time()) + 1
    assert config.metadata == {} and config.type is DataSourceType.LOCAL_FILE
    assert DataSourceConfig(id="b", type="postgresql", name="B", config={"host": "h"}).type is DataSourceType.POSTGRESQL


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ({"id": "s1", "type": "ftp", "name": "x", "config": {}}, "source 's1': type: unknown connector type 'ftp'"),
        ({"id": "s2", "type": "local_file", "name": "x", "config": {}}, "source 's2': config.root: required"),
        ({"id": "s3", "type": "local_file", "name": "x", "config": {"root": "/r", "recursive": "maybe"}},
         "source 's3': config.recursive:"),
        ({"id": "s4", "type": "local_file", "name": "x", "config": {"root": "/r", "colour": 1}},
         "source 's4': config.colour: unknown field"),
        ({"id": "s5", "type": "postgresql", "name": "x", "config": {"host": "h", "port": "many"}},
         "source 's5': config.port:"),
        ({"id": "s6", "type": "azure_blob", "name": "x", "config": {"container_name": "c"}},
         "source 's6': config: give exactly one of connection_string or account_url"),
        ({"id": "s7", "type": "local_file", "config": {"root": "/r"}}, "source 's7': name: required"),
        ({"id": "s8", "type": "local_file", "name": "x", "config": {"root": "/r"}, "owner": "me"},
         "source 's8': owner: unknown field"),
    ],
)
def test_bad_configs_name_the_source_and_the_field(source: dict[str, object], expected: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        DataSourceConfig(**source).check_complete()  # built incomplete, stored whole
    assert str(caught.value).startswith(expected), str(caught.value)


def test_references_are_accepted_anywhere_and_checked_for_shape() -> None:
    config = azure_config(container_name={"env": "CONTAINER"}, connection_string={"secret": "azure-prod"})
    assert config.config["connection_string"] == {"secret": "azure-prod"}
    with pytest.raises(ConfigurationError, match="config.container_name"):
        azure_config(container_name={"vault": "x"}, connection_string={"env": "X"})


def test_literal_secrets_never_show_in_repr_str_equality_or_pickle() -> None:
    config = azure_config(container_name="c", connection_string=f"SharedAccessSignature=sig={CANARY}")
    for text in (repr(config), str(config), f"{config}", repr(config.config), str(config.model_dump())):
        assert CANARY not in text
    assert CANARY.encode() not in pickle.dumps(config)
    assert config == azure_config(container_name="c", connection_string=f"SharedAccessSignature=sig={CANARY}")
    assert config != azure_config(container_name="c", connection_string="SharedAccessSignature=sig=other")


def test_a_bad_value_next_to_a_secret_does_not_echo_the_secret() -> None:
    with pytest.raises(ConfigurationError) as caught:
        azure_config(container_name=["not", "a", "string"], connection_string=f"AccountKey={CANARY}")
    assert CANARY not in str(caught.value) and CANARY not in repr(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_the_error_tree_and_retryability() -> None:
    for cls in (ConfigurationError, ConnectionError, AuthenticationError, DataFetchError):
        assert issubclass(cls, DataSourceError)
    for cls in (NotFoundError, IntegrityError, UnsafeNameError, WorkspaceError):
        assert issubclass(cls, DataFetchError)
    assert issubclass(NameCollisionError, UnsafeNameError)
    assert is_retryable(ConnectionError("reset")) and is_retryable(IntegrityError("short read"))
    assert not is_retryable(AuthenticationError("403")) and not is_retryable(NotFoundError("404"))
    assert not is_retryable(ConnectionError("bad host", retryable=False))
    assert not is_retryable(ValueError("not ours"))


@pytest.mark.parametrize("cls", [DataSourceError, ConnectionError, AuthenticationError, NotFoundError,
                                 IntegrityError, NameCollisionError, WorkspaceError, ConfigurationError])
def test_errors_pickle_with_their_state(cls: type[DataSourceError]) -> None:
    error = cls("it broke", source_id="src", retryable=True)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is cls and str(copy) == "source 'src': it broke"
    assert copy.source_id == "src" and copy.retryable is True


def test_connectors_work_without_dagster_installed() -> None:
    script = (
        "import sys\n"
        "class Hide:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'dagster': raise ImportError('dagster hidden')\n"
        "sys.meta_path.insert(0, Hide())\n"
        "import asyncio, tempfile, pathlib\n"
        "import connectors, connectors.local_file, connectors.registry, connectors.landing, connectors.cli\n"
        "import connectors.testing, connectors.secrets, connectors.azure_blob, connectors.postgresql\n"
        "root = pathlib.Path(tempfile.mkdtemp()); (root / 'a.txt').write_text('hi')\n"
        "c = connectors.local_file.LocalFileConnector(connectors.DataSourceConfig(id='x', type='local_file',"
        " name='x', config={'root': str(root)}))\n"
        "async def go():\n"
        "    async with c: return await c.fetch_data('a.txt', str(root / 'ws'))\n"
        "print(asyncio.run(go()))\n"
        "assert not any(m.startswith('dagster') for m in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("ws/a.txt")


def test_importing_the_package_does_not_import_cloud_sdks() -> None:
    script = "import sys, connectors; print(sorted(m for m in sys.modules if m.startswith(('azure', 'psycopg'))))"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
