"""The application conformance kit: one base class, ``ApplicationConformance``, that every
application's test class subclasses (the way singer-sdk ships its standard tap tests), so a
new application gets the whole battery from one small class. See ``conformance``."""

from tests.kit.conformance import ApplicationConformance
from tests.kit.connection import Case, Expect, Provoked
from tests.kit.exports import ExportSample
from tests.kit.sinks import Destination, Trouble

__all__ = ["ApplicationConformance", "Case", "Destination", "Expect", "ExportSample", "Provoked",
           "Trouble"]
