// The bridge's debugger page: connect to /ws, pick an action from /schema, send frames, and
// watch replies (matched to their requests) and events (grouped by subscription).
// Plain browser JavaScript, no dependencies; every server value is shown as text, never as HTML.

const $ = (id) => document.getElementById(id);
const EVENT_ACTIONS = ["create", "update", "delete"];
const STATUS_TEXT = {
  200: "OK", 201: "Created", 204: "No Content", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
  404: "Not Found", 405: "Method Not Allowed", 409: "Conflict", 412: "Precondition Failed", 413: "Too Large",
  429: "Too Many Requests", 499: "Cancelled", 500: "Internal Server Error", 501: "Not Implemented",
  502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout",
};

const state = {
  schema: null,
  ws: null,
  seq: 0,
  selected: null, // {stream, action} — action is a schema action, or "subscribe" / "unsubscribe"
  pending: new Map(), // request_id → {entry, sentAt, stream, action}
  subs: new Map(), // subscription request_id → {el, stream, count, active}
  lastPk: new Map(), // stream → pk of the last resource seen
};

// ---- small DOM helpers ----

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function clock() {
  const d = new Date();
  return d.toLocaleTimeString([], { hour12: false }) + "." + String(d.getMilliseconds()).padStart(3, "0");
}

// jsonView renders a value as pretty JSON with coloured tokens, built from text nodes.
function jsonView(value, attrs) {
  const text = JSON.stringify(value, null, 2) ?? "undefined";
  const pre = el("pre", { class: "json", ...attrs });
  const re = /("(?:\\.|[^"\\])*")(\s*:)?|(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)|\b(true|false|null)\b/g;
  let last = 0;
  for (let m; (m = re.exec(text)); ) {
    if (m.index > last) pre.append(text.slice(last, m.index));
    if (m[1] !== undefined) {
      pre.append(el("span", { class: m[2] ? "j-key" : "j-str", text: m[1] }));
      if (m[2]) pre.append(m[2]);
    } else if (m[3] !== undefined) {
      pre.append(el("span", { class: "j-num", text: m[3] }));
    } else {
      pre.append(el("span", { class: "j-lit", text: m[4] }));
    }
    last = re.lastIndex;
  }
  pre.append(text.slice(last));
  return pre;
}

function statusBadge(status) {
  const cls = "status s" + String(status)[0];
  const text = status + " " + (STATUS_TEXT[status] || "");
  return el("span", { class: cls, "data-testid": "reply-status", text: text.trim() });
}

// errorList shows a reply's errors: plain strings, or DRF-style {field: [messages]} objects.
function errorList(errors) {
  const ul = el("ul", { class: "errors", "data-testid": "reply-errors" });
  for (const item of errors) {
    if (item && typeof item === "object" && !Array.isArray(item)) {
      for (const [field, msgs] of Object.entries(item)) {
        ul.append(el("li", {}, el("b", { text: field }), ": ", [].concat(msgs).join(" ")));
      }
    } else {
      ul.append(el("li", { text: typeof item === "string" ? item : JSON.stringify(item) }));
    }
  }
  return ul;
}

// ---- schema: shapes, labels and example values ----

function message(name) {
  return state.schema?.messages?.[name];
}

function fieldsOf(shape) {
  if (shape?.fields) return shape.fields;
  if (shape?.message) return message(shape.message)?.fields || [];
  return null;
}

function shortName(full) {
  return full.split(".").pop();
}

function typeLabel(t) {
  if (!t) return "none";
  if (t.well_known) return shortName(t.well_known) + (t.type === "string" ? " (string)" : "");
  if (t.message) return shortName(t.message);
  if (t.type === "array") return typeLabel(t.items) + "[]";
  if (t.map) return "map<" + typeLabel(t.map.key) + ", " + typeLabel(t.map.value) + ">";
  if (t.values) return (t.enum ? "enum " : "") + t.values.join(" | ");
  if (t.fields) return t.fields.length ? "object" : "{}";
  if (t.type === "string" && t.format) return t.format + " (string)";
  if (t.format) return t.format;
  return t.type;
}

// shapeTable lists the fields of an object shape; nested messages open on demand.
function shapeTable(shape, seen = new Set()) {
  const fields = fieldsOf(shape);
  if (!fields) return el("div", { class: "type", text: typeLabel(shape) });
  if (!fields.length) return el("div", { class: "dim", text: "{} (no fields)" });
  const table = el("table", { class: "fields" });
  for (const f of fields) {
    const notes = [];
    if (f.optional) notes.push("optional");
    if (f.oneof) notes.push("oneof " + f.oneof);
    if (f.json_name && f.json_name !== f.name) notes.push("also " + f.json_name);
    const inner = f.message ? f : f.items?.message ? f.items : null;
    let typeCell = el("span", { class: "type", text: typeLabel(f) });
    if (inner && !seen.has(inner.message)) {
      const next = new Set(seen).add(inner.message);
      const d = el("details", {}, el("summary", {}, typeCell));
      d.addEventListener("toggle", () => {
        if (d.open && d.childElementCount === 1) d.append(shapeTable(inner, next));
      }, { once: false });
      typeCell = d;
    }
    table.append(el("tr", {}, el("td", { text: f.name }), el("td", {}, typeCell), el("td", { text: notes.join(", ") })));
  }
  return table;
}

// example makes a value for a shape, recursion-safe, for pre-filling a request.
function example(t, name = "", seen = new Set()) {
  if (!t) return null;
  if (t.type === "array") return t.items && !t.items.message && !t.items.fields ? [example(t.items, name, seen)] : [];
  if (t.map) return {};
  if (t.well_known) {
    switch (t.format) {
      case "date-time": return new Date().toISOString().replace(/\.\d+Z$/, "Z");
      case "duration": return "1s";
      case "field-mask": return "";
    }
  }
  if (t.message || t.fields) {
    const key = t.message;
    if (key && (seen.has(key) || seen.size > 3)) return null;
    const next = key ? new Set(seen).add(key) : seen;
    return exampleObject(fieldsOf(t), next);
  }
  switch (t.type) {
    case "boolean": return false;
    case "integer": return 0;
    case "number": return 0;
    case "null": return null;
    case "any": return null;
    case "object": return {};
    case "string":
      if (t.values) return t.values.find((v) => !/_UNSPECIFIED$/.test(v)) ?? t.values[0];
      if (t.format === "int64" || t.format === "uint64") return /(^|_)id$/.test(name) ? String(relatedPk(name) ?? 1) : "0";
      if (t.format === "bytes") return "";
      return name ? name.replace(/_/g, " ") : "text";
  }
  return null;
}

function exampleObject(fields, seen, skip = () => false) {
  const out = {};
  const oneofs = new Set();
  for (const f of fields || []) {
    if (f.optional || skip(f)) continue;
    if (f.oneof) {
      if (oneofs.has(f.oneof)) continue;
      oneofs.add(f.oneof);
    }
    out[f.name] = example(f, f.name, seen);
  }
  return out;
}

// relatedPk guesses the value of a reference like question_id from the last "questions" seen.
function relatedPk(field) {
  const base = field.replace(/_id$/, "");
  for (const s of [base + "s", base + "es", base]) if (state.lastPk.has(s)) return state.lastPk.get(s);
  return undefined;
}

function nextId(prefix = "r") {
  return prefix + (state.seq + 1);
}

// template is the request frame pre-filled for the selected action.
function template(sel) {
  const { stream, action } = sel;
  const pk = state.lastPk.get(stream) ?? 1;
  const payload = { action: typeof action === "string" ? action : action.name };
  if (action === "subscribe") {
    const sub = state.schema?.streams?.[stream]?.subscribe;
    payload.data = { action: sub?.events?.length ? [...sub.events] : [...EVENT_ACTIONS] };
    payload.request_id = nextId("s");
    return { stream, payload };
  }
  if (action === "unsubscribe") {
    const live = [...state.subs.entries()].filter(([, s]) => s.active && s.stream === stream).map(([id]) => id);
    payload.data = { request_id: live.at(-1) ?? "s1" };
    payload.request_id = nextId();
    return { stream, payload };
  }
  if (action.detail) payload.pk = pk;
  const fields = fieldsOf(action.data);
  if (action.kind === "list") {
    payload.data = exampleObject(fields, new Set(), (f) => f.name !== "page" && f.name !== "page_size" && f.optional);
    if ("page" in payload.data) payload.data.page = 1;
    if ("page_size" in payload.data) payload.data.page_size = 25;
  } else if (fields && fields.length) {
    const writes = ["create", "update", "patch"].includes(action.kind);
    const seen = action.data.message ? new Set([action.data.message]) : new Set();
    let data = exampleObject(fields, seen, (f) => writes && f.name === "id");
    if (action.kind === "patch") {
      const first = Object.keys(data)[0];
      data = first ? { [first]: data[first] } : {};
    }
    payload.data = data;
  } else if (!fields) {
    payload.data = example(action.data);
  }
  payload.request_id = nextId();
  return { stream, payload };
}

// ---- sidebar ----

async function loadSchema() {
  const status = $("schema-status");
  status.hidden = false;
  status.className = "note";
  status.textContent = "Loading /schema…";
  try {
    const res = await fetch(new URL("../schema", location.href), { cache: "no-store" });
    if (res.status === 404) throw new Error("The schema endpoint is switched off (-schema=false). Type frames by hand.");
    if (!res.ok) throw new Error("/schema answered " + res.status + " " + (await res.text()).trim());
    state.schema = await res.json();
    status.hidden = true;
  } catch (err) {
    state.schema = null;
    status.className = "note bad";
    status.textContent = err instanceof Error ? err.message : String(err);
  }
  renderStreams();
}

function renderStreams() {
  const ul = $("streams");
  ul.replaceChildren();
  const streams = Object.values(state.schema?.streams || {});
  if (state.schema && !streams.length) ul.append(el("li", { class: "note", text: "The bridge exposes no stream." }));
  for (const st of streams) {
    const actions = el("ul", { class: "actions" });
    const add = (name, tag, tagClass, title, extra = "") =>
      actions.append(el("li", {}, el("button", {
        type: "button", class: "action " + extra, "data-testid": `action-${st.stream}-${name}`,
        "data-stream": st.stream, "data-action": name, title,
        onclick: () => select(st.stream, name),
      }, name, tag && el("span", { class: "tag " + tagClass, text: tag }))));
    for (const a of st.actions) add(a.name, a.scope, a.scope, a.method);
    if (st.events?.length) {
      add("subscribe", "events", "", "Events: " + st.events.join(", "), "evt");
      add("unsubscribe", "", "", "End a subscription", "evt");
    }
    const streamPerm = st.effective_permission || st.permission;
    const meta = [st.model && shortName(st.model), streamPerm && streamPerm !== "allow_any" && streamPerm].filter(Boolean).join(" · ");
    ul.append(el("li", { class: "stream", "data-testid": `stream-${st.stream}`, "data-stream": st.stream },
      el("div", { class: "stream-name", text: st.stream }),
      el("div", { class: "stream-meta", title: st.service, text: meta || st.service }),
      actions));
  }
  if (!state.selected && streams.length) {
    const first = streams[0];
    select(first.stream, first.actions[0]?.name ?? "subscribe");
  } else if (state.selected) {
    markSelected();
  } else {
    $("editor").value = JSON.stringify({ stream: "", payload: { action: "", request_id: nextId() } }, null, 2);
  }
}

function findAction(stream, name) {
  if (name === "subscribe" || name === "unsubscribe") return name;
  return state.schema?.streams?.[stream]?.actions.find((a) => a.name === name);
}

function markSelected() {
  for (const b of document.querySelectorAll(".action")) {
    b.classList.toggle("selected", b.dataset.stream === state.selected?.stream && b.dataset.action === state.selected?.name);
  }
}

function select(stream, name) {
  const action = findAction(stream, name);
  if (!action) return;
  state.selected = { stream, name, action };
  markSelected();
  $("editor").value = JSON.stringify(template(state.selected), null, 2);
  $("editor").scrollTop = 0;
  $("editor-error").textContent = "";
  renderInfo();
}

function renderInfo() {
  const { stream, name, action } = state.selected;
  const st = state.schema?.streams?.[stream];
  $("request-title").textContent = stream + " · " + name;
  const tags = $("request-tags");
  const info = $("request-info");
  const body = $("shape-body");
  tags.replaceChildren();
  info.replaceChildren();
  body.replaceChildren();
  // The permission that decides (policy, proto options and defaults resolved), and the proto option's text.
  const perm = (x) => el("span", {
    class: "tag perm", "data-testid": "permission",
    title: "Proto option: " + (x.permission || "(none)"),
    text: "permission: " + (x.effective_permission || x.permission || "default"),
  });
  if (action === "subscribe") {
    const sub = st.subscribe;
    tags.append(el("span", { class: "tag", text: "events" }), perm(sub));
    info.append("Events ", el("code", { text: sub.events.join(", ") }), " of ", el("code", { text: st.model || stream }),
      ". Add ", el("code", { text: '"pk": …' }), " to follow one resource. Method ", el("code", { text: sub.method }), ".");
    body.append(el("div", { class: "shape-title", text: "event payload" }), shapeTable(sub.event));
    return;
  }
  if (action === "unsubscribe") {
    tags.append(el("span", { class: "tag", text: "events" }));
    info.append("Ends subscriptions: by ", el("code", { text: "data.request_id" }), " of the subscribe, or by the same ",
      el("code", { text: "data.action" }), " (and pk) as subscribed. Replies with the ended ", el("code", { text: "request_ids" }), ".");
    return;
  }
  tags.append(el("span", { class: "tag " + action.scope, text: action.scope }), el("span", { class: "tag", text: action.kind }), perm(action));
  const parts = ["Calls ", el("code", { text: action.method }), "; replies ", el("code", { text: String(action.status) }), " with ",
    el("code", { text: typeLabel(action.reply) })];
  if (action.pk_required) parts.push("; needs ", el("code", { text: "pk" }), " (" + typeLabel(action.pk) + ")");
  if (action.partial) parts.push("; only the keys sent change");
  info.append(...parts, ".");
  body.append(el("div", { class: "shape-title", text: "data" }), shapeTable(action.data));
  body.append(el("div", { class: "shape-title", text: "reply data" }), shapeTable(action.reply.items || action.reply));
  if (action.meta) body.append(el("div", { class: "shape-title", text: "reply meta" }), shapeTable(action.meta));
}

// ---- connection ----

function wsURL() {
  const u = new URL($("ws-url").value.trim() || "../ws", location.href);
  if (u.protocol === "http:") u.protocol = "ws:";
  if (u.protocol === "https:") u.protocol = "wss:";
  const token = $("token").value.trim();
  if (token) u.searchParams.set("token", token);
  return u;
}

function setStatus(text, cls) {
  const s = $("conn-status");
  s.textContent = text;
  s.className = "pill " + cls;
  $("connect").textContent = cls === "off" ? "Connect" : "Disconnect";
}

function connect() {
  disconnect();
  let url;
  try {
    url = wsURL();
  } catch (err) {
    system("Bad URL: " + err.message);
    return;
  }
  const shown = new URL(url);
  if (shown.searchParams.has("token")) shown.searchParams.set("token", "…");
  const ws = new WebSocket(url);
  state.ws = ws;
  setStatus("connecting", "wait");
  ws.onopen = () => {
    if (state.ws !== ws) return;
    setStatus("connected", "on");
    system("Connected to " + shown);
  };
  ws.onmessage = (ev) => {
    if (state.ws === ws) receive(ev.data);
  };
  ws.onclose = (ev) => {
    if (state.ws !== ws) return;
    state.ws = null;
    setStatus("disconnected", "off");
    system("Connection closed: " + ev.code + (ev.reason ? " " + ev.reason : "") + closeHint(ev.code));
    dropAll("connection closed");
  };
}

function closeHint(code) {
  return { 1006: " (abnormal: refused or dropped)", 1008: " (policy)", 1009: " (frame too large)", 4001: " (unauthorized)", 4003: " (forbidden)", 4008: " (too slow)" }[code] || "";
}

function disconnect() {
  const ws = state.ws;
  if (!ws) return;
  state.ws = null;
  ws.close(1000, "debugger disconnect");
  setStatus("disconnected", "off");
  system("Disconnected");
  dropAll("disconnected");
}

// dropAll marks what waited on the connection as finished.
function dropAll(why) {
  for (const [, p] of state.pending) {
    const st = p.entry.querySelector(".status.pending");
    if (st) st.textContent = "no reply (" + why + ")";
  }
  state.pending.clear();
  for (const [id, s] of state.subs) if (s.active) endSub(id, why);
}

// ---- sending ----

function send() {
  const err = $("editor-error");
  err.textContent = "";
  let frame;
  try {
    frame = JSON.parse($("editor").value);
  } catch (e) {
    err.textContent = "Not JSON: " + e.message;
    return;
  }
  if (!frame || typeof frame !== "object" || !frame.payload || typeof frame.payload !== "object") {
    err.textContent = 'A frame is {"stream": …, "payload": {"action": …}}.';
    return;
  }
  if (frame.payload.request_id === undefined) frame.payload.request_id = nextId(frame.payload.action === "subscribe" ? "s" : "r");
  if (!sendFrame(frame)) return;
  // Ready for the next send: same frame, fresh request_id.
  frame.payload.request_id = nextId(frame.payload.action === "subscribe" ? "s" : "r");
  const top = $("editor").scrollTop;
  $("editor").value = JSON.stringify(frame, null, 2);
  $("editor").scrollTop = top;
}

function sendFrame(frame) {
  const ws = state.ws;
  if (!ws || ws.readyState !== WebSocket.OPEN) {
    $("editor-error").textContent = "Not connected.";
    return false;
  }
  state.seq++;
  const id = frame.payload.request_id;
  const entry = logRequest(frame);
  ws.send(JSON.stringify(frame));
  if (id !== undefined && id !== null) state.pending.set(String(id), { entry, sentAt: performance.now(), stream: frame.stream, action: frame.payload.action });
  return true;
}

function unsubscribe(stream, id) {
  sendFrame({ stream, payload: { action: "unsubscribe", data: { request_id: id }, request_id: nextId() } });
}

// ---- receiving ----

function receive(text) {
  let frame;
  try {
    frame = JSON.parse(text);
  } catch {
    logRaw(text);
    return;
  }
  const p = frame?.payload;
  if (!p || typeof p !== "object") {
    logRaw(text);
    return;
  }
  if (!("response_status" in p)) {
    onEvent(frame);
    return;
  }
  const id = p.request_id === null || p.request_id === undefined ? null : String(p.request_id);
  const status = p.response_status;
  rememberPk(frame.stream, p.data);
  // A subscription's later notices (interrupted, resumed) reuse its request_id.
  if (id !== null && state.subs.has(id) && !state.pending.has(id) && p.action === "subscribe") {
    subNote(id, status >= 400 ? status + ": " + describeErrors(p.errors) : "resumed");
    logReply(null, frame);
    return;
  }
  const pending = id !== null ? state.pending.get(id) : undefined;
  if (pending) state.pending.delete(id);
  logReply(pending, frame);
  if (p.action === "subscribe" && status === 200 && id !== null) openSub(id, frame);
  if (p.action === "unsubscribe" && status === 200) {
    for (const ended of p.data?.request_ids || []) endSub(String(ended), "unsubscribed");
  }
}

function describeErrors(errors) {
  return (errors || []).map((e) => (typeof e === "string" ? e : JSON.stringify(e))).join("; ");
}

function rememberPk(stream, data) {
  if (typeof stream !== "string" || !data || typeof data !== "object" || Array.isArray(data)) return;
  if (data.id !== undefined && data.id !== null && typeof data.id !== "object") state.lastPk.set(stream, data.id);
}

// ---- log ----

// stickToBottom runs fn, then keeps the log scrolled to its end if it was there before.
function stickToBottom(fn) {
  const log = $("log");
  const stick = log.scrollTop + log.clientHeight >= log.scrollHeight - 30;
  fn(log);
  if (stick) log.scrollTop = log.scrollHeight;
}

function addEntry(entry) {
  stickToBottom((log) => {
    log.append(entry);
    while (log.childElementCount > 500) log.firstElementChild.remove();
  });
}

function toggler(head, body) {
  head.addEventListener("click", (e) => {
    if (e.target.closest("button")) return;
    for (const b of body) b.hidden = !b.hidden;
  });
}

function system(text) {
  addEntry(el("li", { class: "entry system", "data-testid": "log-system" },
    el("div", { class: "entry-head" }, el("span", { class: "what", text }), el("span", { class: "time", text: clock() }))));
}

function logRaw(text) {
  const entry = el("li", { class: "entry", "data-testid": "log-frame" },
    el("div", { class: "entry-head" }, el("span", { class: "arrow in", text: "←" }), el("span", { class: "what", text: "unparsed frame" }),
      el("span", { class: "time", text: clock() })),
    el("pre", { class: "json", text }));
  addEntry(entry);
}

function logRequest(frame) {
  const p = frame.payload;
  const what = [frame.stream, p.action, p.pk !== undefined && p.pk !== null ? "pk=" + JSON.stringify(p.pk) : ""].filter(Boolean).join(" ");
  const sent = jsonView(frame, { hidden: true, "data-testid": "request-frame" });
  const head = el("div", { class: "entry-head", title: "Show the frame sent" },
    el("span", { class: "arrow out", text: "→" }), el("span", { class: "what", text: what }),
    el("span", { class: "tag", text: String(p.request_id ?? "no request_id") }),
    el("span", { class: "status pending", text: p.request_id === undefined || p.request_id === null ? "no request_id: reply not matched" : "waiting…" }),
    el("span", { class: "time", text: clock() }));
  toggler(head, [sent]);
  const entry = el("li", { class: "entry", "data-testid": "log-request", "data-request-id": String(p.request_id ?? ""), "data-stream": String(frame.stream), "data-action": String(p.action) }, head, sent);
  addEntry(entry);
  return entry;
}

function logReply(pending, frame) {
  const p = frame.payload;
  const ok = p.response_status < 400;
  const parts = [];
  if (p.errors?.length) parts.push(errorList(p.errors));
  if (p.data !== null && p.data !== undefined) parts.push(jsonView(p.data, { "data-testid": "reply-data", hidden: !ok && !p.data }));
  if (p.meta) parts.push(el("div", { class: "label", text: "meta" }), jsonView(p.meta, { "data-testid": "reply-meta" }));
  const elapsed = pending ? Math.round(performance.now() - pending.sentAt) + " ms" : clock();
  const reply = el("div", { class: "reply" + (ok ? "" : " err"), "data-testid": "log-reply", "data-status": String(p.response_status) },
    el("div", { class: "entry-head" }, el("span", { class: "arrow in", text: "←" }),
      el("span", { class: "what", text: (p.action ?? "?") + (ok ? "" : " failed") }), statusBadge(p.response_status),
      el("span", { class: "time", text: elapsed })),
    ...parts);
  if (pending) {
    stickToBottom(() => {
      pending.entry.querySelector(".status.pending")?.remove();
      pending.entry.append(reply);
    });
    return;
  }
  const entry = el("li", { class: "entry", "data-testid": "log-request", "data-request-id": String(p.request_id ?? ""), "data-unmatched": true },
    el("div", { class: "entry-head" }, el("span", { class: "what", text: String(frame.stream) + " (no matching request)" })), reply);
  addEntry(entry);
}

// ---- subscriptions ----

function openSub(id, frame) {
  const p = frame.payload;
  const old = state.subs.get(id);
  if (old) old.el.remove();
  const filter = p.data || {};
  const acts = [].concat(filter.action ?? []).join(",");
  const what = frame.stream + " " + acts + (filter.pk !== undefined ? " pk=" + JSON.stringify(filter.pk) : "");
  const events = el("ul", { class: "events", "data-testid": "events" });
  const count = el("span", { class: "count", "data-testid": "event-count", text: "0 events" });
  const btn = el("button", { type: "button", "data-testid": "unsubscribe", onclick: () => unsubscribe(frame.stream, p.request_id) }, "Unsubscribe");
  const box = el("div", { class: "sub", "data-testid": "subscription", "data-request-id": id, "data-stream": String(frame.stream), "data-state": "active" },
    el("div", { class: "sub-head" }, el("span", { class: "what", title: "request_id " + id, text: what }), el("span", { class: "tag", text: id }), count, btn),
    events);
  const list = $("subscriptions");
  list.querySelector(".empty")?.remove();
  list.prepend(box);
  state.subs.set(id, { el: box, stream: frame.stream, count: 0, active: true, events, countEl: count, btn });
  updateSubsCount();
}

function endSub(id, why) {
  const s = state.subs.get(id);
  if (!s || !s.active) return;
  s.active = false;
  s.el.classList.add("ended");
  s.el.dataset.state = "ended";
  const remove = el("button", { type: "button", "data-testid": "remove-subscription", title: "Remove from the list" }, "Remove");
  remove.addEventListener("click", () => {
    s.el.remove();
    state.subs.delete(id);
    updateSubsCount();
  });
  s.btn.replaceWith(remove);
  s.btn = remove;
  subNote(id, "ended: " + why);
  updateSubsCount();
}

function subNote(id, text) {
  const s = state.subs.get(id);
  if (!s) return;
  s.events.before(el("div", { class: "sub-note", "data-testid": "subscription-note", text: text + " · " + clock() }));
}

function updateSubsCount() {
  const live = [...state.subs.values()].filter((s) => s.active).length;
  $("subs-count").textContent = state.subs.size ? live + " active" : "";
}

function onEvent(frame) {
  const p = frame.payload;
  const id = p.request_id === null || p.request_id === undefined ? "" : String(p.request_id);
  const summary = p.data && typeof p.data === "object" ? JSON.stringify(p.data) : String(p.data);
  const line = () => {
    const body = jsonView(p.data, { hidden: true });
    const head = el("div", { class: "line", title: "Show the data" },
      el("span", { class: "act", text: String(p.action) }), el("span", { text: p.pk !== undefined && p.pk !== null ? "pk=" + p.pk : "" }),
      el("span", { class: "summary", text: summary }), el("span", { class: "time", text: clock() }));
    head.addEventListener("click", () => { body.hidden = !body.hidden; });
    return [head, body];
  };
  const s = state.subs.get(id);
  if (s) {
    s.count++;
    s.countEl.textContent = s.count + (s.count === 1 ? " event" : " events");
    s.events.prepend(el("li", { class: "event", "data-testid": "event", "data-action": String(p.action), "data-pk": String(p.pk ?? "") }, ...line()));
    while (s.events.childElementCount > 200) s.events.lastElementChild.remove();
  }
  const entry = el("li", { class: "entry event" + ($("show-events").checked ? "" : " hidden"), "data-testid": "log-event", "data-request-id": id },
    el("div", { class: "entry-head" }, el("span", { class: "arrow in", text: "⚡" }),
      el("span", { class: "what", text: frame.stream + " " + p.action + (p.pk !== undefined && p.pk !== null ? " pk=" + p.pk : "") + (s ? "" : " (no known subscription)") }),
      el("span", { class: "tag", text: id || "?" }), el("span", { class: "time", text: clock() })));
  const body = jsonView(p, { hidden: true });
  toggler(entry.firstElementChild, [body]);
  entry.append(body);
  addEntry(entry);
}

// ---- wiring ----

function init() {
  const params = new URLSearchParams(location.search);
  $("ws-url").value = new URL(params.get("ws") || "../ws", location.href).toString().replace(/^http/, "ws");
  if (params.has("token")) $("token").value = params.get("token");
  $("connect-form").addEventListener("submit", (e) => {
    e.preventDefault();
    if (state.ws) disconnect();
    else connect();
  });
  $("send").addEventListener("click", send);
  $("reset").addEventListener("click", () => state.selected && select(state.selected.stream, state.selected.name));
  $("format").addEventListener("click", () => {
    try {
      $("editor").value = JSON.stringify(JSON.parse($("editor").value), null, 2);
      $("editor-error").textContent = "";
    } catch (e) {
      $("editor-error").textContent = "Not JSON: " + e.message;
    }
  });
  $("editor").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      send();
    }
  });
  $("clear-log").addEventListener("click", () => $("log").replaceChildren());
  $("show-events").addEventListener("change", (e) => {
    for (const x of document.querySelectorAll(".entry.event")) x.classList.toggle("hidden", !e.target.checked);
  });
  $("reload-schema").addEventListener("click", loadSchema);
  loadSchema();
  if (params.get("connect") !== "0") connect();
}

init();
