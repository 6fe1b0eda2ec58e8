// allim's operator console: plain JavaScript, no build step, served from the binary. Every
// number and every action goes through the same /v1 API a script would use, with the admin
// token the operator signs in with. The token lives in this tab's sessionStorage only (gone
// when the tab closes) and is sent in the Authorization header, never in a URL.
"use strict";

const TOKEN = "allim.token";
const state = { token: sessionStorage.getItem(TOKEN), open: false, timer: null,
  tz: localStorage.getItem("allim.tz") || "Asia/Seoul" };

// ---- small helpers ----

/** An element with attributes (on* are listeners) and children (strings become text). */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const main = () => document.getElementById("main");
function show(...nodes) { main().replaceChildren(...nodes.flat(Infinity).filter((n) => n !== null && n !== undefined && n !== false)); }

class ApiError extends Error {
  constructor(status, body) {
    super((body && (body.message || body.error)) || `HTTP ${status}`);
    this.status = status; this.field = body && body.field;
  }
}

async function api(path, options = {}) {
  const headers = { "accept": "application/json" };
  if (state.token) headers["authorization"] = "Bearer " + state.token;
  if (options.body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(path, { method: options.method || "GET", headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body) });
  const text = await res.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (_) { body = { message: text }; }
  if (res.status === 401) { signOut("Your session is not signed in (or the token was refused)."); throw new ApiError(401, body); }
  if (!res.ok) throw new ApiError(res.status, body);
  return body;
}

function fmt(t) {
  if (!t) return "";
  try {
    return new Intl.DateTimeFormat("sv-SE", { timeZone: state.tz, year: "numeric", month: "2-digit",
      day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" }).format(new Date(t));
  } catch (_) { return t; }
}

const badge = (s) => h("span", { class: "badge s-" + s }, s);
const err = (e) => h("p", { class: "error", role: "alert" }, e.field ? `${e.field}: ${e.message}` : e.message);
const table = (head, rows) => h("div", { class: "scroll" }, h("table", {},
  h("thead", {}, h("tr", {}, head.map((c) => h("th", { class: /^(#|count|\d)/i.test(c) ? "num" : null }, c)))),
  h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: head.length, class: "muted" }, "Nothing here.")))));
const rfc3339 = (local) => local ? new Date(local).toISOString() : "";

// ---- sign-in ----

function signOut(message) {
  state.token = null;
  sessionStorage.removeItem(TOKEN);
  document.getElementById("signout").hidden = true;
  signIn(message);
}

function signIn(message) {
  const input = h("input", { id: "token", type: "password", autocomplete: "off", required: true,
    "aria-describedby": "token-help" });
  const form = h("form", { onsubmit: async (e) => {
    e.preventDefault();
    state.token = input.value.trim();
    input.value = "";
    try {
      await api("/v1/overview");
      sessionStorage.setItem(TOKEN, state.token);
      document.getElementById("signout").hidden = false;
      route();
    } catch (x) { if (x.status !== 401) form.append(err(x)); }
  } },
  h("label", { for: "token" }, "Admin token", input),
  h("p", { id: "token-help", class: "muted" },
    "An admin-scoped token from ALLIM_API_TOKENS (admin:…). It stays in this tab until you sign out or close it."),
  h("button", { type: "submit" }, "Sign in"),
  message ? h("p", { class: "error", role: "alert" }, message) : null);
  show(h("div", { class: "signin card" }, h("h1", {}, "Sign in"), form));
  input.focus();
}

// ---- pages ----

async function overview() {
  const o = await api("/v1/overview");
  state.open = o.open;
  banner();
  const types = Object.entries(o.types);
  const counts = (c) => [c.delivered, c.pending + c.failed, c.dead, c.rejected];
  const lanes = o.lanes.map((l) => h("tr", {},
    h("td", {}, l.channel), h("td", {}, l.paused ? h("span", { class: "badge s-paused" }, "paused: credentials refused")
      : l.throttled ? h("span", { class: "badge s-pending" }, "rate-limited by the provider")
        : h("span", { class: "badge s-delivered" }, "running")),
    h("td", { class: "num" }, l.rateLimitPerSec ? l.rateLimitPerSec + "/s" : "—"),
    h("td", { class: "num" }, l.answers), h("td", { class: "num" }, l.answers ? l.meanMs.toFixed(1) + " ms" : "—"),
    h("td", { class: "num" }, l.retries)));
  show(
    h("h1", {}, "Overview"),
    h("p", { class: "muted" }, `Read ${fmt(o.at)}; refreshes every 5 s.`),
    h("h2", {}, "By notification type"),
    table(["type", "last hour: delivered", "pending / retrying", "dead", "rejected", "last day: delivered", "pending / retrying", "dead", "rejected", "waiting now"],
      types.map(([t, v]) => h("tr", {}, h("td", {}, h("a", { href: "#/deliveries?notificationType=" + encodeURIComponent(t) }, t)),
        counts(v.lastHour).map((n) => h("td", { class: "num" }, n)),
        counts(v.lastDay).map((n) => h("td", { class: "num" }, n)),
        h("td", { class: "num" }, v.waiting)))),
    h("h2", {}, "Lanes (since this task started)"),
    table(["channel", "state", "rate limit", "answers", "mean answer time", "retries"], lanes),
    h("h2", {}, "SQS consumer"),
    h("p", {}, !o.consumer.enabled ? "Off (no ALLIM_SQS_QUEUE_URL)."
      : o.consumer.databaseUnavailable ? h("span", { class: "error" }, "Holding off: the database is unavailable.")
        : `Receiving with ${o.consumer.pollers || 1} poller(s).`));
  clearInterval(state.timer);
  state.timer = setInterval(() => { if (location.hash.startsWith("#/overview") || location.hash === "") overview().catch(() => {}); }, 5000);
}

function filtersFrom(hash) {
  const q = hash.split("?")[1] || "";
  return Object.fromEntries(new URLSearchParams(q));
}

async function deliveries(params) {
  const field = (name, label, attrs = {}) => h("label", {}, label,
    h("input", { name, value: params[name] || "", ...attrs }));
  const select = (name, label, options) => h("label", {}, label,
    h("select", { name }, h("option", { value: "" }, "any"),
      options.map((o) => h("option", { value: o, selected: params[name] === o }, o))));
  const form = h("form", { class: "filters card", onsubmit: (e) => {
    e.preventDefault();
    const q = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (v) q.set(k, k === "since" || k === "until" ? rfc3339(v) : v);
    location.hash = "#/deliveries?" + q.toString();
  } },
  field("id", "Delivery id"), field("key", "Idempotency key"), field("userId", "User id"),
  field("to", "Recipient (phone or email)"),
  select("notificationType", "Type", ["APP_NOTIFICATION", "PUSH", "SMS", "ALIMTALK", "SLACK", "EMAIL", "WEBHOOK", "UNKNOWN"]),
  select("status", "Status", ["pending", "delivered", "failed", "dead", "rejected"]),
  field("since", "Since", { type: "datetime-local" }), field("until", "Until", { type: "datetime-local" }),
  h("button", { type: "submit" }, "Search"));
  for (const k of ["since", "until"]) if (params[k]) form.elements[k].value = params[k].slice(0, 16);
  const q = new URLSearchParams(params);
  q.set("limit", "50");
  let result;
  try { result = await api("/v1/deliveries?" + q.toString()); } catch (e) { show(h("h1", {}, "Deliveries"), form, err(e)); return; }
  show(h("h1", {}, "Deliveries"), form,
    table(["id", "type", "status", "created", "attempts", "last error"], result.items.map((d) => h("tr", {},
      h("td", {}, h("a", { href: "#/deliveries/" + d.id }, d.id)), h("td", {}, d.notificationType),
      h("td", {}, badge(d.status)), h("td", {}, fmt(d.createdAt)), h("td", { class: "num" }, d.attempts),
      h("td", {}, d.lastError || "")))),
    result.nextCursor ? h("p", {}, h("a", { href: "#/deliveries?" + new URLSearchParams({ ...params, cursor: result.nextCursor }) }, "Older →")) : null);
}

async function delivery(id) {
  const d = await api("/v1/deliveries/" + encodeURIComponent(id));
  if (d.status === "pending" || d.status === "failed") {
    // Still on its way: look again in 3 s while this page is open.
    const here = location.hash;
    state.timer = setTimeout(() => { if (location.hash === here) delivery(id).catch(() => {}); }, 3000);
  }
  const dl = (pairs) => h("dl", {}, pairs.filter(([, v]) => v !== undefined && v !== null && v !== "")
    .map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
  show(h("h1", {}, "Delivery"),
    h("div", { class: "card" }, dl([["id", d.id], ["type", d.notificationType], ["status", badge(d.status)],
      ["source", d.source], ["idempotency key", d.idempotencyKey], ["attempts", String(d.attempts)],
      ["last error", d.lastError], ["next attempt", fmt(d.nextAttemptAt)], ["dry run", d.dryRun ? "yes (no provider credentials)" : ""],
      ["created", fmt(d.createdAt)], ["updated", fmt(d.updatedAt)], ["delivered", fmt(d.deliveredAt)]])),
    d.status === "dead" ? h("p", {}, h("button", { type: "button", onclick: async () => {
      if (!confirm("Redrive this dead letter?")) return;
      await api(`/v1/dead-letters/${encodeURIComponent(d.id)}/redrive`, { method: "POST", body: {} });
      route();
    } }, "Redrive")) : null,
    h("h2", {}, "Attempts"),
    d.notificationType === "APP_NOTIFICATION" && !(d.history || []).length
      ? h("p", { class: "muted" }, "None: in-app notifications are written to the inbox when they are accepted.") :
    table(["#", "at", "outcome", "error"], (d.history || []).map((a) => h("tr", {}, h("td", { class: "num" }, a.attempt),
      h("td", {}, fmt(a.at)), h("td", {}, a.outcome), h("td", {}, a.error || "")))),
    h("h2", {}, "Body (recipients and tokens masked)"),
    h("pre", {}, JSON.stringify(d.payload, null, 2)),
    d.recipients && d.recipients.length ? [h("h2", {}, "Per recipient (from the provider)"),
      table(["to", "channel", "status", "code", "reason", "failover", "completed"], d.recipients.map((r) => h("tr", {},
        h("td", {}, r.to), h("td", {}, r.channel), h("td", {}, badge(r.status)), h("td", {}, r.code || ""),
        h("td", {}, r.reason || ""), h("td", {}, r.failover || ""), h("td", {}, fmt(r.completedAt)))))] : null,
    d.inboxItem ? [h("h2", {}, "Inbox row"), h("div", { class: "card" }, dl([["user", h("a", { href: "#/users/" + encodeURIComponent(d.payload.userId || "") }, d.payload.userId || "")],
      ["title", d.inboxItem.title], ["body", d.inboxItem.body], ["read", d.inboxItem.readAt ? fmt(d.inboxItem.readAt) : "unread"]]))] : null);
}

async function deadLetters(params, message) {
  const q = new URLSearchParams(params);
  q.set("limit", "100");
  const page = await api("/v1/dead-letters?" + q.toString());
  const boxes = [];
  const status = h("p", { role: "status" }, message || "");
  const redrive = h("button", { type: "button", onclick: async () => {
    const ids = boxes.filter((b) => b.checked).map((b) => b.value);
    if (!ids.length) { status.textContent = "Select dead letters first."; return; }
    if (!confirm(`Redrive ${ids.length} dead letter${ids.length === 1 ? "" : "s"}?`)) return;
    let done = 0;
    for (const id of ids) { await api(`/v1/dead-letters/${encodeURIComponent(id)}/redrive`, { method: "POST", body: {} }); done++; }
    await deadLetters(params, `Redriven: ${done}. They are pending again; the dispatcher sends them now.`);
  } }, "Redrive selected");
  const all = h("input", { type: "checkbox", "aria-label": "Select all dead ones", onchange: () => boxes.forEach((b) => { b.checked = all.checked; }) });
  const filter = h("form", { class: "filters card", onsubmit: (e) => {
    e.preventDefault();
    const f = new URLSearchParams();
    for (const [k, v] of new FormData(filter)) if (v) f.set(k, v);
    location.hash = "#/dead-letters?" + f.toString();
  } },
  h("label", {}, "Status", h("select", { name: "status" }, h("option", { value: "" }, "dead and rejected"),
    ["dead", "rejected"].map((s) => h("option", { value: s, selected: params.status === s }, s)))),
  h("label", {}, "Type", h("input", { name: "notificationType", value: params.notificationType || "" })),
  h("button", { type: "submit" }, "Filter"));
  const rows = page.items.map((d) => {
    const box = d.status === "dead" ? h("input", { type: "checkbox", value: d.id, "aria-label": "Select " + d.id }) : null;
    if (box) boxes.push(box);
    return h("tr", {}, h("td", {}, box), h("td", {}, h("a", { href: "#/deliveries/" + d.id }, d.id)),
      h("td", {}, d.notificationType), h("td", {}, badge(d.status)), h("td", { class: "num" }, d.attempts),
      h("td", {}, d.reason || ""), h("td", {}, fmt(d.updatedAt)),
      h("td", {}, d.rawBody ? h("details", {}, h("summary", {}, "raw body"), h("pre", {}, d.rawBody)) : ""));
  });
  show(h("h1", {}, "Dead letters"), filter, h("div", { class: "row" }, redrive, status),
    table([all, "id", "type", "status", "attempts", "reason", "updated", ""], rows));
}

async function alarms() {
  const [list, silences] = await Promise.all([api("/v1/alarms?events=5"), api("/v1/silences")]);
  const silenceForm = (a) => {
    const form = h("form", { class: "row", onsubmit: async (e) => {
      e.preventDefault();
      const f = new FormData(form);
      try {
        await api("/v1/silences", { method: "POST", body: { alarm: a.name, account: a.account, region: a.region,
          duration: f.get("duration"), reason: f.get("reason") } });
        await alarms();
      } catch (x) { form.append(err(x)); }
    } },
    h("label", {}, "For", h("select", { name: "duration" }, ["1h", "4h", "1d", "7d"].map((d) => h("option", { value: d }, d)))),
    h("label", {}, "Reason", h("input", { name: "reason", required: true, maxlength: 500 })),
    h("button", { type: "submit" }, "Silence " + a.name));
    return form;
  };
  const tryBox = h("textarea", { id: "try-alarm", rows: 8, cols: 60, "aria-label": "CloudWatch alarm JSON",
    placeholder: '{"AlarmName": "api-5xx", "NewStateValue": "ALARM", "OldStateValue": "OK", "StateChangeTime": "…", "AWSAccountId": "…", "Region": "…"}' });
  const tryOut = h("div", { role: "status" });
  const tryForm = h("form", { class: "card", onsubmit: async (e) => {
    e.preventDefault();
    tryOut.replaceChildren();
    let body;
    try { body = JSON.parse(tryBox.value); } catch (x) { tryOut.append(h("p", { class: "error" }, "Not JSON: " + x.message)); return; }
    try {
      const x = await api("/v1/alarms/test", { method: "POST", body });
      tryOut.append(h("p", {}, h("strong", {}, x.outcome), ": " + x.detail),
        table(["rule", "SMS", "Slack", "text", "quiet hours"], x.routes.map((r) => h("tr", {}, h("td", {}, r.rule),
          h("td", {}, r.sms.join(", ")), h("td", {}, r.slack.join(", ")), h("td", {}, r.text),
          h("td", {}, r.smsHeldByQuietHours ? "SMS held back" : "")))));
    } catch (x) { tryOut.append(err(x)); }
  } },
  h("p", { class: "muted" }, "Paste a CloudWatch alarm (the SNS Message, or the whole SNS notification), or pick an alarm below, and see which rules match, who would get what, and what silences, the flap limit and quiet hours would do. Nothing is sent."),
  tryBox, h("p", {}, h("button", { type: "submit" }, "Try the rules")), tryOut);
  const sample = (a, state) => JSON.stringify({ AlarmName: a.name, AWSAccountId: a.account, Region: a.region,
    NewStateValue: state, OldStateValue: a.state || "OK", NewStateReason: "tried from the console",
    StateChangeTime: new Date().toISOString().replace("Z", "+0000") }, null, 2);
  show(h("h1", {}, "Alarms"),
    h("h2", {}, "Try the rules"), tryForm,
    h("h2", {}, "Active silences"),
    table(["alarm", "until", "reason", ""], silences.items.map((s) => h("tr", {}, h("td", {}, s.alarm),
      h("td", {}, fmt(s.endsAt)), h("td", {}, s.reason),
      h("td", {}, h("button", { type: "button", class: "secondary", onclick: async () => {
        await api("/v1/silences/" + encodeURIComponent(s.id), { method: "DELETE" });
        await alarms();
      } }, "End"))))),
    h("h2", {}, "Alarms and what became of each change"),
    list.items.length ? list.items.map((a) => h("div", { class: "card" },
      h("div", { class: "row" }, h("strong", {}, a.name), a.state ? h("span", { class: "badge s-" + (a.state === "OK" ? "delivered" : a.state === "ALARM" ? "dead" : "pending") }, a.state) : "",
        h("span", { class: "muted" }, `${a.account} · ${a.region} · changed ${fmt(a.lastChange)}`)),
      table(["state", "changed", "outcome", "why"], a.recent.map((e) => h("tr", {}, h("td", {}, `${e.oldState || "?"} → ${e.state}`),
        h("td", {}, fmt(e.changedAt)), h("td", {}, e.outcome), h("td", {}, e.detail || "")))),
      silenceForm(a),
      h("p", {}, h("button", { type: "button", class: "secondary", onclick: () => {
        tryBox.value = sample(a, a.state === "ALARM" ? "OK" : "ALARM");
        tryBox.focus();
        tryBox.scrollIntoView();
      } }, "Try the rules with " + a.name)))) : h("p", { class: "muted" }, "No alarm has arrived yet."));
}

async function watchers(message) {
  const list = await api("/v1/watchers");
  const rows = list.items.map((w) => h("tr", {},
    h("td", {}, w.name), h("td", {}, w.url), h("td", { class: "num" }, w.intervalSeconds + " s"),
    h("td", {}, fmt(w.lastPollAt)), h("td", {}, fmt(w.lastSuccessAt)),
    h("td", {}, w.lastError ? h("span", { class: "error" }, w.lastError) : (w.initialized ? "" : "not polled yet")),
    h("td", { class: "num" }, w.failures), h("td", { class: "num" }, w.itemsSeen),
    h("td", {}, w.digest ? `${w.digest.count} item(s), sum ${w.digest.sum} until ${fmt(w.digest.windowEnd)}` : ""),
    h("td", {}, h("button", { type: "button", class: "secondary", onclick: async () => {
      try {
        const r = await api(`/v1/watchers/${encodeURIComponent(w.name)}/poll`, { method: "POST", body: {} });
        await watchers(`${w.name}: ${r.items} item(s) in the answer, ${r.new} new, ${r.notified} notification(s).`);
      } catch (x) { await watchers(`${w.name}: ${x.message}`); }
    } }, "Poll now"))));
  show(h("h1", {}, "Watchers"),
    h("p", { role: "status" }, message || ""),
    table(["name", "url", "every", "last poll", "last success", "last error", "failures", "items seen", "digest", ""], rows),
    list.items.length ? null : h("p", { class: "muted" }, "No watcher is configured (ALLIM_WATCHERS)."));
}

async function user(id) {
  const form = h("form", { class: "row card", onsubmit: (e) => {
    e.preventDefault();
    location.hash = "#/users/" + encodeURIComponent(new FormData(form).get("user"));
  } }, h("label", {}, "User id", h("input", { name: "user", value: id || "", required: true })), h("button", { type: "submit" }, "Show"));
  if (!id) { show(h("h1", {}, "A user"), form); return; }
  const base = "/v1/users/" + encodeURIComponent(id);
  const [inbox, devices] = await Promise.all([api(base + "/notifications?limit=50"), api(base + "/devices")]);
  const deviceItems = Array.isArray(devices) ? devices : (devices.items || []);
  show(h("h1", {}, "A user"), form,
    h("h2", {}, `Inbox of ${id}`),
    table(["title", "body", "created", "read", "delivery"], inbox.items.map((i) => h("tr", {}, h("td", {}, i.title),
      h("td", {}, i.body || ""), h("td", {}, fmt(i.createdAt)), h("td", {}, i.readAt ? fmt(i.readAt) : "unread"),
      h("td", {}, h("a", { href: "#/deliveries/" + i.deliveryId }, "delivery"))))),
    h("h2", {}, "Registered devices"),
    table(["token", "platform", "registered"], deviceItems.map((d) => h("tr", {}, h("td", {}, d.token || ""),
      h("td", {}, d.platform || ""), h("td", {}, fmt(d.createdAt || d.updatedAt))))),
    h("p", {}, h("a", { href: "#/deliveries?userId=" + encodeURIComponent(id) }, "This user's deliveries →")));
}

// ---- routing ----

function banner() {
  const b = document.getElementById("banner");
  b.hidden = !state.open;
  b.textContent = state.open ? "Open: no tokens are configured, so anyone who reaches this port (loopback only) can use this console and the API." : "";
}

async function route() {
  clearInterval(state.timer);
  clearTimeout(state.timer);
  const hash = location.hash || "#/overview";
  const [path] = hash.slice(1).split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  for (const a of document.querySelectorAll("#nav a")) {
    if (a.getAttribute("href") === "#/" + (parts[0] || "overview")) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  try {
    switch (parts[0] || "overview") {
      case "overview": await overview(); break;
      case "deliveries": parts[1] ? await delivery(parts[1]) : await deliveries(filtersFrom(hash)); break;
      case "dead-letters": await deadLetters(filtersFrom(hash)); break;
      case "alarms": await alarms(); break;
      case "watchers": await watchers(); break;
      case "users": await user(parts[1]); break;
      default: show(h("h1", {}, "Not found"), h("p", {}, h("a", { href: "#/overview" }, "Overview")));
    }
    banner();
    main().focus();
  } catch (e) {
    if (e.status !== 401) show(err(e));
  }
}

function setupTimeZone() {
  const select = document.getElementById("tz");
  const zones = ["Asia/Seoul", "UTC", "Asia/Tokyo", "America/Los_Angeles", "America/New_York", "Europe/London"];
  const local = Intl.DateTimeFormat().resolvedOptions().timeZone;
  if (local && !zones.includes(local)) zones.push(local);
  if (!zones.includes(state.tz)) zones.push(state.tz);
  select.replaceChildren(...zones.map((z) => h("option", { value: z, selected: z === state.tz }, z)));
  select.addEventListener("change", () => { state.tz = select.value; localStorage.setItem("allim.tz", state.tz); route(); });
}

async function start() {
  setupTimeZone();
  document.getElementById("signout").addEventListener("click", () => signOut("Signed out."));
  window.addEventListener("hashchange", route);
  if (state.token) {
    document.getElementById("signout").hidden = false;
    return route();
  }
  // No token yet: an allim without tokens (loopback) opens directly and says so.
  try {
    const res = await fetch("/v1/overview", { headers: { accept: "application/json" } });
    if (res.ok) { state.open = true; return route(); }
  } catch (_) { /* fall through to sign-in */ }
  signIn();
}

start();
