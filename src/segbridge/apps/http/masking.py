"""Secrets out of every URL and message the HTTP application produces.

A URL may carry a secret (an API key in a query parameter, a token an API echoes into its
next links); a message may quote a URL or an API's answer. ``Masker.mask`` replaces every
form of every secret of the connection (as written, URL-encoded, in a Basic header) by
``********``, and the value of the API key's query parameter whatever it holds.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

from segbridge.core.secrets import MASK, Secret


class Masker:
    """Masks one connection's secrets in text."""

    def __init__(self, secrets: Iterable[Secret], key_param: str | None = None,
                 username: str = "") -> None:
        forms: set[str] = set()
        for secret in secrets:
            value = secret.reveal()
            if len(value) < 3:  # too short to find without masking innocent text
                continue
            forms |= {value, quote(value, safe=""), quote_plus(value)}
        password = [s.reveal() for s in secrets] if username else []
        for value in password:
            forms.add(base64.b64encode(f"{username}:{value}".encode()).decode("ascii"))
        self._forms = sorted(forms, key=len, reverse=True)
        self._param = re.compile(rf"([?&]{re.escape(key_param)}=)[^&#\s]*") if key_param \
            else None

    def mask(self, text: str) -> str:
        for form in self._forms:
            text = text.replace(form, MASK)
        if self._param is not None:
            text = self._param.sub(rf"\g<1>{MASK}", text)
        return text
