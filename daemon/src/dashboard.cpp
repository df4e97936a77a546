#include "dashboard.hpp"

namespace currant::daemon {

namespace {

// The token (when the server needs one) is read from the page's fragment,
// "#token=...": browsers never send a fragment to the server, so it stays
// out of logs and Referer headers; the page sends it as a bearer token.
constexpr std::string_view page = R"HTML(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>currant</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; background: #fafafa; }
  h1 { font-size: 1.3em; margin: 0 0 .2em; }
  #status { color: #666; margin-bottom: 1em; }
  #status.down { color: #b00; }
  table { border-collapse: collapse; background: #fff; margin-bottom: 1.2em; }
  th, td { padding: .3em .7em; border-bottom: 1px solid #ddd; text-align: right; }
  th:first-child, td:first-child { text-align: left; }
  #entrypoints td { white-space: nowrap; }
  .charts { display: flex; gap: 1.2em; flex-wrap: wrap; }
  figure { margin: 0; background: #fff; border: 1px solid #ddd; padding: .5em; }
  figcaption { font-weight: 600; margin-bottom: .3em; }
  .legend span { margin-right: 1em; }
  form { margin-top: 1em; }
  #cancel-result, #dead-result { margin-left: .8em; }
  h2 { font-size: 1.1em; margin: 1.2em 0 .4em; }
  #dead th, #dead td { vertical-align: top; text-align: left; }
  #dead td:last-child { white-space: nowrap; }
  #dead tr.group td { background: #f0f0f0; font-weight: 600; text-align: left; }
  #dead pre { margin: 0; max-width: 46em; max-height: 8em; overflow: auto; white-space: pre-wrap; text-align: left; color: #900; }
  #dead code { color: #555; }
  #dead button { margin-left: .3em; }
  #dead tr.group td:last-child { text-align: right; }
  #jobs td { text-align: left; }
  #jobs-result { margin-left: .8em; }
  .pager { margin: -.8em 0 1em; }
  .pager span { margin: 0 .6em; color: #555; }
  #dead-confirm { margin: .4em 0; padding: .4em .7em; background: #fff3f3; border: 1px solid #d99; display: inline-block; }
  #dead-confirm button { margin-left: .5em; }
  #dead-confirm[hidden] { display: none; }
</style>
</head>
<body>
<h1>currant: <span id="queue">…</span></h1>
<div id="status">connecting…</div>
<table id="entrypoints">
  <thead><tr><th>entrypoint</th><th>durability</th><th>queued</th><th>delayed</th><th>picked</th>
  <th>enqueued/s</th><th>completed/s</th><th>successful</th><th>failed</th><th>retried</th><th>canceled</th>
  <th>mirror lag ms</th><th title="time from enqueue to pick: 99% of jobs waited at most this (bucket bound)">wait p99</th>
  <th title="time from pick to ack or fail: 99% of jobs ran at most this (bucket bound)">run p99</th></tr></thead>
  <tbody></tbody>
</table>
<div class="charts">
  <figure><figcaption>Depth (queued + delayed + picked)</figcaption><canvas id="depth" width="520" height="220"></canvas>
    <div class="legend" id="depth-legend"></div></figure>
  <figure><figcaption>Completions per second</figcaption><canvas id="rate" width="520" height="220"></canvas>
    <div class="legend" id="rate-legend"></div></figure>
</div>
<h2>Failed jobs <span id="dead-count"></span></h2>
<table id="dead">
  <thead><tr><th>job id</th><th>attempts</th><th>died</th><th>last error</th><th>payload</th><th></th></tr></thead>
  <tbody></tbody>
</table>
<div class="pager" id="dead-pager"><button type="button" id="dead-prev">← Previous</button><span id="dead-page"></span><button type="button" id="dead-next">Next →</button></div>
<div id="dead-confirm" hidden><span id="dead-confirm-text"></span><button type="button" id="dead-confirm-yes">Purge all</button><button type="button" id="dead-confirm-no">Keep them</button></div>
<div><span id="dead-result"></span></div>
<form id="cancel">
  <label>Cancel a job (queued or running): <input id="cancel-id" name="id" size="22" placeholder="job id"></label>
  <button type="submit">Cancel</button><span id="cancel-result"></span>
</form>
<h2>Queued and running jobs <span id="jobs-count"></span></h2>
<label>Entrypoint: <select id="jobs-entrypoint"><option value="">every entrypoint</option></select></label>
<table id="jobs">
  <thead><tr><th>job id</th><th>entrypoint</th><th>status</th><th>priority</th><th>attempts</th><th>enqueued</th><th></th></tr></thead>
  <tbody></tbody>
</table>
<div class="pager" id="jobs-pager"><button type="button" id="jobs-prev">← Previous</button><span id="jobs-page"></span><button type="button" id="jobs-next">Next →</button></div>
<div><span id="jobs-result"></span></div>
<script>
"use strict";
const token = new URLSearchParams(location.hash.slice(1)).get("token");
const headers = token ? { Authorization: "Bearer " + token } : {};
const keep = 300;                     // points per entrypoint: five minutes of one a second
const series = new Map();             // entrypoint -> [{t, depth, enqueued, completed}] (totals)
const colors = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];

// A quantile's bucket bound (seconds, null, or "+Inf") as text.
function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds === "+Inf") return ">\u00a010\u00a0s";  // no-break spaces: one line per cell
  if (seconds < 1e-3) return `≤\u00a0${(seconds * 1e6).toFixed(seconds < 1e-5 ? 1 : 0)}\u00a0µs`;
  if (seconds < 1) return `≤\u00a0${(seconds * 1e3).toFixed(seconds < 1e-2 ? 1 : 0)}\u00a0ms`;
  return `≤\u00a0${seconds.toFixed(1)}\u00a0s`;
}

function cell(row, text) { const td = document.createElement("td"); td.textContent = text; row.appendChild(td); }

function record(time, name, depth, enqueued, completed) {
  if (!series.has(name)) series.set(name, []);
  const points = series.get(name);
  if (points.length && points[points.length - 1].t >= time) return;
  points.push({ t: time, depth, enqueued, completed });
  if (points.length > keep) points.shift();
}

// Per second between a point and the one before it (null for the first).
function rate(points, k, field) {
  if (k === 0) return null;
  return Math.max(0, points[k][field] - points[k - 1][field]) / Math.max(1e-3, points[k].t - points[k - 1].t);
}

function draw(canvasId, legendId, value) {
  const canvas = document.getElementById(canvasId), g = canvas.getContext("2d");
  g.clearRect(0, 0, canvas.width, canvas.height);
  let top = 1, first = Infinity, last = -Infinity;
  for (const points of series.values()) points.forEach((p, k) => {
    const v = value(points, k); if (v !== null) top = Math.max(top, v);
    first = Math.min(first, p.t); last = Math.max(last, p.t);
  });
  const span = Math.max(1, last - first), left = 52, bottom = canvas.height - 18;
  g.strokeStyle = "#ccc"; g.fillStyle = "#666"; g.font = "11px sans-serif";
  g.beginPath(); g.moveTo(left, 4); g.lineTo(left, bottom); g.lineTo(canvas.width - 4, bottom); g.stroke();
  g.fillText(top.toFixed(top < 10 ? 1 : 0), 2, 12); g.fillText("0", 2, bottom);
  g.fillText("last " + span.toFixed(0) + " s", canvas.width - 70, canvas.height - 4);
  const legend = document.getElementById(legendId); legend.textContent = "";
  let i = 0;
  for (const [name, points] of series) {
    const color = colors[i++ % colors.length];
    g.strokeStyle = color; g.lineWidth = 2; g.beginPath();
    let started = false;
    points.forEach((p, k) => {
      const v = value(points, k); if (v === null) return;
      const x = left + (p.t - first) / span * (canvas.width - left - 6), y = bottom - v / top * (bottom - 6);
      if (started) g.lineTo(x, y); else g.moveTo(x, y);
      started = true;
    });
    g.stroke();
    const label = document.createElement("span"); label.style.color = color; label.textContent = "■ " + name;
    legend.appendChild(label);
  }
}

async function get(path) {
  const response = await fetch(path, { headers, cache: "no-store" });
  if (!response.ok) {
    const error = new Error((await response.json()).error || response.statusText);
    error.status = response.status;
    throw error;
  }
  return response.json();
}

async function refresh() {
  try {
    const now = await get("api/stats");
    document.getElementById("queue").textContent = now.queue;
    document.title = "currant: " + now.queue;
    const status = document.getElementById("status");
    status.className = now.mirror.connected ? "" : "down";
    status.textContent = `${now.slots - now.free_slots} of ${now.slots} slots in use · ${now.participants} attached · ` +
      (now.mirror.connected ? `mirrored to PostgreSQL (${now.mirror.transitions} transitions)` : "PostgreSQL not reached") +
      " · " + new Date(now.time * 1000).toLocaleTimeString();
    const body = document.querySelector("#entrypoints tbody"); body.textContent = "";
    for (const e of now.entrypoints) {
      record(now.time, e.name, e.queued + e.delayed + e.picked, e.enqueued, e.successful + e.failed + e.canceled);
      const points = series.get(e.name), k = points.length - 1;
      const row = document.createElement("tr");
      [e.name, e.durability, e.queued, e.delayed, e.picked, (rate(points, k, "enqueued") ?? 0).toFixed(1),
       (rate(points, k, "completed") ?? 0).toFixed(1), e.successful, e.failed, e.retried, e.canceled,
       (e.mirror_lag_seconds * 1000).toFixed(1), duration(e.wait_p99_seconds), duration(e.run_p99_seconds)]
        .forEach(v => cell(row, v));
      body.appendChild(row);
    }
    showEntrypointChoices(now.entrypoints.map(e => e.name));
    draw("depth", "depth-legend", (points, k) => points[k].depth);
    draw("rate", "rate-legend", (points, k) => rate(points, k, "completed"));
    await refreshDead();
    await refreshJobs();
  } catch (error) {
    const status = document.getElementById("status");
    status.className = "down"; status.textContent = "no answer from currantd: " + error.message;
  }
}

// Pages of a list: `offset` jobs skipped, `size` shown. The count reads
// "(N)" for a list on one page, else the range shown and the total if the
// answer has one (else "of more"); Previous and Next
// move a page. A page that came back empty (its jobs were purged,
// requeued or finished) moves back to the last page with any.
const deadPage = { offset: 0, size: 200 }, jobsPage = { offset: 0, size: 50 };
function showPage(name, page, count, more, total) {
  const paged = page.offset > 0 || more;
  const of = total !== undefined ? ` of ${total}` : more ? " of more" : "";
  document.getElementById(name + "-count").textContent = !paged ? `(${count})`
    : count ? `(${page.offset + 1}–${page.offset + count}${of})` : "";
  document.getElementById(name + "-pager").hidden = !paged;
  document.getElementById(name + "-page").textContent = `page ${Math.floor(page.offset / page.size) + 1}`;
  document.getElementById(name + "-prev").disabled = page.offset === 0;
  document.getElementById(name + "-next").disabled = !more;
  return paged;
}
async function getPage(what, page, entrypoint) {
  const only = entrypoint ? `&entrypoint=${encodeURIComponent(entrypoint)}` : "";
  for (;;) {
    const answer = await get(`api/${what}?limit=${page.size}&offset=${page.offset}${only}`);
    if (answer[what].length || page.offset === 0) return answer;
    page.offset = Math.max(0, page.offset - page.size);
  }
}

// The failed-jobs table is rebuilt only when the list changed, so a button
// stays the same element between a press and its release.
let deadShown = null;
async function refreshDead() {
  const answer = await getPage("dead", deadPage);
  const text = JSON.stringify(answer);
  if (text === deadShown) return;
  deadShown = text;
  const paged = showPage("dead", deadPage, answer.dead.length, answer.more, answer.total);
  const body = document.querySelector("#dead tbody"); body.textContent = "";
  const groups = new Map();           // entrypoint -> its dead jobs, oldest first
  for (const job of answer.dead) {
    if (!groups.has(job.entrypoint)) groups.set(job.entrypoint, []);
    groups.get(job.entrypoint).push(job);
  }
  if (!groups.size) {
    const row = document.createElement("tr"); row.className = "group";
    const td = document.createElement("td"); td.colSpan = 6; td.textContent = "none"; row.appendChild(td);
    body.appendChild(row);
  }
  for (const [name, jobs] of groups) {
    const head = document.createElement("tr"); head.className = "group";
    const td = document.createElement("td"); td.colSpan = 5;
    td.textContent = `${name}: ${jobs.length} failed${paged ? " on this page" : ""}`;
    head.appendChild(td);
    // Both act on every dead job of the entrypoint, on any page.
    const all = document.createElement("td");
    for (const [action, label] of [["requeue-all", "Requeue all"], ["purge-all", "Purge all"]]) {
      const button = document.createElement("button");
      button.type = "button"; button.className = action; button.dataset.action = action;
      button.dataset.entrypoint = name; button.textContent = label; all.appendChild(button);
    }
    head.appendChild(all); body.appendChild(head);
    for (const job of jobs) {
      const row = document.createElement("tr"); row.dataset.id = job.id_text;
      cell(row, job.id_text);
      cell(row, `${job.attempts} of ${job.max_attempts}`);
      cell(row, new Date(job.died_at * 1000).toLocaleString());
      // textContent, never innerHTML: the error and payload are any bytes a client sent.
      const error = document.createElement("td"), pre = document.createElement("pre");
      pre.textContent = job.error + (job.error_truncated ? " …(cut)" : ""); error.appendChild(pre); row.appendChild(error);
      const payload = document.createElement("td"), code = document.createElement("code");
      code.textContent = job.payload_preview; payload.appendChild(code); row.appendChild(payload);
      const actions = document.createElement("td");
      for (const [action, label] of [["requeue", "Requeue"], ["purge", "Purge"]]) {
        const button = document.createElement("button");
        button.type = "button"; button.className = action; button.dataset.action = action; button.dataset.id = job.id_text;
        button.textContent = label; actions.appendChild(button);
      }
      row.appendChild(actions); body.appendChild(row);
    }
  }
}

// What a cancel answered, as a sentence.
function cancelText(id, answer) {
  return answer.error ? answer.error
    : answer.outcome === "canceled" ? `job ${id} canceled`
    : answer.outcome === "requested" ? `job ${id} is running: cancel requested, its worker was told to stop`
    : `job ${id} is ${answer.status}: not canceled`;
}

// The job list's entrypoint filter: one choice per entrypoint the stats
// name, added as they appear; the choice stays while the page refreshes.
function showEntrypointChoices(names) {
  const select = document.getElementById("jobs-entrypoint");
  const have = new Set([...select.options].map(option => option.value));
  for (const name of names)
    if (!have.has(name)) {
      const option = document.createElement("option");
      option.value = name; option.textContent = name; select.appendChild(option);
    }
}
function chooseEntrypoint(name) {
  document.getElementById("jobs-entrypoint").value = name;
  jobsPage.offset = 0; jobsShown = null;
}
document.getElementById("jobs-entrypoint").addEventListener("change", event => {
  chooseEntrypoint(event.target.value); refresh();
});

// Queued and picked jobs (50 a page, running ones first, then the oldest),
// each with a Cancel button; rebuilt only when the list changed, like the
// dead jobs.
// jobsAsked numbers the requests: an answer to one sent before a newer
// one (a choice of entrypoint or page meanwhile) is dropped, not drawn.
let jobsShown = null, jobsAsked = 0;
async function refreshJobs() {
  const asked = ++jobsAsked;
  let answer;
  try {
    answer = await getPage("jobs", jobsPage, document.getElementById("jobs-entrypoint").value);
  } catch (error) {
    if (error.status !== 404) throw error;
    chooseEntrypoint(""); // the chosen entrypoint is gone: every entrypoint again
    return;
  }
  if (asked !== jobsAsked) return;
  const text = JSON.stringify(answer);
  if (text === jobsShown) return;
  jobsShown = text;
  showPage("jobs", jobsPage, answer.jobs.length, answer.more, answer.total);
  const body = document.querySelector("#jobs tbody"); body.textContent = "";
  if (!answer.jobs.length) {
    const row = document.createElement("tr"), td = document.createElement("td");
    td.colSpan = 7; td.textContent = "none"; row.appendChild(td); body.appendChild(row);
  }
  const now = Date.now() / 1000;
  for (const job of answer.jobs) {
    const row = document.createElement("tr"); row.dataset.id = job.id_text;
    cell(row, job.id_text);
    cell(row, job.entrypoint);
    cell(row, job.status === "picked" ? (job.cancel_requested ? "running, cancel requested" : "running")
              : job.execute_after > now ? "delayed" : "queued");
    cell(row, job.priority);
    cell(row, job.attempts);
    cell(row, new Date(job.enqueued_at * 1000).toLocaleTimeString());
    const actions = document.createElement("td"), button = document.createElement("button");
    button.type = "button"; button.className = "cancel"; button.dataset.id = job.id_text;
    button.textContent = "Cancel"; button.disabled = job.cancel_requested;
    actions.appendChild(button); row.appendChild(actions); body.appendChild(row);
  }
}

document.querySelector("#jobs tbody").addEventListener("click", async event => {
  const button = event.target.closest("button.cancel");
  if (!button) return;
  button.disabled = true;
  const id = button.dataset.id, result = document.getElementById("jobs-result");
  try {
    const response = await fetch("api/cancel?id=" + encodeURIComponent(id),
                                 { method: "POST", headers: { ...headers, "X-Currant-Request": "1" } });
    result.textContent = cancelText(id, await response.json());
  } catch (error) {
    result.textContent = `cancel of job ${id} failed: ${error.message}`;
  }
  jobsShown = null;
  refresh();
});

// A requeue, purge, requeue-all or purge-all: POSTed with the token and
// the X-Currant-Request header, like every change.
async function deadAction(button, action, id, entrypoint) {
  const result = document.getElementById("dead-result");
  const target = action.endsWith("-all")
    ? `api/${action.slice(0, -4)}?all=1&entrypoint=${encodeURIComponent(entrypoint)}`
    : `api/${action}?id=${encodeURIComponent(id)}`;
  if (button) button.disabled = true;
  try {
    const response = await fetch(target, { method: "POST", headers: { ...headers, "X-Currant-Request": "1" } });
    const answer = await response.json();
    result.textContent = answer.error ? answer.error
      : action === "requeue-all" ? `${answer.requeued} failed jobs of ${entrypoint} requeued`
      : action === "purge-all" ? `${answer.purged} failed jobs of ${entrypoint} purged`
      : action === "requeue" ? `job ${id} requeued: ${answer.status}` : `job ${id} purged`;
  } catch (error) {
    result.textContent = `${action} of ${id ? "job " + id : entrypoint} failed: ${error.message}`;
  }
  if (button) button.disabled = false;
  deadShown = null;
  refresh();
}

// Purge and Purge all ask first (a purge cannot be undone): the question
// stays outside the table, which a refresh may rebuild. purgeAsked: the
// purge waiting for an answer, {action, id, entrypoint}.
let purgeAsked = null;
function askPurge(action, id, entrypoint) {
  purgeAsked = { action, id, entrypoint };
  const all = action === "purge-all";
  document.getElementById("dead-confirm-text").textContent = all
    ? `Purge every failed job of ${entrypoint}? They cannot be requeued afterwards.`
    : `Purge failed job ${id}? It cannot be requeued afterwards.`;
  document.getElementById("dead-confirm-yes").textContent = all ? "Purge all" : "Purge";
  document.getElementById("dead-confirm-no").textContent = all ? "Keep them" : "Keep it";
  document.getElementById("dead-confirm").hidden = false;
}
document.getElementById("dead-confirm-yes").addEventListener("click", () => {
  const asked = purgeAsked;
  purgeAsked = null;
  document.getElementById("dead-confirm").hidden = true;
  if (asked !== null) deadAction(null, asked.action, asked.id, asked.entrypoint);
});
document.getElementById("dead-confirm-no").addEventListener("click", () => {
  purgeAsked = null;
  document.getElementById("dead-confirm").hidden = true;
  document.getElementById("dead-result").textContent = "nothing purged";
});

document.querySelector("#dead tbody").addEventListener("click", event => {
  const button = event.target.closest("button[data-action]");
  if (!button) return;
  const { action, id, entrypoint } = button.dataset;
  if (action === "purge-all" || action === "purge") askPurge(action, id, entrypoint);
  else deadAction(button, action, id, entrypoint);
});

for (const [name, page, shown] of [["dead", deadPage, () => { deadShown = null; }],
                                   ["jobs", jobsPage, () => { jobsShown = null; }]]) {
  document.getElementById(name + "-prev").addEventListener("click", () => {
    page.offset = Math.max(0, page.offset - page.size); shown(); refresh();
  });
  document.getElementById(name + "-next").addEventListener("click", () => {
    page.offset += page.size; shown(); refresh();
  });
}

document.getElementById("cancel").addEventListener("submit", async event => {
  event.preventDefault();
  const id = document.getElementById("cancel-id").value.trim();
  const result = document.getElementById("cancel-result");
  const response = await fetch("api/cancel?id=" + encodeURIComponent(id),
                               { method: "POST", headers: { ...headers, "X-Currant-Request": "1" } });
  result.textContent = cancelText(id, await response.json());
  refresh();
});

// The daemon's own history first (the last minutes), then a sample a second.
get("api/history").then(h => h.samples.forEach(sample => sample.entrypoints.forEach(
  e => record(sample.time, e.name, e.depth, e.enqueued, e.completed)))).catch(() => {}).finally(() => {
  refresh();
  setInterval(refresh, 1000);
});
</script>
</body>
</html>
)HTML";

} // namespace

std::string_view dashboard_html() noexcept { return page; }

} // namespace currant::daemon
