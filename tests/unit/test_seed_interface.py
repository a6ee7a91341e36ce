"""The seed's interface as its README and tests write it (the conformance suite's seed part)."""

from tests.conformance import SeedInterfaceConformance


class TestSeedInterface(SeedInterfaceConformance):
    pass
