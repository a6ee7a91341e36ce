"""DeepAnalyze's original connector interface, as its README and tests use it (a part of the conformance suite)."""

from tests.conformance import SeedInterfaceConformance


class TestSeedInterface(SeedInterfaceConformance):
    pass
