// The web chat (templates/connectors/chat.html): refreshes the thread when the
// server pushes "changed" (connectors/stream.py; opened once the visitor has
// written), polling every 2 s only while no stream is open; sends the form with fetch, so the page never reloads. Without JavaScript the form
// still posts and the page redirects back. No inline script: the CSP allows /static/ only.
(function () {
  const thread = document.getElementById("thread");
  const form = document.getElementById("chat-form");
  const errorBox = document.getElementById("send-error");
  const headers = { "X-Requested-With": "fetch" };
  let shown = thread.innerHTML;
  function show(html) {
    if (html === shown) return;
    const atBottom = thread.scrollHeight - thread.scrollTop - thread.clientHeight < 40;
    thread.innerHTML = shown = html;
    if (atBottom) thread.scrollTop = thread.scrollHeight;
  }
  async function refresh() {
    try {
      const response = await fetch(thread.dataset.threadUrl, { headers, cache: "no-store" });
      if (response.ok) show(await response.text());
    } catch (e) { /* offline for a moment: the next poll catches up */ }
  }
  let source = null;
  let live = false;
  function listen() {
    if (source || !window.EventSource) return;
    source = new EventSource(thread.dataset.streamUrl);
    source.addEventListener("hello", () => { live = true; thread.dataset.live = "on"; refresh(); });
    source.addEventListener("changed", refresh);
    source.onerror = () => {
      live = false;
      thread.dataset.live = "off";
      if (source.readyState === EventSource.CLOSED) { source = null; }  // the poll takes over
    };
  }
  if (thread.dataset.hasContact !== undefined) listen();
  setInterval(() => { if (!live) refresh(); }, 2000);
  thread.scrollTop = thread.scrollHeight;
  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    const button = form.querySelector("button");
    button.disabled = true;
    try {
      const response = await fetch(form.action, { method: "POST", body: new FormData(form), headers });
      const html = await response.text();
      if (response.ok) {
        errorBox.innerHTML = "";
        form.elements.text.value = "";
        show(html);
        listen();
        thread.scrollTop = thread.scrollHeight;
      } else if (response.status === 422 || response.status === 429 || response.status === 403) {
        // a refusal with its sentence (invalid, too fast, identity not verified)
        errorBox.innerHTML = html;
      } else {
        errorBox.innerHTML = '<p class="error">The message could not be sent; please try again.</p>';
      }
    } catch (e) {
      errorBox.innerHTML = '<p class="error">The message could not be sent; please try again.</p>';
    } finally {
      button.disabled = false;
    }
  });
  // The satisfaction survey's rating buttons (in the thread, so re-rendered with it).
  thread.addEventListener("submit", async function (event) {
    if (!event.target.matches("form.survey")) return;
    event.preventDefault();
    const body = new FormData(event.target, event.submitter);
    event.target.querySelectorAll("button").forEach((b) => { b.disabled = true; });
    try {
      const response = await fetch(event.target.action, { method: "POST", body, headers });
      if (response.ok) { errorBox.innerHTML = ""; show(await response.text()); listen(); }
      else { errorBox.innerHTML = '<p class="error">The rating could not be sent; please try again.</p>'; refresh(); }
    } catch (e) {
      errorBox.innerHTML = '<p class="error">The rating could not be sent; please try again.</p>';
      refresh();
    }
  });
  form.elements.text.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); form.requestSubmit(); }
  });
})();
