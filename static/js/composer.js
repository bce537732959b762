/* The composer's suggestion list (a listbox under the text box):
 *  - "/" at the start of the reply or note box searches the saved replies as you
 *    type; the chosen one is inserted with its placeholders filled by the server;
 *  - "@" followed by letters in the note box suggests agents (username or first name).
 * Arrows move, Enter or Tab picks, Escape closes; a click picks too.
 */
(function () {
  "use strict";

  let box = null;      // the textarea the list belongs to
  let list = null;     // the <ul role="listbox">
  let items = [];      // [{label, detail, pick()}]
  let active = -1;
  let seq = 0;

  function close() {
    if (list) list.remove();
    if (box) {
      box.removeAttribute("aria-activedescendant");
      box.removeAttribute("aria-controls");
    }
    list = null; items = []; active = -1;
  }

  function highlight(index) {
    active = index;
    if (!list) return;
    Array.from(list.children).forEach((li, i) => li.setAttribute("aria-selected", String(i === index)));
    const li = list.children[index];
    if (li) { box.setAttribute("aria-activedescendant", li.id); li.scrollIntoView({ block: "nearest" }); }
  }

  function show(textarea, entries, emptyText, label) {
    close();
    box = textarea;
    items = entries;
    list = document.createElement("ul");
    list.id = textarea.id + "-suggestions";
    list.className = "suggestions";
    list.setAttribute("role", "listbox");
    list.setAttribute("aria-label", label);
    entries.forEach((entry, i) => {
      const li = document.createElement("li");
      li.id = list.id + "-" + i;
      li.setAttribute("role", "option");
      li.setAttribute("aria-selected", "false");
      const title = document.createElement("strong");
      title.textContent = entry.label;
      li.append(title);
      if (entry.detail) {
        const detail = document.createElement("span");
        detail.className = "suggestion-detail";
        detail.textContent = entry.detail;
        li.append(detail);
      }
      li.addEventListener("mousedown", (event) => { event.preventDefault(); entry.pick(); });
      list.append(li);
    });
    if (!entries.length) {
      const li = document.createElement("li");
      li.className = "suggestion-empty";
      li.textContent = emptyText;
      list.append(li);
    }
    textarea.setAttribute("aria-controls", list.id);
    textarea.setAttribute("aria-autocomplete", "list");
    textarea.insertAdjacentElement("afterend", list);
    if (entries.length) highlight(0);
  }

  function insertReply(textarea, id) {
    fetch(textarea.dataset.fillUrl + id + "/", { headers: { Accept: "application/json" } })
      .then((response) => (response.ok ? response.json() : Promise.reject(response)))
      .then((data) => {
        textarea.value = data.text;
        close();
        textarea.focus();
        textarea.setSelectionRange(data.text.length, data.text.length);
      })
      .catch(close);
  }

  function searchReplies(textarea, query) {
    const mine = ++seq;
    fetch(textarea.dataset.savedReplies + "?q=" + encodeURIComponent(query), { headers: { Accept: "application/json" } })
      .then((response) => (response.ok ? response.json() : Promise.reject(response)))
      .then((data) => {
        if (mine !== seq || document.activeElement !== textarea) return;
        show(textarea, data.results.map((r) => ({
          label: r.title, detail: r.preview, pick: () => insertReply(textarea, r.id),
        })), "No saved reply matches “" + query + "”.", "Saved replies");
      })
      .catch(close);
  }

  function agents(textarea) {
    const source = document.getElementById(textarea.dataset.mentionAgents || "");
    return source ? JSON.parse(source.textContent) : [];
  }

  function suggestAgents(textarea, match) {
    const word = match[1].toLowerCase();
    const found = agents(textarea).filter((a) => a.username.toLowerCase().startsWith(word)
      || a.name.toLowerCase().split(" ").some((part) => part.startsWith(word))).slice(0, 8);
    if (!found.length) { close(); return; }
    const end = textarea.selectionStart;
    const start = end - match[1].length;
    show(textarea, found.map((a) => ({
      label: "@" + a.username, detail: a.name,
      pick: () => {
        const before = textarea.value.slice(0, start);
        textarea.value = before + a.username + " " + textarea.value.slice(end);
        const caret = before.length + a.username.length + 1;
        textarea.setSelectionRange(caret, caret);
        close();
        textarea.focus();
      },
    })), "", "Agents to mention");
  }

  document.addEventListener("input", (event) => {
    const textarea = event.target;
    if (!textarea.matches || !textarea.matches("textarea[data-saved-replies]")) return;
    const command = /^\/([^\n]*)$/.exec(textarea.value);
    if (command) { searchReplies(textarea, command[1].trim()); return; }
    const mention = textarea.dataset.mentionAgents
      && /(?:^|[^\w@])@(\w*)$/.exec(textarea.value.slice(0, textarea.selectionStart));
    if (mention) { suggestAgents(textarea, mention); return; }
    close();
  });

  document.addEventListener("keydown", (event) => {
    if (!list || event.target !== box) return;
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      if (!items.length) return;
      event.preventDefault();
      const step = event.key === "ArrowDown" ? 1 : -1;
      highlight((active + step + items.length) % items.length);
    } else if ((event.key === "Enter" || event.key === "Tab") && !event.ctrlKey && !event.metaKey && !event.shiftKey && active >= 0) {
      event.preventDefault();
      event.stopPropagation();
      items[active].pick();
    } else if (event.key === "Escape") {
      event.preventDefault();
      event.stopPropagation();
      close();
    }
  }, true);

  document.addEventListener("focusout", (event) => {
    if (event.target === box) setTimeout(() => { if (document.activeElement !== box) close(); }, 150);
  });
  document.addEventListener("htmx:beforeSwap", close);
})();
