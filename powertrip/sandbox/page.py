"""The sandbox page served by the fake Slack at `/`: every DM and channel message rendered the way
Slack renders its blocks (sections, fields, context, buttons, threads), and buttons that press as
the Slack user chosen at the top. Plain HTML and JavaScript, no build step, no network."""

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
  #status { font-size:13px; opacity:.85; }
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
</style>
</head>
<body>
<header>
  <h1>Powertrip sandbox</h1>
  <label>Act as Slack user
    <select id="actor" data-testid="actor"></select>
  </label>
  <span id="status" data-testid="status">loading…</span>
</header>
<main id="conversations"><p class="empty">No messages yet: post a webhook.</p></main>
<script>
const EMOJI = {key:"\\u{1F511}", hourglass:"\\u231B", rotating_light:"\\u{1F6A8}",
  white_check_mark:"\\u2705", shield:"\\u{1F6E1}\\uFE0F", no_entry:"\\u26D4",
  warning:"\\u26A0\\uFE0F", mag:"\\u{1F50D}"};
let users = {}, messages = [], responses = [], lastSeen = "";

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
    return `<span class="mention">#${esc(name || id)}</span>`;
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
    .replace(/:([a-z0-9_+-]+):/g, (all, name) => EMOJI[name] || all)
    .replace(/\\n/g, "<br>")
    .replace(/\\u0000(\\d+)\\u0000/g, (all, i) => "<pre>" + blocks[Number(i)] + "</pre>");
}
function text(obj) {
  if (!obj) return "";
  return obj.type === "plain_text" ? esc(obj.text) : mrkdwn(obj.text || "");
}
function block(b, msg) {
  switch (b.type) {
    case "section": {
      let html = b.text ? `<div class="section">${text(b.text)}</div>` : "";
      if (b.fields) html += `<div class="fields">${b.fields.map(f =>
        `<div>${text(f)}</div>`).join("")}</div>`;
      return html;
    }
    case "header": return `<div class="section"><b>${text(b.text)}</b></div>`;
    case "divider": return "<hr>";
    case "context": return `<div class="context">${(b.elements || []).map(e =>
        e.type === "image" ? "" : text(e)).join(" ")}</div>`;
    case "actions": return `<div class="actions">${(b.elements || []).map(e =>
        e.type !== "button" ? "" :
        `<button class="btn ${esc(e.style || "")}" data-action="${esc(e.action_id)}"
          data-value="${esc(e.value || "")}" data-channel="${esc(msg.channel)}"
          data-ts="${esc(msg.ts)}" data-confirm="${esc(e.confirm ? JSON.stringify(e.confirm) : "")}"
          >${esc(e.text.text)}</button>`).join("")}</div>`;
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
  return `# ${esc(channel)} <small>channel</small>`;
}
function render() {
  const byChannel = {};
  for (const m of messages) (byChannel[m.channel] = byChannel[m.channel] || []).push(m);
  const channels = Object.keys(byChannel).sort((a, b) =>
    (a[0] === "D") - (b[0] === "D") || a.localeCompare(b));
  const root = document.getElementById("conversations");
  if (!channels.length) {
    root.innerHTML = '<p class="empty">No messages yet: post a webhook.</p>';
    return;
  }
  root.innerHTML = channels.map(channel => {
    const all = byChannel[channel].sort((a, b) => Number(a.ts) - Number(b.ts));
    const top = all.filter(m => !m.thread_ts || m.thread_ts === m.ts || m.reply_broadcast);
    const replies = ts => all.filter(m => m.thread_ts === ts && m.ts !== ts);
    return `<section class="conv" data-testid="conversation" data-channel="${esc(channel)}">
      <h2>${title(channel)}</h2>${top.map(m =>
        message(m, m.thread_ts && m.thread_ts !== m.ts ? [] : replies(m.ts))).join("")}</section>`;
  }).join("");
}
async function refresh() {
  try {
    const [m, r] = await Promise.all([fetch("/_fake/messages"), fetch("/_fake/responses")]);
    const fresh = [await m.json(), await r.json()];
    const seen = JSON.stringify(fresh);
    if (seen !== lastSeen) {
      lastSeen = seen;
      [messages, responses] = fresh;
      render();
    }
  } catch (err) {
    document.getElementById("status").textContent = "fake Slack unreachable";
  }
}
async function loadUsers() {
  const list = await (await fetch("/_fake/users")).json();
  users = Object.fromEntries(list.map(u => [u.id, u]));
  const select = document.getElementById("actor");
  const chosen = localStorage.getItem("powertrip-actor");
  select.innerHTML = list.map(u =>
    `<option value="${esc(u.id)}">@${esc(u.name)} (${esc(u.id)})</option>`).join("");
  if (chosen && users[chosen]) select.value = chosen;
  select.onchange = () => localStorage.setItem("powertrip-actor", select.value);
  document.getElementById("status").textContent = `${list.length} users · watching`;
}
document.addEventListener("click", async ev => {
  const button = ev.target.closest("button.btn");
  if (!button) return;
  const confirmSpec = button.dataset.confirm ? JSON.parse(button.dataset.confirm) : null;
  if (confirmSpec && !window.confirm(`${confirmSpec.title.text}\\n\\n${confirmSpec.text.text}`))
    return;
  const user = document.getElementById("actor").value;
  button.disabled = true;
  const status = document.getElementById("status");
  try {
    const answer = await fetch("/_sandbox/click", {method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({user, channel: button.dataset.channel, ts: button.dataset.ts,
        action_id: button.dataset.action, value: button.dataset.value})});
    const result = await answer.json();
    status.textContent = result.ok
      ? `${button.textContent.trim()} sent as @${users[user].name}`
      : `click not accepted: ${result.error || result.detail || "HTTP " + result.status}`;
  } finally {
    button.disabled = false;
    refresh();
  }
});
loadUsers().then(refresh);
setInterval(refresh, 700);
</script>
</body>
</html>
"""
