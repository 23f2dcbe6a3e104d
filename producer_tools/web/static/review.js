// ticketsort review page: keyboard-first, the terminal tool's keys.
// Answers are kept in localStorage until the server confirms them, and re-sent on the next
// load (the server records an answer once per lease), so closing the tab loses nothing.
"use strict";
(function () {
  const PENDING = "ticketsort.pending-answers";
  const $ = (id) => document.getElementById(id);
  let current = null;
  let categories = [];
  let mode = "loading"; // ticket | category | empty | stopped | name | loading
  let busy = false;
  let leaseTimer = null;
  let leaseLeft = 0;

  function pending() {
    try { return JSON.parse(localStorage.getItem(PENDING) || "[]"); } catch (e) { return []; }
  }
  function savePending(list) { localStorage.setItem(PENDING, JSON.stringify(list)); }
  function addPending(item) { savePending(pending().filter((x) => x.lease_id !== item.lease_id).concat([item])); }
  function dropPending(leaseId) { savePending(pending().filter((x) => x.lease_id !== leaseId)); }

  function status(text, kind) {
    const el = $("status");
    el.textContent = text || "";
    el.className = "status" + (kind ? " " + kind : "");
  }
  function setProgress(p) {
    if (!p) return;
    $("answered").textContent = String(p.answered);
    $("remaining").textContent = String(p.remaining);
  }
  function show(which) {
    for (const id of ["ticket", "empty", "stopped"]) $(id).hidden = id !== which;
  }
  function age(seconds) {
    if (seconds < 90) return seconds + " s ago";
    if (seconds < 5400) return Math.round(seconds / 60) + " min ago";
    if (seconds < 172800) return Math.round(seconds / 3600) + " h ago";
    return Math.round(seconds / 86400) + " days ago";
  }
  function reasonText(t) {
    switch (t.reason) {
      case "novel": return "unlike what the model was trained on";
      case "audit": return "random audit of a confident ticket";
      case "requeued": return "skipped before (" + t.attempts + "×), low confidence";
      default: return "low confidence: " + (t.confidence * 100).toFixed(1) + "% < threshold " + (t.threshold * 100).toFixed(1) + "%";
    }
  }
  function item(text, key, onClick, extra) {
    const li = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    const kbd = document.createElement("kbd");
    kbd.textContent = key;
    button.appendChild(kbd);
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = text;
    button.appendChild(name);
    if (extra) button.appendChild(extra);
    button.addEventListener("click", onClick);
    li.appendChild(button);
    return li;
  }
  function tickLease() {
    if (leaseTimer) clearInterval(leaseTimer);
    const el = $("lease");
    const draw = () => {
      const m = Math.floor(leaseLeft / 60), s = leaseLeft % 60;
      el.textContent = "held for you " + m + ":" + String(s).padStart(2, "0");
      el.className = leaseLeft < 60 ? "warn" : "";
      leaseLeft = Math.max(0, leaseLeft - 1);
    };
    draw();
    leaseTimer = setInterval(draw, 1000);
  }

  function render(t) {
    current = t;
    mode = "ticket";
    show("ticket");
    $("reason").textContent = reasonText(t);
    $("reason").dataset.reason = t.reason;
    $("meta-channel").textContent = t.channel;
    $("meta-language").textContent = t.language || "language ?";
    $("meta-age").textContent = age(t.age_s);
    $("meta-id").textContent = t.id;
    $("subject").textContent = t.subject || "(no subject)";
    $("text").textContent = t.text;
    $("original").textContent = (t.subject ? t.subject + "\n\n" : "") + t.original;
    $("original-box").open = false;
    const sugg = $("suggestions");
    sugg.replaceChildren();
    t.suggestions.slice(0, 9).forEach((s, i) => {
      const bar = document.createElement("span");
      bar.className = "score";
      bar.textContent = (s.score * 100).toFixed(1) + "%";
      bar.style.setProperty("--w", String(Math.round(s.score * 100)));
      sugg.appendChild(item(s.category, String(i + 1), () => answer("label", s.category), bar));
    });
    drawCategories("");
    $("filter").hidden = true;
    $("filter").value = "";
    leaseLeft = t.lease_left_s;
    tickLease();
  }
  function drawCategories(filter) {
    const list = $("categories");
    list.replaceChildren();
    const f = filter.trim().toLowerCase();
    categories.forEach((c, i) => {
      const n = String(i + 1);
      if (f && !c.toLowerCase().includes(f) && !n.startsWith(f)) return;
      list.appendChild(item(c, n, () => answer("label", c)));
    });
  }
  function pickFromFilter() {
    const value = $("filter").value.trim();
    if (/^\d+$/.test(value)) {
      const n = parseInt(value, 10);
      if (n >= 1 && n <= categories.length) return answer("label", categories[n - 1]);
      return status("no category " + value, "error");
    }
    const first = $("categories").querySelector(".name");
    if (first) return answer("label", first.textContent);
    status("no category matches " + JSON.stringify(value), "error");
  }
  function categoryMode(on) {
    mode = on ? "category" : "ticket";
    $("filter").hidden = !on;
    if (on) { $("filter").value = ""; drawCategories(""); $("filter").focus(); }
    else { $("filter").blur(); drawCategories(""); }
  }

  async function post(url, body) {
    const response = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
      credentials: "same-origin",
      keepalive: true, // the request outlives a closed tab
    });
    if (response.status === 401) { window.location.href = "/login"; throw new Error("signed out"); }
    return response.json();
  }

  async function flushPending() {
    for (const a of pending()) {
      try {
        const r = await post("/api/answer", a);
        dropPending(a.lease_id);
        if (r.ok) status("an answer from before the reload was saved: " + r.message, "ok");
        else status(r.message || r.error, "error");
      } catch (e) {
        status("could not reach the server; your answer is kept in this browser", "error");
        return false;
      }
    }
    return true;
  }

  async function answer(action, label) {
    if (busy || !current) return;
    busy = true;
    const a = { lease_id: current.lease_id, action: action, label: label || null };
    addPending(a);
    try {
      const r = await post("/api/answer", a);
      dropPending(a.lease_id);
      setProgress(r.progress);
      if (r.ok) status(action === "skip" ? "skipped " + current.id : current.id + " → " + label, "ok");
      else status(r.message || r.error, "error");
      current = null;
      busy = false;
      loadNext();
    } catch (e) {
      busy = false;
      status("not saved yet (server unreachable): kept in this browser, retrying…", "error");
      setTimeout(() => { flushPending().then((ok) => { if (ok) { current = null; loadNext(); } }); }, 2000);
    }
  }

  async function stop() {
    if (!current) { mode = "stopped"; show("stopped"); return; }
    try { await post("/api/answer", { lease_id: current.lease_id, action: "release" }); } catch (e) { /* expires */ }
    current = null;
    mode = "stopped";
    if (leaseTimer) clearInterval(leaseTimer);
    $("lease").textContent = "";
    show("stopped");
  }

  let loading = false;
  // First ask without waiting (so an empty queue shows at once), then long-poll.
  async function loadNext(wait) {
    if (loading || mode === "stopped") return;
    loading = true;
    try {
      const response = await fetch("/api/next?wait=" + (wait || 0), { credentials: "same-origin" });
      if (response.status === 401) { window.location.href = "/login"; return; }
      const data = await response.json();
      categories = data.categories || [];
      setProgress(data.progress);
      if (mode === "stopped") return;
      if (data.ticket) render(data.ticket);
      else {
        current = null; mode = "empty"; show("empty"); $("lease").textContent = "";
        if (leaseTimer) clearInterval(leaseTimer);
        setTimeout(() => loadNext(8), 100);
      }
    } catch (e) {
      status("server unreachable, retrying…", "error");
      setTimeout(() => loadNext(0), 2000);
    } finally {
      loading = false;
    }
  }

  document.addEventListener("keydown", (ev) => {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (mode === "name") return;
    if (mode === "category") {
      if (ev.key === "Escape") { ev.preventDefault(); categoryMode(false); }
      else if (ev.key === "Enter") { ev.preventDefault(); pickFromFilter(); }
      return;
    }
    if (ev.target instanceof HTMLInputElement) return;
    const key = ev.key.toLowerCase();
    if (mode === "stopped") {
      if (key === "r") { ev.preventDefault(); mode = "loading"; status(""); loadNext(); }
      return;
    }
    if (mode !== "ticket" || !current) return;
    if (/^[1-9]$/.test(key)) {
      const s = current.suggestions[parseInt(key, 10) - 1];
      ev.preventDefault();
      if (s) answer("label", s.category); else status("no suggestion " + key, "error");
    } else if (key === "c") { ev.preventDefault(); categoryMode(true); }
    else if (key === "s") { ev.preventDefault(); answer("skip"); }
    else if (key === "o") { ev.preventDefault(); $("original-box").open = !$("original-box").open; }
    else if (key === "q") { ev.preventDefault(); stop(); }
  });
  $("filter").addEventListener("input", () => drawCategories($("filter").value));
  $("skip").addEventListener("click", () => answer("skip"));
  $("quit").addEventListener("click", () => stop());

  async function start() {
    mode = "loading";
    await flushPending();
    loadNext();
  }
  const form = $("reviewer-form");
  if (!$("name-form").hidden) {
    mode = "name";
    $("reviewer-name").focus();
  } else {
    start();
  }
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const name = $("reviewer-name").value.trim();
    if (!name) return;
    const r = await post("/api/reviewer", { name: name });
    if (r.error) { status(r.error, "error"); return; }
    $("who").textContent = "reviewer: ";
    const b = document.createElement("b");
    b.textContent = r.reviewer;
    $("who").appendChild(b);
    $("name-form").hidden = true;
    $("review").hidden = false;
    start();
  });
})();
