"use strict";
// segbridge web UI: behaviour of the flows pages (a file: the CSP forbids inline script).
