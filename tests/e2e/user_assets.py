"""A user's own code location: an asset downstream of a table of the ``e2e-pg`` source."""

import dagster as dg

CUSTOMERS = dg.AssetKey(["e2e_pg", "public", "customers"])


@dg.asset(deps=[CUSTOMERS], group_name="reports", description="A user's report built on the customers table.")
def customer_report() -> None:
    """Nothing to compute here: the test looks at the lineage graph."""


defs = dg.Definitions(assets=[customer_report])
