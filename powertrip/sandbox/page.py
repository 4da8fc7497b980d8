"""The sandbox page served by the fake Slack at `/`: every DM and channel message rendered the way
Slack renders its blocks (sections, fields, context, buttons, threads), and buttons that press as
the Slack user chosen at the top; above them, what the fake PagerDuty received (its incidents).
For the chosen user, also their App Home tab (what Powertrip last published with `views.publish`
when they opened it, its buttons pressing like a message's) and the modal they have open (from
`views.open`: its inputs, *Submit* posting a signed `view_submission`, errors drawn under their
fields). Plain HTML and JavaScript, no build step, no network."""

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Powertrip sandbox · fake Slack</title>
<style>
  :root { --fg:#1d1c1d; --muted:#616061; --line:#e2e2e2; --green:#007a5a; --red:#e01e5a; }
  * { box-sizing: border-box; }
  body { margin:0; font:15px/1.46 -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
         color:var(--fg); background:#f8f8f8; }
  header { position:sticky; top:0; z-index:2; background:#3f0e40; color:#fff; padding:10px 16px;
           display:flex; gap:16px; align-items:center; flex-wrap:wrap; }
  header h1 { font-size:16px; margin:0; font-weight:700; }
  header label { font-size:14px; }
  header select { font-size:14px; padding:3px 6px; border-radius:4px; }
  header input, header form button { font-size:14px; padding:3px 6px; border-radius:4px; }
  #status { font-size:13px; padding:2px 8px; border-radius:4px; background:rgba(255,255,255,.12); }
  #status.waiting { background:#fff3c4; color:#5c4400; }
  #status.refused, #status.failed { background:#ffd9e2; color:#8a0b30; font-weight:600; }
  #status.done { background:#d6f5e8; color:#00573f; font-weight:600; }
  .glyph { width:1.1em; height:1.1em; vertical-align:-0.2em; display:inline-block; }
  main { max-width:760px; margin:0 auto; padding:12px; }
  .conv { background:#fff; border:1px solid var(--line); border-radius:8px; margin:12px 0; }
  .conv > h2 { font-size:15px; margin:0; padding:10px 14px; border-bottom:1px solid var(--line); }
  .conv > h2 small { color:var(--muted); font-weight:400; }
  .msg { padding:8px 14px 10px; border-top:1px solid #f3f3f3; }
  .msg:first-of-type { border-top:0; }
  .who { font-weight:700; }
  .who .app { background:#e8e8e8; color:var(--muted); font-size:11px; padding:0 4px;
              border-radius:3px; margin-left:4px; font-weight:600; }
  .when { color:var(--muted); font-size:12px; margin-left:6px; }
  .edited { color:var(--muted); font-size:12px; }
  .section { margin:4px 0; }
  .fields { display:grid; grid-template-columns:1fr 1fr; gap:6px 16px; margin:6px 0; }
  .context { color:var(--muted); font-size:13px; margin:6px 0; }
  .actions { display:flex; gap:8px; flex-wrap:wrap; margin:8px 0 2px; }
  button.btn { font:600 14px/1 inherit; padding:8px 12px; border-radius:4px; cursor:pointer;
               border:1px solid #bbb; background:#fff; color:var(--fg); }
  button.btn.primary { background:var(--green); border-color:var(--green); color:#fff; }
  button.btn.danger { background:#fff; border-color:var(--red); color:var(--red); }
  button.btn:disabled { opacity:.5; cursor:wait; }
  pre { font:12px/1.4 Menlo, Consolas, monospace; background:#f6f6f6; border:1px solid #ddd;
        border-radius:4px; padding:6px 8px; white-space:pre-wrap; margin:4px 0; }
  code { font:12px/1.4 Menlo, Consolas, monospace; background:#f6f6f6; border:1px solid #ddd;
         border-radius:3px; padding:0 3px; color:#c01343; }
  .mention { background:#e8f5fa; color:#1264a3; border-radius:3px; padding:0 2px; }
  .thread { margin:6px 0 0 14px; padding-left:10px; border-left:3px solid #e5e5e5; }
  .thread .msg { padding:6px 0; }
  .broadcast { color:var(--muted); font-size:12px; }
  .ephemeral { margin-top:6px; background:#f4f8fb; border-left:3px solid #1264a3;
               padding:4px 8px; font-size:14px; }
  .ephemeral small { color:var(--muted); display:block; font-size:12px; }
  .empty { color:var(--muted); text-align:center; padding:40px; }
  a { color:#1264a3; }
  .pagerduty { background:#fff; border:1px solid var(--line); border-left:4px solid #06ac38;
               border-radius:8px; margin:12px 0; padding:8px 14px; }
  .pagerduty h2 { font-size:15px; margin:0 0 6px; }
  .pagerduty h2 small { color:var(--muted); font-weight:400; }
  .incident { border-top:1px solid #f3f3f3; padding:6px 0; font-size:14px; }
  .badge { color:#fff; border-radius:3px; padding:1px 6px; font-size:12px; font-weight:600; }
  .badge.triggered { background:var(--red); } .badge.acknowledged { background:#b27b00; }
  .badge.resolved { background:var(--green); }
  nav.tabs { display:flex; gap:4px; }
  nav.tabs button { font-size:14px; padding:3px 10px; border-radius:4px; cursor:pointer;
                    border:1px solid rgba(255,255,255,.4); background:transparent; color:#fff; }
  nav.tabs button[aria-selected=true] { background:#fff; color:#3f0e40; font-weight:700; }
  .with-accessory { display:flex; gap:12px; align-items:flex-start; justify-content:space-between; }
  #modal-backdrop { position:fixed; inset:0; z-index:5; background:rgba(0,0,0,.45);
                    display:flex; align-items:flex-start; justify-content:center;
                    padding:60px 12px; }
  #modal-backdrop[hidden] { display:none; }
  #modal { background:#fff; border-radius:8px; width:520px; max-width:100%;
           box-shadow:0 12px 40px rgba(0,0,0,.35); }
  #modal h2 { font-size:18px; margin:0; padding:14px 18px; border-bottom:1px solid var(--line); }
  #modal h2 small { color:var(--muted); font-size:12px; font-weight:400; display:block; }
  #modal .body { padding:10px 18px; }
  #modal label { display:block; font-weight:700; margin:12px 0 4px; }
  #modal label small { color:var(--muted); font-weight:400; }
  #modal input { width:100%; font:inherit; padding:7px 9px; border:1px solid #bbb;
                 border-radius:4px; }
  #modal input[aria-invalid=true] { border-color:var(--red); }
  #modal .field-error { color:var(--red); font-size:13px; margin-top:3px; }
  #modal footer { display:flex; justify-content:flex-end; gap:8px; padding:12px 18px;
                  border-top:1px solid var(--line); }
</style>
</head>
<body>
<header>
  <h1>Powertrip sandbox</h1>
  <label>Act as Slack user
    <select id="actor" data-testid="actor"></select>
  </label>
  <form id="command-form" data-testid="command-form">
    <input id="command" data-testid="command" value="/powertrip passkey" size="22"
      aria-label="Slash command">
    <button type="submit" data-testid="run-command">Send</button>
  </form>
  <nav class="tabs" role="tablist" aria-label="What to show">
    <button type="button" role="tab" data-tab="messages" data-testid="tab-messages"
      aria-selected="true">Messages</button>
    <button type="button" role="tab" data-tab="home" data-testid="tab-home"
      aria-selected="false">Home</button>
  </nav>
  <span id="status" data-testid="status">loading…</span>
</header>
<main><section id="pagerduty" class="pagerduty" data-testid="pagerduty" hidden></section>
<div id="conversations"><p class="empty" data-testid="loading">Loading messages…</p></div>
<section id="home" class="conv" data-testid="home" hidden></section></main>
<div id="modal-backdrop" data-testid="modal-backdrop" hidden>
  <form id="modal" data-testid="modal" role="dialog" aria-modal="true" aria-labelledby="modal-title"
    novalidate></form>
</div>
<script>
// Slack's emoji as small bundled drawings: a machine without an emoji font shows boxes instead.
const GLYPH_PATHS = {
  white_check_mark: '<rect x="1" y="1" width="14" height="14" rx="3" fill="#2e9e44"/>' +
    '<path d="M4 8.3l2.6 2.6L12 5.4" stroke="#fff" stroke-width="2" fill="none"/>',
  warning: '<path d="M8 1.3L15.2 14H.8z" fill="#f2c200"/>' +
    '<path d="M8 5.5v4.2M8 11.3v1.3" stroke="#222" stroke-width="1.6"/>',
  rotating_light: '<path d="M3.5 13V8.5a4.5 4.5 0 019 0V13z" fill="#e0323c"/>' +
    '<rect x="2" y="12.5" width="12" height="2.5" rx="1" fill="#666"/>' +
    '<path d="M8 .5v2M1.5 3.5l1.5 1.4M14.5 3.5L13 4.9" stroke="#e0323c" stroke-width="1.4"/>',
  hourglass: '<path d="M3.5 1.5h9M3.5 14.5h9" stroke="#8a6d3b" stroke-width="1.6"/>' +
    '<path d="M4.5 2.2h7L8 8zM4.5 13.8h7L8 8z" fill="#f5d28a" stroke="#8a6d3b"/>',
  key: '<circle cx="5" cy="8" r="3.4" fill="none" stroke="#c9961a" stroke-width="2"/>' +
    '<path d="M8.3 8H15M12.5 8v3M14.5 8v2.2" stroke="#c9961a" stroke-width="2"/>',
  shield: '<path d="M8 1l6 2.3v4.4c0 3.5-2.6 6.2-6 7.3-3.4-1.1-6-3.8-6-7.3V3.3z" fill="#3b6fd6"/>',
  no_entry: '<circle cx="8" cy="8" r="7" fill="#d7263d"/>' +
    '<rect x="3.5" y="6.8" width="9" height="2.4" fill="#fff"/>',
  mag: '<circle cx="6.5" cy="6.5" r="4.3" fill="#d9ecff" stroke="#555" stroke-width="1.7"/>' +
    '<path d="M9.7 9.7L15 15" stroke="#555" stroke-width="2.2"/>',
};
function glyph(name) {
  return GLYPH_PATHS[name] ? `<svg class="glyph" viewBox="0 0 16 16" role="img"
    aria-label=":${name}:"><title>:${name}:</title>${GLYPH_PATHS[name]}</svg>` : null;
}
let users = {}, channelNames = {}, messages = [], responses = [], lastSeen = "", loaded = false;
// The chosen user's App Home (as last published) and open modal; which tab is shown.
let views = {home: null, modal: null}, lastViews = "", lastModal = "", tab = "messages";
// The last button pressed here, until Powertrip answers it (an updated message or a reply).
let pressed = null;

function esc(s) {
  return String(s).replace(/[&<>"']/g, c => ({"&":"&amp;","<":"&lt;",">":"&gt;",
    '"':"&quot;","'":"&#39;"}[c]));
}
function ago(seconds) {
  if (seconds < 60) return "just now";
  if (seconds < 3600) return Math.floor(seconds / 60) + " min ago";
  if (seconds < 86400) return Math.floor(seconds / 3600) + " h ago";
  return Math.floor(seconds / 86400) + " days ago";
}
function token(inner) {
  if (inner.startsWith("@")) {
    const id = inner.slice(1).split("|")[0];
    const name = users[id] ? users[id].name : id;
    return `<span class="mention">@${esc(name)}</span>`;
  }
  if (inner.startsWith("#")) {
    const [id, name] = inner.slice(1).split("|");
    return `<span class="mention">#${esc(name || channelNames[id] || id)}</span>`;
  }
  if (inner.startsWith("!date^")) {
    const [spec, fallback] = inner.split("|");
    const [, epoch, format] = spec.split("^");
    const when = new Date(Number(epoch) * 1000);
    if (isNaN(when)) return esc(fallback || "");
    if ((format || "").includes("{ago}")) return esc(ago((Date.now() - when) / 1000));
    return esc(when.toLocaleString());
  }
  if (inner.startsWith("!")) return esc("@" + inner.slice(1).split("|")[0]);
  const [url, label] = inner.split("|");
  return `<a href="${esc(url)}" target="_blank" rel="noopener">${esc(label || url)}</a>`;
}
// Slack escapes &, < and > in text as entities; <...> is a control sequence (mention, link).
function unslack(s) {
  return s.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");
}
// Slack text without markup, for the status bar: mentions and links by name, no emoji codes.
function plain(text) {
  const div = document.createElement("div");
  div.innerHTML = mrkdwn(text.replace(/:[a-z0-9_+-]+:\\s*/g, ""));
  return div.textContent;
}
function mrkdwn(text) {
  let html = "", last = 0;
  const re = /<([^<>]+)>/g;
  let m;
  while ((m = re.exec(text))) {
    html += esc(unslack(text.slice(last, m.index))) + token(m[1]);
    last = re.lastIndex;
  }
  html += esc(unslack(text.slice(last)));
  // Code blocks first, kept apart so nothing inside them is formatted.
  const blocks = [];
  html = html.replace(/```\\n?([\\s\\S]*?)```/g, (all, body) => {
    blocks.push(body);
    return "\\u0000" + (blocks.length - 1) + "\\u0000";
  });
  return html
    .replace(/`([^`\\n]+)`/g, "<code>$1</code>")
    .replace(/\\*([^*\\n]+)\\*/g, "<b>$1</b>")
    .replace(/(^|\\s)_([^_\\n]+)_/g, "$1<i>$2</i>")
    .replace(/:([a-z0-9_+-]+):/g, (all, name) => glyph(name) || all)
    .replace(/\\n/g, "<br>")
    .replace(/\\u0000(\\d+)\\u0000/g, (all, i) => "<pre>" + blocks[Number(i)] + "</pre>");
}
function text(obj) {
  if (!obj) return "";
  return obj.type === "plain_text" ? esc(obj.text) : mrkdwn(obj.text || "");
}
// A button on a message (`where` has its channel and ts) or on a view (`where.view`: its id).
function button(e, where, blockId) {
  const on = where.view
    ? `data-view="${esc(where.view)}" data-block="${esc(blockId || "")}"`
    : `data-channel="${esc(where.channel)}" data-ts="${esc(where.ts)}"`;
  return `<button class="btn ${esc(e.style || "")}" data-action="${esc(e.action_id)}"
    data-value="${esc(e.value || "")}" ${on}
    data-confirm="${esc(e.confirm ? JSON.stringify(e.confirm) : "")}">${esc(e.text.text)}</button>`;
}
function block(b, msg) {
  switch (b.type) {
    case "section": {
      let html = b.text ? `<div class="section">${text(b.text)}</div>` : "";
      if (b.fields) html += `<div class="fields">${b.fields.map(f =>
        `<div>${text(f)}</div>`).join("")}</div>`;
      if (b.accessory && b.accessory.type === "button")
        html = `<div class="with-accessory" data-testid="block"
          data-block="${esc(b.block_id || "")}"><div>${html}</div>${
          button(b.accessory, msg, b.block_id)}</div>`;
      return html;
    }
    case "header": return `<div class="section"><b>${text(b.text)}</b></div>`;
    case "divider": return "<hr>";
    case "context": return `<div class="context">${(b.elements || []).map(e =>
        e.type === "image" ? "" : text(e)).join(" ")}</div>`;
    case "actions": return `<div class="actions">${(b.elements || []).map(e =>
        e.type !== "button" ? "" : button(e, msg, b.block_id)).join("")}</div>`;
    default: return "";
  }
}
function ephemerals(msg) {
  return responses.filter(r => {
    const [user, channel, ...ts] = String(r.key).split(".");
    return channel === msg.channel && ts.join(".") === msg.ts;
  }).map(r => {
    const user = String(r.key).split(".")[0];
    const name = users[user] ? users[user].name : user;
    return `<div class="ephemeral" data-testid="ephemeral"><small>Only visible to @${esc(name)}
      </small>${mrkdwn(r.text || "")}</div>`;
  }).join("");
}
function message(msg, replies) {
  const when = new Date(Number(msg.ts.split(".")[0]) * 1000).toLocaleTimeString();
  const blocks = msg.blocks && msg.blocks.length ? msg.blocks.map(b => block(b, msg)).join("")
    : `<div class="section">${mrkdwn(msg.text)}</div>`;
  const broadcast = msg.thread_ts && msg.reply_broadcast
    ? `<div class="broadcast">replied to a thread · also sent to the channel</div>` : "";
  const thread = replies && replies.length
    ? `<div class="thread" data-testid="thread">${replies.map(r => message(r)).join("")}</div>`
    : "";
  return `<div class="msg" data-testid="message" data-channel="${esc(msg.channel)}"
      data-ts="${esc(msg.ts)}">
    <div><span class="who">Powertrip<span class="app">APP</span></span>
      <span class="when">${esc(when)}</span>
      ${msg.updates ? '<span class="edited">(edited)</span>' : ""}</div>
    ${broadcast}${blocks}${ephemerals(msg)}${thread}</div>`;
}
function title(channel) {
  if (channel.startsWith("D")) {
    const user = users["U" + channel.slice(1)];
    return `Direct message · @${esc(user ? user.name : channel)} <small>${esc(channel)}</small>`;
  }
  const name = channelNames[channel];
  return name ? `# ${esc(name)} <small>channel · ${esc(channel)}</small>`
    : `# ${esc(channel)} <small>channel</small>`;
}
// Replies to slash commands typed here: only their typist sees them, as in Slack.
function commands() {
  const typed = responses.filter(r => String(r.key).split(".")[1] === "command");
  if (!typed.length) return "";
  return `<section class="conv" data-testid="commands"><h2>Slash commands</h2>${typed.map(r => {
    const user = String(r.key).split(".")[0];
    const name = users[user] ? users[user].name : user;
    return `<div class="msg"><div><span class="who">@${esc(name)}</span>
      <code>${esc(r.command || "")}</code></div><div class="ephemeral" data-testid="ephemeral">
      <small>Only visible to @${esc(name)}</small>${mrkdwn(r.text || "")}</div></div>`;
  }).join("")}</section>`;
}
function render() {
  const byChannel = {};
  for (const m of messages) (byChannel[m.channel] = byChannel[m.channel] || []).push(m);
  const channels = Object.keys(byChannel).sort((a, b) =>
    (a[0] === "D") - (b[0] === "D") || a.localeCompare(b));
  const root = document.getElementById("conversations");
  if (!channels.length) {
    root.innerHTML = commands() + (loaded
      ? '<p class="empty" data-testid="empty">No messages yet: post a webhook.</p>'
      : '<p class="empty" data-testid="loading">Loading messages…</p>');
    return;
  }
  root.innerHTML = commands() + channels.map(channel => {
    const all = byChannel[channel].sort((a, b) => Number(a.ts) - Number(b.ts));
    const top = all.filter(m => !m.thread_ts || m.thread_ts === m.ts || m.reply_broadcast);
    const replies = ts => all.filter(m => m.thread_ts === ts && m.ts !== ts);
    return `<section class="conv" data-testid="conversation" data-channel="${esc(channel)}">
      <h2>${title(channel)}</h2>${top.map(m =>
        message(m, m.thread_ts && m.thread_ts !== m.ts ? [] : replies(m.ts))).join("")}</section>`;
  }).join("");
}
function actor() { return document.getElementById("actor").value; }
function nameOf(user) { return users[user] ? users[user].name : user; }
// The chosen user's Home tab: what Powertrip published for them when they last opened it.
function renderHome() {
  const root = document.getElementById("home");
  const home = views.home;
  root.innerHTML = `<h2>Powertrip · Home <small>the App Home tab of @${esc(nameOf(actor()))}
    </small></h2>` + (home
    ? `<div class="msg" data-testid="home-view" data-view="${esc(home.id)}">${(home.blocks || [])
        .map(b => block(b, {view: home.id})).join("")}</div>`
    : '<p class="empty" data-testid="home-empty">Nothing published yet: opening the tab ' +
      'asks Powertrip for it.</p>');
}
function typed() {
  const values = {};
  for (const input of document.querySelectorAll("#modal input[data-block]"))
    values[input.dataset.block] = input.value;
  return values;
}
// The chosen user's open modal, as Slack draws one: its blocks, an input per input block (what
// was typed survives a redraw), an error under each field Powertrip marked, Cancel and Submit.
function renderModal() {
  const backdrop = document.getElementById("modal-backdrop");
  const modal = views.modal;
  const seen = modal ? JSON.stringify(modal) : "";
  if (seen === lastModal) return;
  const kept = lastModal && modal && JSON.parse(lastModal).id === modal.id ? typed() : {};
  lastModal = seen;
  if (!modal) { backdrop.hidden = true; document.getElementById("modal").innerHTML = ""; return; }
  const errors = modal.errors || {}, sent = modal.values || {};
  const fields = (modal.blocks || []).map(b => {
    if (b.type !== "input") return block(b, {view: modal.id});
    const id = String(b.block_id || ""), element = b.element || {};
    const value = id in kept ? kept[id] : id in sent ? sent[id] : element.initial_value || "";
    const error = errors[id] ? `<div class="field-error" data-testid="field-error"
      data-block="${esc(id)}">${esc(errors[id])}</div>` : "";
    return `<label for="field-${esc(id)}">${text(b.label)}${b.optional
        ? " <small>(optional)</small>" : ""}</label>
      <input id="field-${esc(id)}" data-block="${esc(id)}" data-testid="field-${esc(id)}"
        value="${esc(value)}" placeholder="${esc(element.placeholder ? element.placeholder.text
        : "")}" aria-invalid="${errors[id] ? "true" : "false"}">${error}`;
  }).join("");
  document.getElementById("modal").innerHTML = `<h2 id="modal-title">${text(modal.title)}
      <small>a modal of Powertrip's, open for @${esc(nameOf(actor()))}</small></h2>
    <div class="body">${fields}</div>
    <footer><button type="button" class="btn" data-testid="modal-cancel" data-modal="close">${
      text(modal.close || {type: "plain_text", text: "Cancel"})}</button>
      <button type="submit" class="btn primary" data-testid="modal-submit">${
      text(modal.submit || {type: "plain_text", text: "Submit"})}</button></footer>`;
  backdrop.hidden = false;
}
async function refreshViews() {
  const user = actor();
  if (!user) return;
  const answer = await fetch(`/_fake/views/${encodeURIComponent(user)}`);
  if (!answer.ok) throw new Error("HTTP " + answer.status);
  const fresh = await answer.json();
  const seen = JSON.stringify([user, fresh]);
  if (seen === lastViews) return;
  lastViews = seen;
  views = fresh;
  renderHome();
  renderModal();
}
function showTab(name) {
  tab = name;
  for (const t of document.querySelectorAll("nav.tabs button"))
    t.setAttribute("aria-selected", String(t.dataset.tab === name));
  document.getElementById("conversations").hidden = name !== "messages";
  document.getElementById("home").hidden = name !== "home";
  if (name === "home") openHome();
}
// Opening the Home tab is Slack's app_home_opened event: Powertrip publishes the tab anew.
async function openHome() {
  const user = actor();
  setStatus("waiting", `@${nameOf(user)} opened the Home tab: waiting for Powertrip…`);
  try {
    const answer = await fetch("/_sandbox/home", {method: "POST",
      headers: {"Content-Type": "application/json"}, body: JSON.stringify({user})});
    const result = await answer.json();
    setStatus(result.ok ? "done" : "failed", result.ok
      ? `Powertrip published @${nameOf(user)}'s Home tab`
      : `Home tab not opened: ${result.error || result.detail || "HTTP " + result.status}`);
  } catch (err) {
    setStatus("failed", `Home tab not opened: ${err}`);
  }
  refresh();
}
// What PagerDuty received: the fake Events API's incidents, newest first (pages fire from the
// escalation policy and at once for a Not me).
function renderPagerDuty(pd) {
  const root = document.getElementById("pagerduty");
  if (!pd || !pd.url) { root.hidden = true; return; }
  root.hidden = false;
  const incidents = (pd.incidents || []).slice().reverse();
  const rows = incidents.map(i => `<div class="incident" data-testid="incident"
      data-status="${esc(i.status)}"><span class="badge ${esc(i.status)}">${esc(i.status)}</span>
    <b>${esc(i.severity)}</b> ${esc(i.summary)}<br><small><code>${esc(i.dedup_key)}</code> ·
    ${esc((i.log || []).map(e => e.action).join(" → "))}</small></div>`).join("");
  root.innerHTML = `<h2>PagerDuty <small>what on-call received ·
    <a href="${esc(pd.url)}" target="_blank" rel="noopener">every event sent</a></small></h2>` +
    (pd.error ? `<p class="empty">fake PagerDuty unreachable: ${esc(pd.error)}</p>` : "") +
    (rows || '<p class="empty" data-testid="no-pages">Nothing has paged yet.</p>');
}
let lastPagerDuty = "";
async function refreshPagerDuty() {
  try {
    const pd = await (await fetch("/_fake/pagerduty")).json();
    const seen = JSON.stringify(pd);
    if (seen !== lastPagerDuty) { lastPagerDuty = seen; renderPagerDuty(pd); }
  } catch (err) { /* the messages' refresh reports an unreachable fake */ }
}
async function refresh() {
  try {
    const [m, r] = await Promise.all([fetch("/_fake/messages"), fetch("/_fake/responses")]);
    if (!m.ok || !r.ok) throw new Error("HTTP " + (m.ok ? r.status : m.status));
    const fresh = [await m.json(), await r.json()];
    await refreshViews();
    const seen = JSON.stringify(fresh);
    if (seen !== lastSeen || !loaded) {
      lastSeen = seen;
      [messages, responses] = fresh;
      loaded = true;
      render();
      answered();
    }
  } catch (err) {
    setStatus("failed", "fake Slack unreachable: are the sandbox and ./scripts/run running?");
  }
}
function setStatus(kind, text) {
  const status = document.getElementById("status");
  status.className = kind;
  status.dataset.state = kind;
  status.textContent = text;
}
function repliesTo(p) {
  return responses.filter(r => r.key === `${p.user}.${p.channel}.${p.ts}`);
}
// What became of the last click: Powertrip either updates the message (the decision was taken)
// or answers the clicker alone (refused, or nothing to do); both can take a moment.
function answered() {
  if (!pressed) return;
  const name = users[pressed.user] ? users[pressed.user].name : pressed.user;
  const replies = repliesTo(pressed);
  if (replies.length > pressed.replies) {
    const text = plain(replies[replies.length - 1].text || "");
    setStatus("refused", `Not done: Powertrip answered @${name} only: ${text}`);
    pressed = null;
    return;
  }
  const msg = messages.find(m => m.channel === pressed.channel && m.ts === pressed.ts);
  if (msg && msg.updates > pressed.updates) {
    setStatus("done", `Done: Powertrip took “${pressed.label}” from @${name}; message updated`);
    pressed = null;
  }
}
async function loadUsers() {
  const [list, names] = await Promise.all([
    fetch("/_fake/users").then(r => r.json()), fetch("/_fake/channels").then(r => r.json())]);
  channelNames = names;
  users = Object.fromEntries(list.map(u => [u.id, u]));
  const select = document.getElementById("actor");
  const chosen = localStorage.getItem("powertrip-actor");
  select.innerHTML = list.map(u =>
    `<option value="${esc(u.id)}">@${esc(u.name)} (${esc(u.id)})</option>`).join("");
  if (chosen && users[chosen]) select.value = chosen;
  select.onchange = () => {
    localStorage.setItem("powertrip-actor", select.value);
    if (tab === "home") openHome(); else refresh();
  };
  setStatus("", `${list.length} users · watching`);
}
document.addEventListener("click", async ev => {
  const button = ev.target.closest("button.btn");
  if (!button || !button.dataset.action) return;  // not a Block Kit button (a modal's own)
  const confirmSpec = button.dataset.confirm ? JSON.parse(button.dataset.confirm) : null;
  if (confirmSpec && !window.confirm(`${confirmSpec.title.text}\\n\\n${confirmSpec.text.text}`))
    return;
  const user = document.getElementById("actor").value;
  if (button.dataset.view) return pressInView(button, user);
  button.disabled = true;
  const label = button.textContent.trim();
  const [channel, ts] = [button.dataset.channel, button.dataset.ts];
  const msg = messages.find(m => m.channel === channel && m.ts === ts);
  pressed = {user, channel, ts, label, updates: msg ? msg.updates : 0,
    replies: repliesTo({user, channel, ts}).length};
  setStatus("waiting", `@${users[user].name} pressed “${label}”: waiting for Powertrip…`);
  try {
    const answer = await fetch("/_sandbox/click", {method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({user, channel, ts,
        action_id: button.dataset.action, value: button.dataset.value})});
    const result = await answer.json();
    if (!result.ok) {
      pressed = null;
      setStatus("failed",
        `Click not delivered: ${result.error || result.detail || "HTTP " + result.status}`);
    }
  } catch (err) {
    pressed = null;
    setStatus("failed", `Click not delivered: ${err}`);
  } finally {
    button.disabled = false;
    refresh();
  }
});
// A button on the App Home (or a modal): Powertrip answers by publishing the view again.
async function pressInView(button, user) {
  const label = button.textContent.trim();
  const before = JSON.stringify(views.home);
  button.disabled = true;
  setStatus("waiting", `@${nameOf(user)} pressed “${label}”: waiting for Powertrip…`);
  try {
    const answer = await fetch("/_sandbox/click", {method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({user, view_id: button.dataset.view, block_id: button.dataset.block,
        action_id: button.dataset.action, value: button.dataset.value})});
    const result = await answer.json();
    if (!result.ok) {
      setStatus("failed",
        `Click not delivered: ${result.error || result.detail || "HTTP " + result.status}`);
    } else {
      await refresh();
      setStatus("done", JSON.stringify(views.home) !== before
        ? `Done: Powertrip took “${label}” from @${nameOf(user)}; Home tab updated`
        : `Powertrip took “${label}” from @${nameOf(user)}; the Home tab did not change`);
    }
  } catch (err) {
    setStatus("failed", `Click not delivered: ${err}`);
  } finally {
    button.disabled = false;
  }
}
document.getElementById("modal").addEventListener("submit", async ev => {
  ev.preventDefault();
  const user = actor(), values = typed();
  const title = views.modal ? views.modal.title.text : "the modal";
  setStatus("waiting", `@${nameOf(user)} submitted “${title}”: waiting for Powertrip…`);
  try {
    const answer = await fetch("/_sandbox/submit", {method: "POST",
      headers: {"Content-Type": "application/json"}, body: JSON.stringify({user, values})});
    const result = await answer.json();
    if (!result.ok) setStatus("failed",
      `Not submitted: ${result.error || result.detail || "HTTP " + result.status}`);
    else if (result.errors) setStatus("refused",
      `Not done: Powertrip marked the modal: ${Object.values(result.errors).join("; ")}`);
    else setStatus("done", `Done: Powertrip took “${title}” from @${nameOf(user)}`);
  } catch (err) {
    setStatus("failed", `Not submitted: ${err}`);
  }
  refresh();
});
document.getElementById("modal").addEventListener("click", async ev => {
  if (!ev.target.closest("[data-modal=close]")) return;
  ev.stopPropagation();
  await fetch("/_sandbox/close", {method: "POST", headers: {"Content-Type": "application/json"},
    body: JSON.stringify({user: actor()})});
  setStatus("", `@${nameOf(actor())} closed the modal`);
  refresh();
});
for (const t of document.querySelectorAll("nav.tabs button"))
  t.addEventListener("click", () => showTab(t.dataset.tab));
document.getElementById("command-form").addEventListener("submit", async ev => {
  ev.preventDefault();
  const user = document.getElementById("actor").value;
  const typed = document.getElementById("command").value.trim();
  const [command, ...words] = typed.split(/\\s+/);
  setStatus("waiting", `@${users[user].name} typed ${typed}: waiting for Powertrip…`);
  try {
    const answer = await fetch("/_sandbox/command", {method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({user, command, text: words.join(" ")})});
    const result = await answer.json();
    setStatus(result.ok ? "done" : "failed", result.ok
      ? (result.modal ? `Powertrip opened a modal for @${users[user].name}`
        : `Powertrip answered @${users[user].name} (above the messages)`)
      : `Command not delivered: ${result.error || result.detail || "HTTP " + result.status}`);
  } catch (err) {
    setStatus("failed", `Command not delivered: ${err}`);
  }
  refresh();
});
loadUsers().then(refresh);
setInterval(refresh, 700);
refreshPagerDuty();
setInterval(refreshPagerDuty, 1500);
</script>
</body>
</html>
"""
