"use strict";
// The Try it page: Segment's standard analytics.js snippet (5.x, unminified), loading the
// library from the local Segment (``analytics._cdn``), and a button per call.
(function () {
  const root = document.getElementById("try-it");
  if (!root) return;
  const writeKey = root.dataset.writeKey;
  const cdn = root.dataset.cdn;
  const status = document.getElementById("try-status");
  const log = document.getElementById("try-log");
  const METHODS = [
    "trackSubmit", "trackClick", "trackLink", "trackForm", "pageview", "identify", "reset",
    "group", "track", "ready", "alias", "debug", "page", "screen", "once", "off", "on",
    "addSourceMiddleware", "addIntegrationMiddleware", "setAnonymousId", "addDestinationMiddleware",
    "register",
  ];

  function snippet() {
    const analytics = (window.analytics = window.analytics || []);
    if (analytics.initialize || analytics.invoked) return analytics;
    analytics.invoked = true;
    analytics.methods = METHODS;
    analytics.factory = function (method) {
      return function () {
        if (window.analytics.initialized) {
          return window.analytics[method].apply(window.analytics, arguments);
        }
        const args = Array.prototype.slice.call(arguments);
        args.unshift(method);
        analytics.push(args);
        return analytics;
      };
    };
    for (const method of METHODS) analytics[method] = analytics.factory(method);
    analytics.load = function (key, options) {
      const script = document.createElement("script");
      script.async = true;
      script.src = cdn + "/analytics.js/v1/" + encodeURIComponent(key) + "/analytics.min.js";
      document.head.appendChild(script);
      analytics._loadOptions = options;
    };
    analytics._writeKey = writeKey;
    analytics._cdn = cdn;
    analytics.SNIPPET_VERSION = "5.2.1";
    analytics.load(writeKey);
    return analytics;
  }

  function field(id) {
    return document.getElementById(id).value.trim();
  }

  const calls = {
    identify: () => window.analytics.identify(field("try-user"), { name: "Try It User" }),
    track: () => window.analytics.track(field("try-event"), { from: "try it" }),
    page: () => window.analytics.page("Try it"),
    group: () => window.analytics.group("try-it-group", { name: "Try It Inc." }),
    alias: () => window.analytics.alias(field("try-user") + "-alias"),
  };

  function note(call) {
    const li = document.createElement("li");
    li.textContent = `${new Date().toISOString()} · ${call}`;
    log.prepend(li);
  }

  snippet();
  window.analytics.ready(() => {
    status.textContent = "analytics.js is ready.";
    root.dataset.ready = "true";
  });
  for (const button of root.querySelectorAll("button[data-call]")) {
    button.addEventListener("click", async () => {
      const call = button.dataset.call;
      await calls[call]();
      note(call);
    });
  }
})();
