"use strict";
// segbridge web UI behaviour: the Resources menu; the side pane (focus in and back out, Escape,
// the unsaved-changes dialog) on whichever page hosts it in <div id="pane-host">; borrowing
// disables the concurrency level; field errors after htmx swaps; what was typed (the write
// key included, which the server never sends back) survives the pane's re-rendering.
// Loaded as a file: the pages' Content-Security-Policy forbids inline script.
(function () {
  const PANE_HOST = "pane-host";
  let opener = null;
  let kept = null;

  const byId = (id) => document.getElementById(id);
  const pane = () => byId("pane");
  const background = () => [byId("topbar"), byId("page")].filter(Boolean);

  // ---- the Resources menu (a disclosure: a button and a list of links) -------------------

  function menuOf(button) { return byId(button.getAttribute("aria-controls")); }

  function setMenu(button, open) {
    button.setAttribute("aria-expanded", String(open));
    menuOf(button).hidden = !open;
  }

  function openMenuButton() {
    return document.querySelector(".menu-button[aria-expanded='true']");
  }

  function closeMenus(exceptButton) {
    document.querySelectorAll(".menu-button[aria-expanded='true']").forEach((button) => {
      if (button !== exceptButton) setMenu(button, false);
    });
  }

  function menuLinks(button) { return Array.from(menuOf(button).querySelectorAll("a")); }

  function onMenuKey(event) {
    const button = event.target.closest(".menu").querySelector(".menu-button");
    const links = menuLinks(button);
    const index = links.indexOf(document.activeElement);
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      if (button.getAttribute("aria-expanded") !== "true") setMenu(button, true);
      const step = event.key === "ArrowDown" ? 1 : -1;
      const next = index < 0 ? (step > 0 ? 0 : links.length - 1)
        : (index + step + links.length) % links.length;
      links[next].focus();
    }
  }

  function setupMenus() {
    document.querySelectorAll(".menu-button").forEach((button) => {
      button.addEventListener("click", () => {
        const open = button.getAttribute("aria-expanded") !== "true";
        closeMenus(button);
        setMenu(button, open);
      });
      button.closest(".menu").addEventListener("keydown", onMenuKey);
      button.closest(".menu").addEventListener("focusout", (event) => {
        if (!button.closest(".menu").contains(event.relatedTarget)) setMenu(button, false);
      });
    });
    document.addEventListener("click", (event) => {
      if (!event.target.closest(".menu")) closeMenus(null);
    });
  }

  // ---- the pane ----------------------------------------------------------------------------

  function paneForm() {
    const current = pane();
    return current ? current.querySelector("form.pane-form") : null;
  }

  function isDirty() {
    const form = paneForm();
    return Boolean(form) && form.dataset.dirty === "true";
  }

  function setBackgroundInert(inert) {
    background().forEach((element) => { element.inert = inert; });
    document.body.classList.toggle("pane-open", inert);
  }

  function focusInPane(current) {
    const target = current.querySelector("[aria-invalid='true']")
      || current.querySelector("[data-autofocus]")
      || byId("pane-title");
    if (target) target.focus();
  }

  function onPaneShown() {
    const current = pane();
    if (!current) { onPaneHidden(); return; }
    setBackgroundInert(true);
    syncBorrowing(current);
    syncErrors(current);
    focusInPane(current);
  }

  function openerElement() {
    if (opener && opener.element && opener.element.isConnected) return opener.element;
    return (opener && opener.id && byId(opener.id)) || null;
  }

  function onPaneHidden() {
    setBackgroundInert(false);
    const target = openerElement() || byId("create-connection") || byId("main");
    opener = null;
    if (target) target.focus();
  }

  function pathOf(url) {
    const parsed = new URL(url, window.location.href);
    return parsed.pathname + parsed.search;
  }

  function closePane() {
    const current = pane();
    const host = byId(PANE_HOST);
    if (!current || !host) return;
    const url = current.dataset.closeUrl || "/connections";
    const page = current.dataset.pageUrl;
    if (page && new URL(url, window.location.href).pathname !== page) {
      window.location.assign(url);  // the page behind the pane is not where Close goes
      return;
    }
    host.replaceChildren();
    if (pathOf(window.location.href) !== pathOf(url)) {
      window.history.pushState({ htmx: true }, "", url);
    }
    onPaneHidden();
  }

  function discardDialog() {
    const current = pane();
    return current && current.querySelector("dialog[data-discard-dialog]");
  }

  function requestClose() {
    const dialog = discardDialog();
    if (isDirty() && dialog) {
      dialog.showModal();
    } else {
      closePane();
    }
  }

  function onDiscardChoice(button) {
    const dialog = button.closest("dialog");
    if (dialog) dialog.close();
    if (button.dataset.discard === "confirm") closePane();
  }

  // ---- fields ------------------------------------------------------------------------------

  function syncBorrowing(root) {
    root.querySelectorAll("select[data-borrow]").forEach((select) => {
      const borrowing = select.value !== "";
      // the fields that do not apply while borrowing (the lender's apply), and their notes
      select.dataset.borrow.split(" ").map(byId).forEach((control) => {
        if (control) control.disabled = borrowing;
      });
      (select.dataset.borrowNote || "").split(" ").map(byId).forEach((note) => {
        if (note) note.hidden = !borrowing;
      });
    });
  }

  function syncErrors(root) {
    root.querySelectorAll("[data-error]").forEach((control) => {
      const error = byId(control.dataset.error);
      const wrong = Boolean(error) && error.textContent.trim() !== "";
      if (wrong) {
        control.setAttribute("aria-invalid", "true");
      } else {
        control.removeAttribute("aria-invalid");
      }
      const field = control.closest(".field");
      if (field) field.classList.toggle("has-error", wrong);
      if (wrong) {
        const details = control.closest("details");
        if (details) details.open = true;
      }
    });
  }

  function afterTest() {
    const current = pane();
    if (!current) return;
    syncErrors(current);
    const invalid = current.querySelector("[aria-invalid='true']");
    const result = byId("test-result");
    if (invalid) {
      invalid.focus();
    } else if (result) {
      result.focus();  // the result is what the user asked for; a screen reader reads it
    }
    if (result) result.scrollIntoView({ block: "nearest" });
  }

  // ---- what was typed survives the pane's re-rendering -------------------------------------
  // The server never renders a secret: after a failed Save, or a Save that keeps the pane
  // open, the new form comes back with the write key empty. The browser keeps what the user
  // typed (secret fields by id) and which sections were open, and puts them back.

  function keepTyped(form) {
    const secrets = {};
    form.querySelectorAll("input[type='password']").forEach((input) => {
      if (input.id && input.value) secrets[input.id] = input.value;
    });
    const open = Array.from(form.querySelectorAll("details[open]")).map((d) => d.id)
      .filter(Boolean);
    return { secrets, open };
  }

  function restoreTyped(root, saved) {
    Object.keys(saved.secrets).forEach((id) => {
      const input = byId(id);
      if (input && root.contains(input) && input.type === "password" && !input.value) {
        input.value = saved.secrets[id];
      }
    });
    saved.open.forEach((id) => {
      const details = byId(id);
      if (details && root.contains(details)) details.open = true;
    });
  }

  function onBeforeSwap(event) {
    const form = paneForm();
    const elt = event.detail.requestConfig && event.detail.requestConfig.elt;
    kept = (targetId(event) === PANE_HOST && form && elt && form.contains(elt))
      ? keepTyped(form) : null;
  }

  // ---- events ------------------------------------------------------------------------------

  function markDirty(event) {
    const form = event.target.closest("form.pane-form");
    if (form) form.dataset.dirty = "true";
    if (event.target.matches("select[data-borrow]")) syncBorrowing(form || document);
  }

  function copyField(button) {
    // a Copy button: data-copy names the field (a selector); it is selected too, so
    // Ctrl+C works where the clipboard API is not allowed (plain HTTP on another host)
    const field = document.querySelector(button.dataset.copy);
    if (!field) return;
    field.select();
    if (navigator.clipboard) {
      navigator.clipboard.writeText(field.value).then(
        () => { button.textContent = "Copied"; }, () => {});
    }
  }

  function onClick(event) {
    const copy = event.target.closest("[data-copy]");
    if (copy) {
      copyField(copy);
      return;
    }
    const choice = event.target.closest("[data-discard]");
    if (choice) {
      onDiscardChoice(choice);
      return;
    }
    const closer = event.target.closest("[data-pane-close], [data-pane-backdrop]");
    if (closer && pane()) {
      event.preventDefault();
      requestClose();
      return;
    }
    const fill = event.target.closest("[data-fill]");
    if (fill) {
      const input = byId(fill.dataset.fill);
      if (!input) return;
      const section = input.closest("details");
      if (section) section.open = true;
      input.value = fill.dataset.value;
      input.dispatchEvent(new Event("input", { bubbles: true }));
      input.focus();
    }
  }

  function onKeydown(event) {
    if (event.key !== "Escape") return;
    const dialog = discardDialog();
    if (dialog && dialog.open) return;
    const menu = openMenuButton();
    if (menu) {
      setMenu(menu, false);
      menu.focus();
      return;
    }
    if (pane()) {
      event.preventDefault();
      requestClose();
    }
  }

  function targetId(event) {
    const target = event.detail && event.detail.target;
    return target ? target.id : "";
  }

  function onBeforeRequest(event) {
    if (targetId(event) === PANE_HOST && !pane()) {
      const elt = event.detail.elt;
      opener = elt ? { element: elt, id: elt.id || null } : null;
    }
  }

  function onAfterSettle(event) {
    const id = targetId(event);
    if (id === PANE_HOST) {
      const current = pane();
      if (current && kept) restoreTyped(current, kept);
      kept = null;
      if (current) { onPaneShown(); } else { onPaneHidden(); }
    } else if (id === "test-result") {
      afterTest();
    }
  }

  function showToast(text) {
    const toast = byId("toast");
    if (!toast) return;
    toast.textContent = text;
    toast.hidden = false;
    window.clearTimeout(showToast.timer);
    showToast.timer = window.setTimeout(() => { toast.hidden = true; }, 8000);
  }

  function onResponseError(event) {
    const status = event.detail.xhr ? event.detail.xhr.status : 0;
    showToast(`segbridge answered ${status}: the action did not complete. Try again; if it ` +
      "keeps failing, see the server log.");
  }

  document.addEventListener("htmx:responseError", onResponseError);
  document.addEventListener("htmx:sendError", () => {
    showToast("segbridge could not be reached. Check that the server is running, then try again.");
  });
  document.addEventListener("input", markDirty);
  document.addEventListener("change", markDirty);
  document.addEventListener("click", onClick);
  document.addEventListener("keydown", onKeydown);
  document.addEventListener("htmx:beforeRequest", onBeforeRequest);
  document.addEventListener("htmx:beforeSwap", onBeforeSwap);
  document.addEventListener("htmx:afterSettle", onAfterSettle);
  setupMenus();
  if (pane()) onPaneShown();
})();
