// hive.js: the dashboard's live behaviour. Server-sent patches are morphed into the page in
// place (focus, half-typed text and open details survive); forms post with a spinner in the
// button and a toast with the result; countdowns tick; the journal viewer follows its stream.
// Agent-written text reaches the page only through the server's escaping templates or
// through textContent, never through string-built HTML.
(function () {
  "use strict";

  const $ = (sel, root) => (root || document).querySelector(sel);
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));
  const meta = (name) => {
    const m = document.querySelector('meta[name="' + name + '"]');
    return m ? m.content : "";
  };
  const CSRF = meta("csrf-token");
  const TOPIC = meta("hive-topic") || "index";
  const skew = (parseFloat(meta("server-time")) || Date.now() / 1000) - Date.now() / 1000;
  const now = () => Date.now() / 1000 + skew;

  // toasts ------------------------------------------------------------------------------
  function toast(text, ok) {
    const box = $("#toasts");
    if (!box) return;
    const t = document.createElement("div");
    t.className = "toast " + (ok ? "ok" : "err");
    t.setAttribute("role", ok ? "status" : "alert");
    t.textContent = (ok ? "◆ " : "✗ ") + text;
    box.appendChild(t);
    setTimeout(() => t.classList.add("fade"), ok ? 4000 : 7000);
    setTimeout(() => t.remove(), ok ? 4600 : 7600);
  }

  // morphing server HTML into the page --------------------------------------------------
  function parse(html) {
    const t = document.createElement("template");
    t.innerHTML = html; // our own templates' output, escaped on the server
    return t.content;
  }
  const isField = (el) => el.nodeType === 1 && /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName);
  const KEEP_ATTRS = new Set(["value", "checked", "open"]);

  function syncAttrs(a, b) {
    for (const at of Array.from(a.attributes)) {
      if (!b.hasAttribute(at.name) && !KEEP_ATTRS.has(at.name)) a.removeAttribute(at.name);
    }
    for (const at of Array.from(b.attributes)) {
      if (KEEP_ATTRS.has(at.name) && a.hasAttribute(at.name)) continue;
      if (a.getAttribute(at.name) !== at.value) a.setAttribute(at.name, at.value);
    }
  }

  function morph(a, b) {
    if (a.nodeType !== b.nodeType || a.nodeName !== b.nodeName) {
      a.replaceWith(b);
      return;
    }
    if (a.nodeType !== 1) {
      if (a.nodeValue !== b.nodeValue) a.nodeValue = b.nodeValue;
      return;
    }
    if (a.tagName === "BUTTON" && (a.classList.contains("busy") || a.classList.contains("armed"))) {
      return; // a click in flight or waiting for its confirmation
    }
    syncAttrs(a, b);
    if (isField(a)) return; // what the operator typed or chose stays
    morphChildren(a, b);
  }

  function morphChildren(a, b) {
    const kids = Array.from(b.childNodes);
    let i = 0;
    for (const nb of kids) {
      const na = a.childNodes[i];
      if (!na) {
        a.appendChild(nb);
      } else if (nb.nodeType === 1 && nb.id) {
        if (na.nodeType === 1 && na.id === nb.id) {
          morph(na, nb);
        } else {
          const match = Array.from(a.children).find((c) => c.id === nb.id);
          if (match) {
            a.insertBefore(match, na);
            morph(match, nb);
          } else {
            a.insertBefore(nb, na);
          }
        }
      } else {
        morph(na, nb);
      }
      i++;
    }
    while (a.childNodes.length > kids.length) a.lastChild.remove();
  }

  function applyKeyed(box, order, html) {
    for (const n of Array.from(box.childNodes)) if (n.nodeType !== 1) n.remove();
    const existing = new Map(Array.from(box.children).map((el) => [el.id, el]));
    const wanted = new Set(order);
    for (const [id, el] of existing) if (!wanted.has(id)) el.remove();
    let prev = null;
    for (const key of order) {
      let el = existing.get(key);
      if (Object.prototype.hasOwnProperty.call(html, key)) {
        const fresh = parse(html[key]).firstElementChild;
        if (!fresh) continue;
        if (el) {
          morph(el, fresh);
          el = document.getElementById(key) || fresh;
        } else {
          el = fresh;
        }
      }
      if (!el) continue;
      const want = prev ? prev.nextElementSibling : box.firstElementChild;
      if (el !== want) box.insertBefore(el, want);
      prev = el;
    }
  }

  // live updates ------------------------------------------------------------------------
  function setLive(status) {
    const el = $("#live");
    if (!el) return;
    el.dataset.state = status.live ? "live" : "offline";
    el.textContent = status.live ? "● live" : "✗ " + (status.error || "offline");
    el.title = status.live ? "live updates" : status.error || "offline";
  }

  function applyPatch(p) {
    const active = document.activeElement;
    const range =
      active && typeof active.selectionStart === "number"
        ? [active.selectionStart, active.selectionEnd]
        : null;
    const inbox = $("#inbox");
    const stick = inbox && inbox.scrollTop + inbox.clientHeight >= inbox.scrollHeight - 8;
    for (const [name, s] of Object.entries(p.sections || {})) {
      const box = document.querySelector('[data-section="' + name + '"]');
      if (!box) continue;
      if (s.order) applyKeyed(box, s.order, s.html);
      else morphChildren(box, parse(s.html));
    }
    for (const [k, v] of Object.entries(p.counts || {})) {
      $$('[data-count="' + k + '"]').forEach((e) => (e.textContent = String(v)));
    }
    if (p.status) setLive(p.status);
    if (p.notify) notifyAll(p.notify);
    if (active && active !== document.activeElement && document.contains(active)) {
      active.focus({ preventScroll: true });
      if (range) {
        try {
          active.setSelectionRange(range[0], range[1]);
        } catch (e) {
          /* not a text field */
        }
      }
    }
    if (inbox && stick) inbox.scrollTop = inbox.scrollHeight;
    tick();
    markNotes();
    document.dispatchEvent(new CustomEvent("hive:patched"));
  }

  // a session that ended (signed out, revoked, idle) sends the tab to the sign-in page
  function signInAgain() {
    window.location.assign("/login");
  }

  async function checkSession() {
    try {
      const r = await fetch("/api/session", { credentials: "same-origin" });
      if (r.status === 401) signInAgain();
    } catch (e) {
      /* unreachable: the live indicator says so */
    }
  }

  function connect() {
    const es = new EventSource("/api/events?topic=" + encodeURIComponent(TOPIC));
    es.addEventListener("patch", (e) => applyPatch(JSON.parse(e.data)));
    es.onerror = () => {
      setLive({ live: false, error: "reconnecting to the dashboard" });
      checkSession();
    };
  }

  // forms: spinner, toast, ask once ------------------------------------------------------
  function arm(btn) {
    btn.dataset.label = btn.textContent;
    btn.textContent = btn.dataset.confirm;
    btn.classList.add("armed");
    btn._disarm = setTimeout(() => disarm(btn), 4000);
  }
  function disarm(btn) {
    if (!btn.classList.contains("armed")) return;
    clearTimeout(btn._disarm);
    btn.classList.remove("armed");
    btn.textContent = btn.dataset.label;
  }

  async function post(url, body, btn, form) {
    if (btn) {
      btn.classList.add("busy");
      btn.disabled = true;
    }
    try {
      const r = await fetch(url, {
        method: "POST",
        body: body,
        credentials: "same-origin",
        headers: { Accept: "application/json", "X-CSRF-Token": CSRF },
      });
      if (r.status === 401) {
        signInAgain();
        return null;
      }
      let data;
      try {
        data = await r.json();
      } catch (e) {
        data = { ok: false, message: "the dashboard answered " + r.status };
      }
      toast(data.message || (data.ok ? "done" : "refused"), !!data.ok);
      if (data.ok && form) form.reset();
      return data;
    } catch (e) {
      toast("the dashboard is unreachable: " + e.message, false);
      return null;
    } finally {
      if (btn) {
        btn.classList.remove("busy");
        btn.disabled = false;
      }
    }
  }

  function chatCommand(form, btn) {
    const text = form.elements.body.value.trim();
    if (!text.startsWith("/")) return false;
    const m = text.match(/^\/model(?:\s+(\S+))?\s*$/);
    if (!m) {
      toast("unknown command " + text.split(/\s/)[0] + ": try /model NAME", false);
      return true;
    }
    if (!m[1]) {
      fetch("/api/model?name=" + encodeURIComponent(form.dataset.chat), {
        headers: { Accept: "application/json" },
      })
        .then((r) => r.json())
        .then((d) => {
          toast(d.message, !!d.ok);
          if (d.ok) form.reset(); // the command is done: the box is free for the next one
        });
      return true;
    }
    post("/api/model", new URLSearchParams({ name: form.dataset.chat, model: m[1] }), btn, form);
    return true;
  }

  document.addEventListener("submit", (ev) => {
    const form = ev.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-post")) return;
    ev.preventDefault();
    const btn = ev.submitter || form.querySelector("button[type=submit]");
    if (btn && btn.dataset.confirm && !btn.classList.contains("armed")) {
      arm(btn);
      return;
    }
    if (btn) disarm(btn);
    if (form.dataset.chat && chatCommand(form, btn)) return;
    post(form.action, new URLSearchParams(new FormData(form)), btn, form);
  });

  document.addEventListener("keydown", (ev) => {
    const t = ev.target;
    if (ev.key === "Enter" && !ev.shiftKey && t instanceof HTMLTextAreaElement) {
      const form = t.form;
      if (form && form.hasAttribute("data-post")) {
        ev.preventDefault();
        form.requestSubmit();
      }
    }
  });

  // clocks --------------------------------------------------------------------------------
  const pad = (n) => String(n).padStart(2, "0");
  function ago(s) {
    if (s < 5) return "just now";
    if (s < 60) return Math.floor(s) + "s ago";
    if (s < 3600) return Math.floor(s / 60) + "m ago";
    if (s < 86400) return Math.floor(s / 3600) + "h ago";
    return Math.floor(s / 86400) + "d ago";
  }
  function clock(s) {
    s = Math.max(0, Math.floor(s));
    const h = Math.floor(s / 3600);
    const body = pad(Math.floor((s % 3600) / 60)) + ":" + pad(s % 60);
    return h ? h + ":" + body : body;
  }
  function tick() {
    const t = now();
    for (const el of $$("[data-deadline]")) {
      const left = parseFloat(el.dataset.deadline) - t;
      el.textContent = "◷ " + clock(left);
      el.classList.toggle("soon", left < 60);
      el.classList.toggle("expired", left <= 0);
    }
    for (const el of $$("time[data-ts]")) {
      const ts = parseFloat(el.dataset.ts);
      if (!ts) continue;
      el.textContent = ago(t - ts);
      el.title = new Date(ts * 1000).toLocaleString();
    }
    for (const el of $$("time[data-since]")) {
      el.textContent = clock(t - parseFloat(el.dataset.since));
    }
  }

  // notifications -------------------------------------------------------------------------
  const SEEN = "hive-seen-note";
  const seen = () => parseInt(localStorage.getItem(SEEN) || "0", 10);
  function markNotes() {
    let unseen = 0;
    for (const el of $$("[data-note]")) {
      const fresh = parseInt(el.dataset.note, 10) > seen();
      el.classList.toggle("unseen", fresh);
      if (fresh) unseen++;
    }
    // the title says what waits on the operator (live, from the header's count)
    const waitingEl = $('[data-count="waiting"]');
    const waiting = waitingEl ? parseInt(waitingEl.textContent, 10) || 0 : 0;
    document.title = document.title.replace(/^\([^)]*\) /, "");
    const parts = [];
    if (waiting) parts.push(waiting + " waiting");
    if (unseen) parts.push(unseen + " new");
    if (parts.length) document.title = "(" + parts.join(" · ") + ") " + document.title;
  }
  function notifyAll(list) {
    if (!("Notification" in window) || Notification.permission !== "granted") return;
    if (!document.hidden) return;
    for (const n of list) {
      new Notification("hyperhive · " + n.kind, { body: n.text, tag: "hive-note-" + n.id });
    }
  }
  function setupNotes() {
    const allow = $("#notify-allow");
    if (allow && "Notification" in window && Notification.permission === "default") {
      allow.hidden = false;
      allow.addEventListener("click", () =>
        Notification.requestPermission().then((p) => {
          allow.hidden = p !== "default";
          toast(p === "granted" ? "notifications on while this tab is hidden" : "notifications " + p, p === "granted");
        }),
      );
    }
    const mark = $("#notes-seen");
    if (mark) {
      mark.addEventListener("click", () => {
        const ids = $$("[data-note]").map((el) => parseInt(el.dataset.note, 10));
        if (ids.length) localStorage.setItem(SEEN, String(Math.max(seen(), ...ids)));
        markNotes();
      });
    }
    markNotes();
  }

  // the journal viewer --------------------------------------------------------------------
  function journalViewer() {
    const pre = $("#journal");
    if (!pre) return;
    const name = pre.dataset.agent;
    const status = $("#journal-status");
    const pauseBtn = $("#journal-pause");
    let paused = false;
    let held = [];
    const MAX = 2000;
    const stamp = (ts) => {
      if (!ts) return "--:--:--";
      const d = new Date(ts * 1000);
      return pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
    };
    function add(entries) {
      const bottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 8;
      for (const e of entries) {
        const line = document.createElement("div");
        line.className = "jl p" + e.prio;
        const ts = document.createElement("span");
        ts.className = "jts";
        ts.textContent = stamp(e.ts);
        const who = document.createElement("span");
        who.className = "jid";
        who.textContent = e.ident;
        const msg = document.createElement("span");
        msg.className = "jmsg";
        msg.textContent = e.msg;
        line.append(ts, " ", who, " ", msg);
        pre.appendChild(line);
      }
      while (pre.childElementCount > MAX) pre.firstElementChild.remove();
      if (bottom) pre.scrollTop = pre.scrollHeight;
    }
    pauseBtn.addEventListener("click", () => {
      paused = !paused;
      pauseBtn.textContent = paused ? "resume" : "pause";
      if (!paused) {
        add(held);
        held = [];
      }
    });
    fetch("/api/journal/" + encodeURIComponent(name) + "?lines=200", {
      headers: { Accept: "application/json" },
    })
      .then((r) => r.json())
      .then((d) => {
        if (!d.entries) {
          status.textContent = "✗ " + (d.message || "the journal cannot be read");
          return;
        }
        add(d.entries);
        const last = d.entries.length ? d.entries[d.entries.length - 1].cursor : "";
        const url =
          "/api/journal/" + encodeURIComponent(name) + "/stream" +
          (last ? "?after=" + encodeURIComponent(last) : "");
        const es = new EventSource(url);
        es.addEventListener("lines", (ev) => {
          const batch = JSON.parse(ev.data);
          if (paused) held.push(...batch);
          else add(batch);
        });
        es.onopen = () => {
          status.textContent = "● following";
          pre.dataset.following = "1";
        };
        es.onerror = () => (status.textContent = "◌ reconnecting");
      })
      .catch((e) => (status.textContent = "✗ " + e.message));
  }

  function start() {
    tick();
    setInterval(tick, 1000);
    setupNotes();
    journalViewer();
    const inbox = $("#inbox");
    if (inbox) inbox.scrollTop = inbox.scrollHeight;
    if (window.EventSource) connect();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
