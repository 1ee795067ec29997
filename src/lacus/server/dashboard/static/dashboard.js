// Lacus dashboard: live updates from GET /events (Server-Sent Events). No framework, no build.
// The token travels in the HttpOnly cookie the login set: EventSource cannot send a header.
"use strict";

(function () {
  // Every event type, from the server (<body data-event-types="...">): EventSource delivers
  // named events only to listeners of their name.
  const TYPES = (document.body.dataset.eventTypes || "").split(" ").filter(Boolean);
  const REFRESH_AFTER_MS = 1000;   // a burst of events refreshes a page once
  const MAX_ROWS = 500;            // rows kept on the events page

  function status(state, text) {
    const dot = document.getElementById("live-status");
    if (dot) {
      dot.className = "live " + state;
      dot.title = text;
    }
    const line = document.getElementById("stream-state");
    if (line) line.textContent = text;
  }

  // One stream per page; every named event type calls `handle` with the parsed data.
  function follow(url, handle) {
    const source = new EventSource(url, { withCredentials: true });
    source.onopen = () => status("on", "live: following events");
    source.onerror = () => status("off", "disconnected: reconnecting…");
    for (const type of TYPES) {
      source.addEventListener(type, (message) => {
        let data = {};
        try { data = JSON.parse(message.data); } catch (e) { return; }
        handle(type, data, message.lastEventId);
      });
    }
    // The token (the login's cookie) expired or was revoked: the server ends the stream with
    // this event; stop reconnecting and reload, which leads to the login page.
    source.addEventListener("auth.expired", () => {
      source.close();
      status("off", "session ended: log in again");
      window.location.reload();
    });
    window.addEventListener("pagehide", () => source.close());
    return source;
  }

  // Pages with <main data-live="/events?...">: fetch the page again after events and swap
  // its <main> (server-rendered HTML, so the page looks as if reloaded, without a reload).
  function liveMain(main) {
    let timer = null;
    let busy = false;
    const refresh = async () => {
      timer = null;
      if (busy) { timer = setTimeout(refresh, REFRESH_AFTER_MS); return; }
      busy = true;
      try {
        const answer = await fetch(window.location.href, { credentials: "same-origin" });
        if (answer.redirected && answer.url.includes("/login")) { window.location.reload(); return; }
        if (!answer.ok) return;
        const page = new DOMParser().parseFromString(await answer.text(), "text/html");
        const fresh = page.getElementById("main");
        if (fresh) {
          main.replaceChildren(...fresh.childNodes);
          loadFragments(main);
          main.dataset.refreshed = String(Date.now());
        }
      } finally {
        busy = false;
      }
    };
    follow(main.dataset.live, () => {
      if (timer === null) timer = setTimeout(refresh, REFRESH_AFTER_MS);
    });
  }

  // <div data-fragment="URL">: replaced by the HTML fragment at URL (slow aggregates are
  // loaded after the page is shown).
  function loadFragments(root) {
    for (const box of root.querySelectorAll("[data-fragment]")) {
      fetch(box.dataset.fragment, { credentials: "same-origin" })
        .then((answer) => (answer.ok ? answer.text() : Promise.reject(answer.status)))
        .then((html) => {
          const part = new DOMParser().parseFromString(html, "text/html");
          box.replaceChildren(...part.body.childNodes);
        })
        .catch((code) => { box.textContent = "could not load (" + code + ")"; });
    }
  }

  function cell(row, text, className) {
    const td = row.insertCell();
    if (className) td.className = className;
    if (text instanceof Node) td.appendChild(text); else td.textContent = text;
    return td;
  }

  function didLink(scope, name) {
    const a = document.createElement("a");
    a.href = "/dashboard/dids/" + encodeURIComponent(scope) + "/" + encodeURIComponent(name);
    a.textContent = scope + ":" + name;
    return a;
  }

  function details(data) {
    const rest = {};
    for (const [key, value] of Object.entries(data)) {
      if (!["id", "type", "scope", "name", "created_at"].includes(key)) rest[key] = value;
    }
    const text = JSON.stringify(rest);
    return text.length <= 300 ? text : text.slice(0, 299) + "…";
  }

  // The events page: <table id="event-log" data-stream="/events?after=N">, newest first.
  function eventLog(table) {
    const body = table.tBodies[0];
    follow(table.dataset.stream, (type, data, id) => {
      if (body.querySelector('tr[data-id="' + CSS.escape(String(id)) + '"]')) return;
      const row = body.insertRow(0);
      row.dataset.id = String(id);
      row.className = "fresh";
      cell(row, String(id), "num");
      cell(row, String(data.created_at || "").replace("T", " ").replace(/\.\d+Z$/, "Z"));
      const badge = document.createElement("span");
      badge.className = "badge type";
      badge.textContent = type;
      cell(row, badge);
      cell(row, data.scope && data.name ? didLink(data.scope, data.name) : "");
      const code = document.createElement("code");
      code.textContent = details(data);
      cell(row, code);
      while (body.rows.length > MAX_ROWS) body.deleteRow(body.rows.length - 1);
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    const main = document.getElementById("main");
    if (main) loadFragments(main);
    if (main && main.dataset.live) liveMain(main);
    const log = document.getElementById("event-log");
    if (log && log.dataset.stream) eventLog(log);
  });
})();
