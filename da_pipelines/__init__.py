"""The Dagster code location of da-sources (``defs``). Built in issue 6."""
