"""The application conformance kit: one base class, ``ApplicationConformance``, that every
application's test class subclasses (the way singer-sdk ships its standard tap tests), so a
new application gets the whole battery from one small class.

How to test a new application: add ``tests/integration/apps/test_<app>_conformance.py`` with
``class Test<App>Conformance(ApplicationConformance)`` and set ``application``. With a Test
connection (``PING``): fill ``expected`` (``Case`` -> ``Expect(cause, status)``) and
``not_applicable`` (``Case`` -> why), and write ``provoke(case)``, a context manager yielding a
``Provoked`` connection against a real peer on loopback. As a source (``EXPORT``): list
``export_samples`` and ``failing_exports``, write ``export_sample(name, folder)``. As a
destination (``IMPORT``): write ``destination(trouble, clock)`` and ``call(call_id, valid)``.
What the application cannot do is skipped with the reason; a check that finds a bug goes in
``known_bugs`` (a strict expected failure) until it is fixed. See the Segment, Database and
Files classes in tests/integration/apps/.
"""

from tests.kit.conformance import ApplicationConformance
from tests.kit.connection import Case, Expect, Provoked
from tests.kit.exports import ExportSample
from tests.kit.sinks import Destination, Trouble

__all__ = ["ApplicationConformance", "Case", "Destination", "Expect", "ExportSample", "Provoked",
           "Trouble"]
