/* Parley inbox, server push (inbox/stream.py): htmx's SSE extension holds the stream
 * (#live, sse-connect); this file decides what each small event refreshes.
 *  - "changed" {ids} or {all}: the list (rows, totals, and the tabs out of band) and,
 *    when it is among the ids, the open pane; a change arriving while the list is
 *    being fetched asks once more when that fetch is done, so none is lost;
 *  - "hello": the stream is open (again): the heartbeat (#poller) stands down; after
 *    a reconnect everything refreshes once (the server also replays by Last-Event-ID);
 *  - "presence": who else views or types in the open conversation (#pane-presence);
 *    this page says so too: "viewing" every few seconds, "typing" while typing,
 *    "idle" when the reply is sent.
 * If the stream cannot be opened, the heartbeat goes on as before.
 */
(function () {
  "use strict";

  const LIST = "conversation-list";
  const PANE = "conversation-pane";
  const VIEW_EVERY = 10000;
  const VIEWING_TTL = 25000;
  const TYPING_TTL = 6000;
  const TYPING_EVERY = 2500;

  let live = false;
  let opened = 0;

  function openConversation() {
    const pane = document.getElementById(PANE);
    return pane ? pane.dataset.conversation : null;
  }

  // A fragment refreshes on an event it listens to ("liveChanged", "paneRefresh"
  // from:body). While its request is in flight, and until the new fragment has
  // settled (its listener is not there before), an ask is remembered and sent once
  // it is in place: no change is lost. The request is known by its xhr (once the
  // fragment is swapped out, htmx reports the end of the request on a parent).
  function refresher(eventName, targetId) {
    const state = { busy: false, again: false, xhr: null, timer: null };
    function ask() {
      if (state.busy) { state.again = true; return; }
      htmx.trigger(document.body, eventName);
    }
    function done() {
      clearTimeout(state.timer);
      state.busy = false;
      state.xhr = null;
      state.timer = null;
      if (state.again) { state.again = false; ask(); }
    }
    const mine = (detail) => detail && detail.target && detail.target.id === targetId;
    document.addEventListener("htmx:beforeRequest", (event) => {
      if (event.defaultPrevented || !mine(event.detail)) return;
      clearTimeout(state.timer);
      state.busy = true;
      state.xhr = event.detail.xhr;
    });
    document.addEventListener("htmx:afterRequest", (event) => {
      if (!state.busy || event.detail.xhr !== state.xhr) return;
      // Swapped: wait for the new fragment to settle (at most 1 s); else go on.
      state.timer = setTimeout(done, event.detail.successful ? 1000 : 0);
    });
    ["htmx:sendError", "htmx:timeout", "htmx:sendAbort"].forEach((name) => {
      document.addEventListener(name, (event) => {
        if (state.busy && event.detail.xhr === state.xhr) done();
      });
    });
    document.addEventListener("htmx:afterSettle", (event) => {
      if (state.busy && state.timer && event.detail.elt && event.detail.elt.id === targetId) done();
    });
    return ask;
  }

  const refreshList = refresher("liveChanged", LIST);
  const refreshPane = refresher("paneRefresh", PANE);

  // While the stream is open, the heartbeat stands down.
  document.addEventListener("htmx:beforeRequest", (event) => {
    if (event.detail.elt.id === "poller" && live) event.preventDefault();
  });

  // --- presence ---------------------------------------------------------------------
  const others = new Map(); // agent id -> {name, conversation, viewingUntil, typingUntil}

  function csrfToken() {
    try { return JSON.parse(document.body.getAttribute("hx-headers"))["X-CSRFToken"]; } catch (e) { return ""; }
  }

  function say(state, conversation) {
    const id = conversation || openConversation();
    if (!id || !live) return;
    const body = new FormData();
    body.append("state", state);
    body.append("csrfmiddlewaretoken", csrfToken());
    fetch("/inbox/c/" + id + "/presence/", { method: "POST", body, headers: { "X-CSRFToken": csrfToken() }, keepalive: state === "left" })
      .catch(() => {});
  }

  function showPresence() {
    const box = document.getElementById("pane-presence");
    if (!box) return;
    const id = openConversation();
    const now = Date.now();
    const viewing = [];
    const typing = [];
    others.forEach((who, agent) => {
      if (who.viewingUntil < now) { others.delete(agent); return; }
      if (who.conversation !== id) return;
      (who.typingUntil > now ? typing : viewing).push(who.name);
    });
    // A closed conversation has no reply box: nobody is typing a reply there.
    if (!document.querySelector("#" + PANE + " textarea[name=text]")) viewing.push(...typing.splice(0));
    const parts = [];
    if (typing.length) parts.push(typing.join(", ") + (typing.length > 1 ? " are" : " is") + " typing a reply…");
    if (viewing.length) parts.push("Also viewing: " + viewing.join(", "));
    const text = parts.join(" · ");
    if (box.textContent !== text) box.textContent = text;
    box.hidden = !text;
  }

  function onPresence(data) {
    const conversation = String(data.conversation);
    const agent = String(data.agent);
    if (data.state === "left") {
      const who = others.get(agent);
      if (who && who.conversation === conversation) others.delete(agent);
    } else {
      const known = others.get(agent);
      const fresh = !known || known.conversation !== conversation;
      const now = Date.now();
      // Typing is viewing too; when the typing stops (or the reply is sent: "idle"),
      // the viewing stays.
      others.set(agent, {
        name: data.name,
        conversation,
        viewingUntil: now + VIEWING_TTL,
        typingUntil: data.state === "typing" ? now + TYPING_TTL : (fresh || data.state === "idle" ? 0 : known.typingUntil),
      });
      if (data.state === "typing") setTimeout(showPresence, TYPING_TTL + 100);
      // Someone just opened the conversation I am viewing: tell them at once.
      if (fresh && conversation === openConversation()) say("viewing");
    }
    showPresence();
  }

  let viewingTimer = null;
  let shownConversation = null;
  function paneChanged() {
    const id = openConversation();
    if (id === shownConversation) { showPresence(); return; }
    if (shownConversation) say("left", shownConversation);
    shownConversation = id;
    if (id) say("viewing");
    showPresence();
  }
  function beat() {
    if (document.visibilityState === "visible" && openConversation()) say("viewing");
    showPresence();
  }

  let lastTyping = 0;
  document.addEventListener("input", (event) => {
    if (!event.target.matches("#" + PANE + " textarea[name=text]")) return;
    const now = Date.now();
    if (now - lastTyping < TYPING_EVERY) return;
    lastTyping = now;
    say("typing");
  });

  // Sending the reply ends the typing at once (not when its announcement expires).
  document.addEventListener("htmx:beforeRequest", (event) => {
    if (event.defaultPrevented || !event.detail.elt.matches("#" + PANE + " .reply-form")) return;
    lastTyping = 0;
    say("idle");
  });

  // --- the stream -------------------------------------------------------------------
  const sources = new WeakSet();
  document.addEventListener("htmx:sseOpen", (event) => {
    const source = event.detail.source;
    if (!source || sources.has(source)) return;
    sources.add(source);
    ["hello", "changed", "presence"].forEach((name) => source.addEventListener(name, onMessage));
  });

  function onMessage(message) {
    let data = {};
    try { data = JSON.parse(message.data); } catch (e) { return; }
    if (message.type === "hello") {
      const again = opened > 0;
      opened += 1;
      live = true;
      document.body.dataset.live = "on";
      if (again) { refreshList(); refreshPane(); }
      paneChanged();
      if (!viewingTimer) viewingTimer = setInterval(beat, VIEW_EVERY);
    } else if (message.type === "changed") {
      refreshList();
      const open = openConversation();
      if (open && (data.all || (data.ids || []).map(String).includes(open))) refreshPane();
    } else if (message.type === "presence") {
      onPresence(data);
    }
  }

  document.addEventListener("htmx:sseError", () => {
    live = false;
    document.body.dataset.live = "off";
  });

  document.addEventListener("htmx:afterSwap", (event) => {
    const target = event.detail.target;
    if (target && (target.id === PANE || target.classList.contains("pane"))) paneChanged();
    else if (!document.getElementById(PANE)) paneChanged();
  });

  // A reply being typed survives a refresh that takes the reply box away (the agent
  // or someone else closed the conversation): it goes into the pane's #kept-draft,
  // and stays there through the refreshes that follow (the close's own echo).
  let typed = null;
  document.addEventListener("htmx:beforeSwap", (event) => {
    const target = event.detail.target;
    if (!target || target.id !== PANE) return;
    const box = target.querySelector("textarea[name=text]");
    const kept = target.querySelector("#kept-draft:not([hidden]) textarea");
    const text = [box, kept].map((area) => (area ? area.value : "")).find((value) => value.trim());
    typed = text ? { id: target.dataset.conversation, text } : null;
  });
  document.addEventListener("htmx:afterSwap", (event) => {
    const target = event.detail.target;
    if (!typed || !target || target.id !== PANE) return;
    const pane = document.getElementById(PANE);
    const kept = document.getElementById("kept-draft");
    if (pane && kept && pane.dataset.conversation === typed.id && !pane.querySelector("textarea[name=text]")) {
      const area = kept.querySelector("textarea");
      if (!area.value) area.value = typed.text;
      kept.hidden = false;
    }
    typed = null;
  });

  // A background refresh of the same conversation (a GET) keeps the pane's notices
  // (the outcome of the agent's last action): the echo of one's own change must not
  // wipe "Assigned to you." a moment after it appeared.
  let notices = null;
  document.addEventListener("htmx:beforeSwap", (event) => {
    const target = event.detail.target;
    notices = null;
    if (!target || target.id !== PANE || event.detail.requestConfig?.verb !== "get") return;
    const box = target.querySelector("#pane-notices");
    if (box && box.children.length) notices = { id: target.dataset.conversation, nodes: Array.from(box.children) };
  });
  document.addEventListener("htmx:afterSwap", (event) => {
    const target = event.detail.target;
    if (!notices || !target || target.id !== PANE) return;
    const pane = document.getElementById(PANE);
    const box = pane && pane.querySelector("#pane-notices");
    if (box && !box.children.length && pane.dataset.conversation === notices.id) box.append(...notices.nodes);
    notices = null;
  });

  // A refresh of the same conversation (a live one, or the answer to another action)
  // keeps what the agent is filling in: the open contact form, a changed field (a
  // tag being typed, an assignee picked, a snooze time), an open menu. Their
  // counterparts in the answer are marked hx-preserve, so htmx keeps the elements
  // as they are, the hidden values they were drawn with too: the server refuses
  // what changed meanwhile ("Changed a moment ago by …"). What made the request is
  // not kept (its answer replaces it). Kept boxes take the new placeholder ("Reply
  // to <new name>…").
  function changedField(field) {
    if (field.type === "hidden" || field.readOnly || field.name === "composer-mode") return false;
    if (field.type === "checkbox" || field.type === "radio") return field.checked !== field.defaultChecked;
    if (field.tagName === "SELECT") {
      const initial = Array.from(field.options).findLastIndex((option) => option.defaultSelected);
      return field.selectedIndex !== Math.max(initial, 0);
    }
    return field.value !== field.defaultValue;
  }

  function unsaved(pane, source) {
    const keep = [];
    const card = pane.querySelector("#contact-card");
    if (card && card.querySelector(".contact-form")) keep.push(card);
    pane.querySelectorAll("input, select, textarea").forEach((field) => {
      if (field.hasAttribute("hx-preserve") || !changedField(field)) return;
      const element = field.form && field.form.id ? field.form : field.closest("[id]");
      if (!element || element === pane || keep.some((kept) => kept.contains(element) || element.contains(kept))) return;
      keep.push(element);
    });
    return keep.filter((element) => !(source && element.contains(source)));
  }

  let placeholders = [];
  document.addEventListener("htmx:beforeSwap", (event) => {
    const target = event.detail.target;
    placeholders = [];
    if (!target || target.id !== PANE || !event.detail.shouldSwap) return;
    if (typeof event.detail.serverResponse !== "string") return;
    const answer = document.createElement("template");
    answer.innerHTML = event.detail.serverResponse;
    const next = answer.content.getElementById(PANE);
    if (!next || next.dataset.conversation !== target.dataset.conversation) return;
    const source = event.detail.elt;
    let marked = false;
    unsaved(target, source).forEach((element) => {
      const counterpart = answer.content.getElementById(element.id);
      if (counterpart) { counterpart.setAttribute("hx-preserve", ""); marked = true; }
    });
    target.querySelectorAll("details[open]").forEach((menu) => {
      const counterpart = menu.classList[0] && next.querySelector("details." + CSS.escape(menu.classList[0]));
      if (counterpart && !(source && menu.contains(source))) { counterpart.open = true; marked = true; }
    });
    placeholders = Array.from(next.querySelectorAll("[hx-preserve][placeholder]"), (box) => [box.id, box.placeholder]);
    if (marked) event.detail.serverResponse = answer.innerHTML;
  });
  document.addEventListener("htmx:afterSwap", (event) => {
    const target = event.detail.target;
    if (!target || target.id !== PANE) return;
    placeholders.forEach(([id, text]) => document.getElementById(id)?.setAttribute("placeholder", text));
    placeholders = [];
  });

  // The pane marked its conversation read: its row is no longer bold.
  document.body.addEventListener("conversationRead", (event) => {
    const row = document.querySelector("#" + LIST + ' .conv-row[data-id="' + String(event.detail.id) + '"]');
    if (!row) return;
    delete row.dataset.unread;
    row.querySelector(".unread-count")?.remove();
  });

  // The pane marked the notes mentioning the agent read: the Mentions count drops.
  document.body.addEventListener("mentionsRead", (event) => {
    const count = document.querySelector('[data-view-count="mentions"]');
    if (count && count.firstChild && event.detail.unread !== undefined) count.firstChild.nodeValue = event.detail.unread;
  });

  window.addEventListener("pagehide", () => { if (shownConversation) say("left", shownConversation); });
})();
