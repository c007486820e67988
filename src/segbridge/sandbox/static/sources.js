"use strict";
// Copy buttons for write keys (Settings > API keys).
document.querySelectorAll("button.copy").forEach((button) => {
  button.addEventListener("click", async () => {
    const input = document.getElementById(button.dataset.copy);
    const status = button.parentElement.querySelector(".copied");
    try {
      await navigator.clipboard.writeText(input.value);
      status.textContent = "Copied.";
    } catch (error) {
      input.focus();
      input.select();
      status.textContent = "Press Ctrl+C to copy.";
    }
  });
});

// Deleting a source asks first (the key stops working at once).
document.querySelectorAll("form[data-confirm]").forEach((form) => {
  form.addEventListener("submit", (event) => {
    if (!window.confirm(form.dataset.confirm)) event.preventDefault();
  });
});
