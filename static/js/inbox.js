/* Parley inbox: the little that htmx attributes do not cover.
 *  - the list refresh asks for as many rows as are shown ("load more" pages stay);
 *  - ticked rows stay ticked when the list refreshes itself, a bulk action's too;
 *  - the bulk bar counts the selection; "select all" ticks the rows shown;
 *  - the open conversation's row is marked, the thread scrolls to the newest message;
 *  - the pane's refreshes and actions keep the earlier messages the reader loaded,
 *    and "Show earlier messages" keeps the reader's place;
 *  - Ctrl/Cmd+Enter sends a reply; Enter in the bulk tag field adds the tag.
 */
(function () {
  "use strict";

  const LIST = "conversation-list";
  const PANE = "conversation-pane";

  function rows() {
    return document.querySelectorAll("#" + LIST + " .conv-row");
  }

  function checkedIds() {
    return Array.from(document.querySelectorAll("#" + LIST + " input[name=ids]:checked"), (box) => box.value);
  }

  function updateBulkBar() {
    const bar = document.getElementById("bulk-bar");
    if (!bar) return;
    const all = document.getElementById("scope-all");
    const boxes = document.querySelectorAll("#" + LIST + " input[name=ids]");
    const count = checkedIds().length;
    const total = all && all.checked ? all.dataset.total : null;
    const label = document.getElementById("bulk-count");
    bar.dataset.selected = total ? "all" : String(count);
    if (label) {
      label.textContent = total ? "All " + total + " matching selected"
        : count ? count + " selected"
        : "Select conversations for bulk actions";
    }
    boxes.forEach((box) => { box.closest(".conv-row").classList.toggle("is-selected", box.checked || !!total); });
    const page = document.getElementById("select-page");
    if (page) {
      page.checked = boxes.length > 0 && count === boxes.length;
      page.indeterminate = count > 0 && count < boxes.length;
    }
  }

  function markActiveRow() {
    const pane = document.getElementById(PANE);
    const open = pane ? pane.dataset.conversation : null;
    rows().forEach((row) => {
      const link = row.querySelector(".row-link");
      if (row.dataset.id === open) {
        row.classList.add("is-open");
        link && link.setAttribute("aria-current", "true");
      } else {
        row.classList.remove("is-open");
        link && link.removeAttribute("aria-current");
      }
    });
    document.querySelector(".inbox")?.classList.toggle("has-pane", !!open);
  }

  function scrollThread() {
    const thread = document.getElementById("thread");
    if (thread) thread.scrollTop = thread.scrollHeight;
  }

  // The pane reloads on conversationChanged unless the change came from the pane
  // itself (detail.pane); done here, not as an hx-trigger filter, because filters
  // need eval, which the Content-Security-Policy forbids.
  document.body.addEventListener("conversationChanged", (event) => {
    if (!(event.detail && event.detail.pane)) {
      htmx.trigger(document.body, "paneRefresh");
    }
  });

  // The list refresh keeps the rows that "load more" added (the server caps it).
  document.addEventListener("htmx:configRequest", (event) => {
    if (event.detail.elt.id === LIST) {
      event.detail.parameters.limit = String(Math.max(rows().length, 1));
    }
  });

  // The pane's own refreshes and actions ask for every entry shown since the oldest
  // one loaded ("since"), so "Show earlier messages" is not undone by a refresh.
  document.addEventListener("htmx:configRequest", (event) => {
    const target = event.detail.target;
    if (!target || target.id !== PANE || !event.detail.elt.closest("#" + PANE)) return;
    const oldest = document.querySelector("#thread [data-cursor]");
    if (oldest) event.detail.parameters.since = oldest.dataset.cursor;
    // The composer stays in the mode the agent chose (Reply or Note).
    if (document.querySelector("#" + PANE + " .mode-note:checked")) event.detail.parameters.composer = "note";
  });

  // Earlier entries go above the ones being read: keep those where they are.
  let threadBottom = null;
  document.addEventListener("htmx:beforeSwap", (event) => {
    if (!event.detail.target || event.detail.target.id !== "thread-earlier") return;
    const thread = document.getElementById("thread");
    threadBottom = thread ? thread.scrollHeight - thread.scrollTop : null;
  });
  document.addEventListener("htmx:afterSwap", (event) => {
    if (!event.detail.target || event.detail.target.id !== "thread-earlier") return;
    const thread = document.getElementById("thread");
    if (thread && threadBottom !== null) thread.scrollTop = thread.scrollHeight - threadBottom;
    threadBottom = null;
  });

  let keep = null;
  let keepAll = false;
  // A live refresh replaces the rows: the keyboard focus (a row's link or checkbox,
  // j/k) stays on the same conversation's row instead of falling to the page.
  let keepFocus = null;
  document.addEventListener("htmx:beforeSwap", (event) => {
    if (event.detail.target && event.detail.target.id === LIST) {
      keep = new Set(checkedIds());
      keepAll = !!document.getElementById("scope-all")?.checked;
      const active = document.activeElement;
      const row = active && active.closest ? active.closest("#" + LIST + " .conv-row") : null;
      keepFocus = row ? { id: row.dataset.id, checkbox: active.matches("input[name=ids]") } : null;
    }
  });
  document.addEventListener("htmx:afterSwap", () => {
    if (!keepFocus) return;
    const row = document.querySelector("#" + LIST + ' .conv-row[data-id="' + CSS.escape(keepFocus.id) + '"]');
    const control = row && row.querySelector(keepFocus.checkbox ? "input[name=ids]" : ".row-link");
    if (control && document.activeElement !== control) control.focus({ preventScroll: true });
    keepFocus = null;
  });

  // A live refresh (the list asking for itself, not a tab or a filter) keeps the
  // agent's place: the first row in view stays where it was, even when rows came
  // or went above it; else the list keeps its scroll offset. At the top, it stays
  // at the top (new conversations show there).
  let keepPlace = null;
  document.addEventListener("htmx:beforeSwap", (event) => {
    const list = event.detail.target;
    if (!list || list.id !== LIST || event.detail.elt !== list || !event.detail.shouldSwap) return;
    const top = Math.max(list.getBoundingClientRect().top, 0);
    const row = Array.from(rows()).find((r) => r.getBoundingClientRect().bottom > top);
    keepPlace = {
      scroll: list.scrollTop, atTop: !list.scrollTop && !window.scrollY,
      id: row && row.dataset.id, at: row ? row.getBoundingClientRect().top : 0,
    };
  });
  document.addEventListener("htmx:afterSwap", () => {
    const list = document.getElementById(LIST);
    if (!keepPlace || !list || !list.isConnected) return;
    const place = keepPlace;
    keepPlace = null;
    list.scrollTop = place.scroll;
    if (place.atTop) return;
    const row = place.id && list.querySelector('.conv-row[data-id="' + CSS.escape(place.id) + '"]');
    if (!row) return;
    list.scrollTop += row.getBoundingClientRect().top - place.at;
    const still = row.getBoundingClientRect().top - place.at; // a list that does not scroll (narrow screens)
    if (Math.abs(still) > 1) window.scrollBy(0, still);
  });

  document.addEventListener("htmx:afterSettle", () => {
    if (keep) {
      document.querySelectorAll("#" + LIST + " input[name=ids]").forEach((box) => {
        if (keep.has(box.value)) box.checked = true;
      });
      const all = document.getElementById("scope-all");
      if (all && keepAll) all.checked = true;
      keep = null;
    }
    updateBulkBar();
    markActiveRow();
  });

  // A refresh of the same conversation keeps the reader's place in the thread,
  // unless they were at the newest message; another conversation opens at the end.
  let threadPlace = null;
  document.addEventListener("htmx:beforeSwap", (event) => {
    const target = event.detail.target;
    if (!target || target.id !== PANE) return;
    const thread = document.getElementById("thread");
    threadPlace = thread ? {
      id: target.dataset.conversation,
      top: thread.scrollTop,
      atEnd: thread.scrollHeight - thread.scrollTop - thread.clientHeight < 40,
    } : null;
  });
  document.addEventListener("htmx:afterSwap", (event) => {
    if (!event.detail.target || event.detail.target.id !== PANE) return;
    const pane = document.getElementById(PANE);
    const thread = document.getElementById("thread");
    if (thread && threadPlace && !threadPlace.atEnd && pane && pane.dataset.conversation === threadPlace.id) {
      thread.scrollTop = threadPlace.top;
    } else {
      scrollThread();
    }
    threadPlace = null;
  });


  document.addEventListener("change", (event) => {
    const target = event.target;
    if (target.id === "select-page") {
      document.querySelectorAll("#" + LIST + " input[name=ids]").forEach((box) => { box.checked = target.checked; });
    }
    if (target.matches("input[name=ids], #select-page, #scope-all")) updateBulkBar();
  });

  document.addEventListener("keydown", (event) => {
    const target = event.target;
    if (event.key !== "Enter") return;
    if ((event.ctrlKey || event.metaKey) && target.matches("textarea[data-submit-on-ctrl-enter]")) {
      event.preventDefault();
      // A pane swapped in a moment ago: htmx takes its forms over only when the swap
      // settles (20 ms, more on a busy page); submitted before that, the reply would
      // go as a plain page load. process() does it now (once: it skips a done form).
      htmx.process(target.form);
      target.form.requestSubmit();
    } else if (target.matches("input[data-enter-clicks]")) {
      event.preventDefault();
      document.querySelector(target.dataset.enterClicks)?.click();
    }
  });

  // A request that failed outright (a 404 or 500, or no network) says so, briefly.
  let toastTimer = null;
  function toast(text) {
    const box = document.getElementById("toast");
    if (!box) return;
    box.textContent = text;
    box.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { box.hidden = true; }, 6000);
  }
  document.addEventListener("htmx:responseError", (event) => {
    const status = event.detail.xhr.status;
    toast(status === 404 ? "That conversation no longer exists. Reload the page to see the current list."
      : status === 403 ? "Your session has expired or the page is out of date. Reload the page and try again."
      : "Something went wrong on the server (" + status + "). Reload the page and try again.");
  });
  document.addEventListener("htmx:sendError", () => {
    toast("The server cannot be reached. Check your connection; the inbox retries by itself.");
  });

  document.addEventListener("click", (event) => {
    const dismiss = event.target.closest("[data-dismiss]");
    if (dismiss) dismiss.parentElement.remove();
  });

  document.addEventListener("DOMContentLoaded", () => {
    updateBulkBar();
    markActiveRow();
    scrollThread();
  });
})();
