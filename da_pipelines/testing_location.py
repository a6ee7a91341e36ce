"""A code location for tests: ``da_pipelines`` plus the test connector types.

``dagster job execute -m da_pipelines.testing_location -j N_sync`` with a sources
file that uses ``local_file_with_token`` (see ``da_pipelines.testing``).
"""

from da_pipelines.definitions import build_definitions
from da_pipelines.testing import register_test_connectors

register_test_connectors()
defs = build_definitions()
