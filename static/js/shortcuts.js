/* The inbox's keyboard shortcuts (the help dialog, "?", lists them). Every one
 * presses or focuses a control that is on the page anyway (marked data-shortcut),
 * so each action stays reachable without the keyboard. None fires while typing in
 * a field or with Ctrl, Alt or Meta held.
 */
(function () {
  "use strict";

  function rowLinks() {
    return Array.from(document.querySelectorAll("#conversation-list .conv-row .row-link"));
  }

  function currentRow(links) {
    const focused = links.indexOf(document.activeElement);
    if (focused >= 0) return focused;
    // The open conversation's row; by its id too, for a list just swapped in by a live
    // refresh and not yet marked (inbox.js marks it when the swap settles).
    const open = document.getElementById("conversation-pane")?.dataset.conversation;
    return links.findIndex((link) => {
      const row = link.closest(".conv-row");
      return row.classList.contains("is-open") || (open && row.dataset.id === open);
    });
  }

  function move(step) {
    const links = rowLinks();
    if (!links.length) return;
    const at = currentRow(links);
    const next = at < 0 ? 0 : Math.min(Math.max(at + step, 0), links.length - 1);
    links[next].focus();
  }

  function control(name) {
    return document.querySelector('[data-shortcut="' + name + '"]');
  }

  // Presses a button of the pane. A pane swapped in a moment ago is htmx's only when
  // the swap settles (20 ms, more on a busy page); pressed before that, the form would
  // go as a plain page load: process() takes it over now (once: it skips a done form).
  function press(name) {
    const button = control(name);
    if (!button) return;
    htmx.process(button.form || button);
    button.click();
  }

  function write(mode) {
    const radio = control(mode + "-mode");
    if (radio) radio.checked = true;
    const box = control(mode);
    if (box) { box.focus(); return true; }
    return false;
  }

  function select() {
    const links = rowLinks();
    const at = currentRow(links);
    if (at < 0) return;
    const box = links[at].closest(".conv-row").querySelector("input[name=ids]");
    if (box) { box.click(); }
  }

  // The snooze menu opens with the focus on its first choice.
  function snooze() {
    const summary = control("snooze");
    if (!summary) return;
    summary.parentElement.open = true;
    (summary.parentElement.querySelector("form button") || summary).focus();
  }

  const ACTIONS = {
    j: () => move(1), ArrowDown: () => move(1),
    k: () => move(-1), ArrowUp: () => move(-1),
    r: () => write("reply"),
    n: () => write("note"),
    e: () => press("close"),
    i: () => press("assign-me"),
    a: () => control("assign")?.focus(),
    t: () => control("tag")?.focus(),
    s: snooze,
    "/": () => document.getElementById("id_q")?.focus(),
    x: select,
    "?": () => document.getElementById("shortcuts-help")?.showModal(),
  };

  function typing(target) {
    return target.closest("input, textarea, select, [contenteditable], dialog[open]") !== null;
  }

  document.addEventListener("keydown", (event) => {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
    // Esc leaves a field (the shortcuts work again); the text stays.
    if (event.key === "Escape" && event.target.matches("input, textarea, select") && !event.target.closest("dialog")) {
      event.target.blur();
      return;
    }
    const action = ACTIONS[event.key];
    if (!action || typing(event.target)) return;
    // The arrows keep scrolling the thread (and the page) unless a row has focus.
    if (event.key.startsWith("Arrow") && !event.target.closest(".conv-row")) return;
    event.preventDefault();
    action();
  });

  document.addEventListener("click", (event) => {
    if (event.target.closest("[data-show-shortcuts]")) document.getElementById("shortcuts-help")?.showModal();
    if (event.target.closest("[data-close-dialog]")) event.target.closest("dialog")?.close();
  });
})();
