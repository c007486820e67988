"""A connection draft holds its settings masked: a write key or a database password never
shows in its repr or str (a log line, a traceback), and the checks still read them."""

from __future__ import annotations

from segbridge.apps.registry import default_registry
from segbridge.connections.model import ConnectionDraft
from segbridge.connections.validation import check_settings
from segbridge.core.secrets import Secret

WRITE_KEY = "wk_known1234567890abcdefghijkl"
PASSWORD = "hunter2-very-secret"


def test_the_repr_and_str_of_a_draft_show_no_secret() -> None:
    drafts = [
        ConnectionDraft(name="Segment", application="segment",
                        settings={"write_key": WRITE_KEY, "region": "eu"}),
        ConnectionDraft(name="Shop DB", application="database",
                        settings={"url": f"postgresql://app:{PASSWORD}@db/shop"}),
    ]
    for draft in drafts:
        for shown in (repr(draft), str(draft), f"{draft}", f"{draft!r}"):
            assert WRITE_KEY not in shown and PASSWORD not in shown, shown
    assert isinstance(drafts[0].settings["write_key"], Secret)


def test_the_checks_read_the_masked_settings() -> None:
    segment = default_registry().get("segment")
    assert segment is not None
    draft = ConnectionDraft(name="Segment", application="segment",
                            settings={"write_key": f" {WRITE_KEY} ", "region": None})
    values, secrets, problems = check_settings(segment, draft.settings)
    assert problems == []
    assert secrets["write_key"].reveal() == WRITE_KEY
    assert WRITE_KEY not in repr(values)


def test_a_connection_request_body_shows_no_setting_in_its_repr() -> None:
    from segbridge.api.schemas import ConnectionCreate, ConnectionTest, ConnectionUpdate

    bodies = [ConnectionCreate(name="Segment", application="segment",
                               settings={"write_key": WRITE_KEY}),
              ConnectionUpdate(name="Segment", settings={"write_key": WRITE_KEY}),
              ConnectionTest(application="segment", settings={"write_key": WRITE_KEY})]
    for body in bodies:
        assert WRITE_KEY not in repr(body) and WRITE_KEY not in str(body)
