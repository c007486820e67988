"use strict";
// segbridge web UI: behaviour of the mapping pages (a file: the CSP forbids inline script).
