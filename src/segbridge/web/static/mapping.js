"use strict";
// segbridge web UI: behaviour of the mapping pages (a file: the CSP forbids inline script).
// - a source kind of "field" offers the sample records' field paths (the datalist);
// - "Add a field" adds a row to an object's chosen fields (from its <template>);
// - "Use this YAML instead of the form" disables the form's fields and unlocks the YAML;
// - after a preview, each control is marked invalid exactly when its slot has an error.
(function () {
  function kindChanged(select) {
    const box = select.closest("[data-source], [data-row]");
    const input = box && box.querySelector("[data-value]");
    if (!input) { return; }
    if (select.value === "field") { input.setAttribute("list", "record-fields"); }
    else { input.removeAttribute("list"); }
    input.classList.toggle("is-code", select.value === "expression");
  }

  function addRow(button) {
    const prefix = button.getAttribute("data-add-row");
    const rows = document.querySelector('[data-rows="' + prefix + '"]');
    const template = document.getElementById(prefix + "-row-template");
    if (!rows || !template) { return; }
    const index = rows.querySelectorAll("[data-row]").length;
    const holder = document.createElement("div");
    holder.innerHTML = template.innerHTML.split("__i__").join(String(index))
      .split("__n__").join(String(index + 1));
    const row = holder.firstElementChild;
    rows.appendChild(row);
    const first = row.querySelector("input");
    if (first) { first.focus(); }
  }

  function yamlMode(box) {
    const fields = document.getElementById("mapping-fields");
    const text = document.querySelector("[data-yaml]");
    if (fields) { fields.disabled = box.checked; }
    if (text) {
      text.readOnly = !box.checked;
      if (box.checked) { text.focus(); }
    }
  }

  function markInvalid() {
    document.querySelectorAll("#mapping-form [data-error]").forEach(function (control) {
      const error = document.getElementById(control.getAttribute("data-error"));
      if (!error) { return; }
      if (error.textContent.trim()) { control.setAttribute("aria-invalid", "true"); }
      else { control.removeAttribute("aria-invalid"); }
    });
  }

  document.addEventListener("change", function (event) {
    const target = event.target;
    if (!(target instanceof Element)) { return; }
    if (target.matches("#mapping-form [data-kind]")) { kindChanged(target); }
    if (target.matches("#mapping-form [data-yaml-mode]")) { yamlMode(target); }
  });

  document.addEventListener("click", function (event) {
    const target = event.target;
    const button = target instanceof Element && target.closest("#mapping-form [data-add-row]");
    if (button) { addRow(button); }
  });

  document.addEventListener("htmx:afterSettle", function () {
    if (!document.getElementById("mapping-form")) { return; }
    markInvalid();
    // an answer to a request sent before the YAML box was ticked re-renders the box as the
    // form was then: the box's state follows the tick, whatever came back last
    const box = document.querySelector("#mapping-form [data-yaml-mode]");
    const text = document.querySelector("[data-yaml]");
    if (box && text && text.readOnly === box.checked) {
      text.readOnly = !box.checked;
      const fields = document.getElementById("mapping-fields");
      if (fields) { fields.disabled = box.checked; }
    }
  });
})();
