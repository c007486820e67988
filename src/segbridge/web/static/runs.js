"use strict";
// segbridge web UI: behaviour of the runs pages (a file: the CSP forbids inline script).
// The errors form: "Select all" chooses every record error; editing a record's data chooses
// that record (its edit is sent with Retry). Delegated on the document, so it works after
// htmx swaps in a new list. Without script the form still works: choose each checkbox.
(function () {
  function picks(form) { return Array.from(form.querySelectorAll("input.error-pick")); }

  function syncSelectAll(form) {
    const all = form.querySelector("#select-all-errors");
    if (!all) return;
    const boxes = picks(form);
    const checked = boxes.filter((box) => box.checked).length;
    all.checked = boxes.length > 0 && checked === boxes.length;
    all.indeterminate = checked > 0 && checked < boxes.length;
  }

  document.addEventListener("change", (event) => {
    const target = event.target;
    const form = target.closest && target.closest("#errors-form");
    if (!form) return;
    if (target.id === "select-all-errors") {
      picks(form).forEach((box) => { box.checked = target.checked; });
    }
    syncSelectAll(form);
  });

  document.addEventListener("input", (event) => {
    const target = event.target;
    if (!target.matches || !target.matches("textarea.record-data[data-pick]")) return;
    const box = document.getElementById(target.dataset.pick);
    if (box && !box.checked) {
      box.checked = true;
      syncSelectAll(box.form);
    }
  });

  function setup() {
    const form = document.getElementById("errors-form");
    if (form) syncSelectAll(form);
    const problem = document.getElementById("run-problem");
    const invalid = document.querySelector("textarea.record-data[aria-invalid='true']");
    if (!invalid && problem) problem.focus();
  }

  document.addEventListener("DOMContentLoaded", setup);
  document.addEventListener("htmx:afterSettle", () => {
    const form = document.getElementById("errors-form");
    if (form) syncSelectAll(form);
  });
})();
