"""``dg scaffold defs da_pipelines.components.DataSourceComponent PATH --id ID --type TYPE``: a filled ``defs.yaml``."""

from __future__ import annotations

from typing import Any

from dagster.components.component_scaffolding import scaffold_component
from dagster.components.scaffold.scaffold import Scaffolder, ScaffoldRequest
from pydantic import BaseModel, Field

from connectors.syncing.datasets import TABLE_TYPES

__all__ = ["DataSourceScaffolder", "ScaffoldParams"]


class ScaffoldParams(BaseModel):
    """The options of ``dg scaffold defs``: the new source's id and connector type."""

    id: str = Field("my_source", description="The source's id: letters, digits, - and _, starting with a letter.")
    type: str = Field("local_file", description="local_file, azure_blob, s3 or postgresql (or a plugin type).")


_EXAMPLE_CONFIGS: dict[str, dict[str, Any]] = {
    "local_file": {"root": "data", "recursive": True},
    "azure_blob": {"container_name": "data", "connection_string": {"env": "AZURE_STORAGE_CONNECTION_STRING"}},
    "s3": {"bucket": "data", "region": "us-east-1", "access_key_id": {"env": "AWS_ACCESS_KEY_ID"},
           "secret_access_key": {"env": "AWS_SECRET_ACCESS_KEY"}},
    "postgresql": {"host": "localhost", "port": 5432, "dbname": "postgres", "user": "postgres",
                   "password": {"env": "PGPASSWORD"}, "schemas": ["public"]},
}


class DataSourceScaffolder(Scaffolder[ScaffoldParams]):
    """Writes a ``defs.yaml`` filled for the chosen type, with secrets as ``{env: NAME}`` references."""

    @classmethod
    def get_scaffold_params(cls) -> type[ScaffoldParams]:
        """The options ``dg scaffold defs`` accepts for this Component.

        Returns:
            The model of ``--id`` and ``--type``.
        """
        return ScaffoldParams

    def scaffold(self, request: ScaffoldRequest[ScaffoldParams]) -> None:
        params = request.params or ScaffoldParams.model_validate({})
        attributes: dict[str, Any] = {"id": params.id, "type": params.type, "name": params.id,
                                      "config": _EXAMPLE_CONFIGS.get(params.type, {})}
        if params.type in TABLE_TYPES:
            attributes["tables"] = {"include": ["*"], "exclude": []}
        else:
            attributes["item_sets"] = [{"name": "files"}]
        scaffold_component(request, attributes)
