"use strict";
// The Debugger page: a live list (EventSource) with Live/Pause, search, a filter by call type
// and event name, Pretty/Raw views, and the dropped calls with their reasons.
// The search starts from ?q= (rendered into data-query and the box, e.g. a test's messageId),
// filters the loaded events and every live one, and is kept in the address as it changes.
(function () {
  const root = document.getElementById("debugger");
  if (!root) return;
  const size = Number(root.dataset.size) || 500;
  const list = document.getElementById("event-list");
  const detail = document.getElementById("event-detail");
  const search = document.getElementById("search");
  const liveButton = document.getElementById("live-toggle");
  const prettyButton = document.getElementById("view-pretty");
  const rawButton = document.getElementById("view-raw");
  const status = document.getElementById("status");
  const stats = document.getElementById("stats");
  const typeFilter = document.getElementById("call-type");
  const nameFilter = document.getElementById("event-name");
  const dropList = document.getElementById("drop-list");
  let events = [];
  let live = true;
  let view = "pretty";
  let selected = null;
  let query = "";

  function setQuery(text) {
    query = text.trim().toLowerCase();
  }

  function keepQueryInAddress() {
    const url = new URL(window.location.href);
    const text = search.value.trim();
    if (text) url.searchParams.set("q", text); else url.searchParams.delete("q");
    window.history.replaceState(window.history.state, "", url);
  }

  function isKind(event) {
    const type = typeFilter.value;
    const name = nameFilter.value.trim().toLowerCase();
    if (type && event.type !== type) return false;
    if (!name) return true;
    const own = event.raw.event || event.raw.name;
    return typeof own === "string" && own.toLowerCase() === name;
  }

  function matches(event) {
    return isKind(event) && (!query || JSON.stringify(event.raw).toLowerCase().includes(query));
  }

  function summary(event) {
    const raw = event.raw;
    return raw.event || raw.name || raw.userId || raw.anonymousId || raw.groupId || "";
  }

  function item(event) {
    const li = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.setAttribute("aria-current", String(selected !== null && selected.seq === event.seq));
    const type = document.createElement("span");
    type.className = "type";
    type.textContent = event.type;
    const text = document.createElement("span");
    text.textContent = String(summary(event));
    const time = document.createElement("span");
    time.className = "time";
    time.textContent = event.received_at + " · " + event.message_id;
    button.append(type, text, time);
    button.addEventListener("click", () => { selected = event; showDetail(); render(); });
    li.append(button);
    return li;
  }

  function filtered() {
    return query || typeFilter.value || nameFilter.value.trim();
  }

  function render() {
    const shown = events.filter(matches);
    if (shown.length || !filtered()) {
      list.replaceChildren(...shown.map(item));
      return;
    }
    const empty = document.createElement("li");
    empty.className = "empty";
    const what = search.value.trim() || nameFilter.value.trim() || typeFilter.value;
    empty.textContent = `No event matches “${what}” yet; new ones appear here live.`;
    list.replaceChildren(empty);
  }

  function showDetail() {
    if (!selected) return;
    detail.textContent = view === "pretty" ? selected.pretty : JSON.stringify(selected.raw, null, 2);
  }

  function setView(next) {
    view = next;
    prettyButton.setAttribute("aria-pressed", String(view === "pretty"));
    rawButton.setAttribute("aria-pressed", String(view === "raw"));
    showDetail();
  }

  async function loadStats() {
    const response = await fetch(root.dataset.statsUrl, { credentials: "same-origin" });
    if (!response.ok) return;
    const s = await response.json();
    stats.textContent = `Received ${s.received} · accepted ${s.accepted} · dropped ${s.dropped}` +
      ` · duplicates ${s.duplicates} · rejected requests ${s.rejected}`;
    loadDropped();
  }

  function dropItem(drop) {
    const li = document.createElement("li");
    const reason = document.createElement("span");
    reason.className = "reason";
    reason.textContent = drop.reason;
    const detail = document.createElement("span");
    detail.textContent = drop.detail + (drop.count > 1 ? ` (${drop.count} calls)` : "");
    const time = document.createElement("span");
    time.className = "time";
    time.textContent = [drop.at, drop.type, drop.message_id].filter(Boolean).join(" · ");
    li.append(reason, detail, time);
    return li;
  }

  async function loadDropped() {
    const response = await fetch(root.dataset.droppedUrl, { credentials: "same-origin" });
    if (!response.ok) return;
    const drops = (await response.json()).dropped;
    if (!drops.length) {
      const none = document.createElement("li");
      none.className = "empty";
      none.textContent = "No call has been dropped.";
      dropList.replaceChildren(none);
      return;
    }
    dropList.replaceChildren(...drops.map(dropItem));
  }

  async function load() {
    const response = await fetch(root.dataset.eventsUrl, { credentials: "same-origin" });
    if (!response.ok) { status.textContent = "Could not load events."; return; }
    events = (await response.json()).events;
    if (query) selected = events.find(matches) || null;  // e.g. the test event of ?q=
    render();
    showDetail();
    loadStats();
  }

  function connect() {
    // from the newest loaded event on: nothing sent between the load and the stream is missed
    const newest = events.reduce((most, event) => Math.max(most, event.seq), 0);
    const source = new EventSource(`${root.dataset.streamUrl}?after=${newest}`);
    source.addEventListener("open", () => { status.textContent = live ? "Live" : "Paused"; });
    source.addEventListener("error", () => { status.textContent = "Reconnecting…"; });
    source.addEventListener("event", (message) => {
      const event = JSON.parse(message.data);
      events.unshift(event);
      if (events.length > size) events.length = size;
      if (!live) return;
      if (query && !selected && matches(event)) { selected = event; showDetail(); }
      render();
      loadStats();
    });
  }

  liveButton.addEventListener("click", () => {
    live = !live;
    liveButton.setAttribute("aria-pressed", String(live));
    liveButton.textContent = live ? "Live" : "Paused";
    status.textContent = live ? "Live" : "Paused";
    if (live) { render(); loadStats(); }
  });
  search.addEventListener("input", () => { setQuery(search.value); keepQueryInAddress(); render(); });
  typeFilter.addEventListener("change", render);
  nameFilter.addEventListener("input", render);
  prettyButton.addEventListener("click", () => setView("pretty"));
  rawButton.addEventListener("click", () => setView("raw"));
  const initial = root.dataset.query ?? new URLSearchParams(window.location.search).get("q") ?? "";
  search.value = initial;
  setQuery(initial);
  load().then(connect);
  // dropped calls never reach the live stream: look at the counters and drops now and then
  setInterval(() => { if (live) loadStats(); }, 3000);
})();
