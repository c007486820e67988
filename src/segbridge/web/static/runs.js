"use strict";
// segbridge web UI: behaviour of the runs pages (a file: the CSP forbids inline script).
