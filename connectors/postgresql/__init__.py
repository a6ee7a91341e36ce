"""The PostgreSQL connector.

:mod:`.connector` (the connector and its pool), :mod:`.catalog` (what is in
scope: tables, views, their columns and versions), :mod:`.columns` (how each
PostgreSQL type is written to CSV and Parquet) and :mod:`.export` (``COPY``
streamed onto the landing), :mod:`.slicing` (sized reads: columns, where,
limit, sample, and row/byte budgets).
"""

from connectors.postgresql.connector import MODIFIED_AT_UNKNOWN, PostgreSQLConnector
from connectors.rows import BudgetExceededError, RowBudget, RowOptions

__all__ = ["MODIFIED_AT_UNKNOWN", "BudgetExceededError", "PostgreSQLConnector", "RowBudget", "RowOptions"]
