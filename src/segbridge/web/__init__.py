"""The web UI: server-rendered pages for connections, signed in with a browser session.

Thin adapters over the same services as the REST API (``runtime.connections``); nothing here
decides what is valid: field errors are the service's ``ValidationFailed`` problems, shown
next to their fields.

Module map:

* ``mount``     - ``mount_web(app)``: routes, static files, the two exception handlers
* ``rendering`` - Jinja2 (autoescaped), security headers (CSP without inline script), htmx
* ``auth``      - the signed-in user from the session cookie, CSRF checks on every POST
* ``forms``     - form fields <-> ``ConnectionDraft``; problems -> the fields they belong to
* ``results``   - a Test connection result as the pane shows it, with the Debugger link
* ``listing``   - the Connections list: rows, search and sort
* ``routes/``   - one module per screen: login, home, connection list, the pane
"""

from __future__ import annotations

from segbridge.web.mount import mount_web

__all__ = ["mount_web"]
