"use strict";
// Baton's read-only web UI: every cluster's topology as an SVG tree (nodes coloured by state), the
// current problems (replication-analysis), recent recoveries (audit-recovery) and live events (SSE).
// Only GET requests to this same API: the browser's credentials (basic auth) apply to all of them.

const API = "../api/";
const REFRESH_MS = 10000;
const MAX_EVENTS = 50;
const EVENT_TYPES = [
  "detection.active", "detection.changed", "detection.cleared",
  "recovery.registered", "recovery.skipped", "recovery.resumed", "recovery.planned", "recovery.step",
  "recovery.completed", "recovery.failed", "recovery.fenced",
  "kv.published", "kv.failed", "kv.stale", "hooks.on-failure-detection",
  "instance.forgotten", "downtime.begin", "downtime.end", "candidate.registered",
  "recoveries.enabled", "recoveries.disabled",
];
const STATES = {
  ok: "ok", lagging: "lagging", nonreplicating: "not replicating",
  unreachable: "unreachable", downtimed: "downtimed",
};
const NODE_W = 220, NODE_H = 60, GAP_X = 22, GAP_Y = 38, PAD = 8;
const SVG_NS = "http://www.w3.org/2000/svg";

let refreshTimer = null;
let quickTimer = null;
let problemCount = 0;  // problems in the last replication-analysis: the header badge says so

// ---- DOM helpers (text only: nothing from the API is ever parsed as HTML) --------------------------
function build(node, attrs, children) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value !== undefined && value !== null && value !== false) node.setAttribute(name, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}
const el = (tag, attrs, ...children) => build(document.createElement(tag), attrs, children);
const svg = (tag, attrs, ...children) => build(document.createElementNS(SVG_NS, tag), attrs, children);
const $ = (id) => document.getElementById(id);

function replace(target, ...children) {
  target.replaceChildren(...children.flat().filter(Boolean));
}

// ---- data --------------------------------------------------------------------------------------
async function getJSON(path) {
  const resp = await fetch(API + path, { headers: { Accept: "application/json" }, credentials: "same-origin" });
  if (!resp.ok) throw new Error(`${path}: HTTP ${resp.status}`);
  return resp.json();
}

const keyText = (k) => (k && (k.Hostname || k.host) ? `${k.Hostname || k.host}:${k.Port || k.port}` : "");

function stateOf(inst) {
  const problems = inst.Problems || [];
  if (inst.IsDowntimed) return "downtimed";
  if (!inst.IsLastCheckValid || problems.includes("unreachable")) return "unreachable";
  if (problems.includes("not_replicating")) return "nonreplicating";
  if (problems.includes("replication_lag")) return "lagging";
  return "ok";
}

function time(text, withDate) {
  if (!text) return "";
  const t = new Date(text);
  if (Number.isNaN(t.getTime())) return text;
  return withDate ? t.toLocaleString() : t.toLocaleTimeString();
}

// ---- topology tree ---------------------------------------------------------------------------------
// Leaves take consecutive columns, a parent sits centred over its children, depth is the row.
function layout(instances) {
  const byKey = new Map(instances.map((i) => [keyText(i.Key), i]));
  const children = new Map();
  const roots = [];
  for (const inst of instances) {
    const master = keyText(inst.MasterKey);
    if (master && master !== keyText(inst.Key) && byKey.has(master)) {
      if (!children.has(master)) children.set(master, []);
      children.get(master).push(inst);
    } else {
      roots.push(inst);
    }
  }
  const byName = (a, b) => keyText(a.Key).localeCompare(keyText(b.Key), undefined, { numeric: true });
  const nodes = [];
  const seen = new Set();
  let column = 0;
  function place(inst, depth) {
    const key = keyText(inst.Key);
    if (seen.has(key)) return null;
    seen.add(key);
    const kids = (children.get(key) || []).sort(byName).map((c) => place(c, depth + 1)).filter(Boolean);
    const x = kids.length ? (kids[0].x + kids[kids.length - 1].x) / 2 : column++;
    const node = { inst, depth, x, kids };
    nodes.push(node);
    return node;
  }
  roots.sort((a, b) => Number(a.ReadOnly) - Number(b.ReadOnly) || byName(a, b)).forEach((r) => place(r, 0));
  [...instances].sort(byName).forEach((i) => place(i, 0)); // a co-master ring has no outside master
  return nodes;
}

function nodeFacts(inst) {
  const lag = inst.ReplicationLagSeconds;
  const facts = [
    (inst.Version || "?").split("-")[0],
    inst.ReadOnly ? "ro" : "rw",
    keyText(inst.MasterKey) ? `lag ${lag && lag.Valid ? `${lag.Int64}s` : "null"}` : "master",
  ];
  if (inst.DataCenter) facts.push(inst.DataCenter);
  return facts.join(" · ");
}

function tooltip(inst, state) {
  const lines = [keyText(inst.Key), `state: ${STATES[state]}`, `version: ${inst.Version || "?"}`];
  if (keyText(inst.MasterKey)) lines.push(`master: ${keyText(inst.MasterKey)}`);
  if (inst.ExecutedGtidSet) lines.push(`gtid: ${inst.ExecutedGtidSet}`);
  if ((inst.Problems || []).length) lines.push(`problems: ${inst.Problems.join(", ")}`);
  if (inst.LastIOError) lines.push(`io error: ${inst.LastIOError}`);
  if (inst.LastSQLError) lines.push(`sql error: ${inst.LastSQLError}`);
  if (inst.BatonLastProbeError) lines.push(`probe error: ${inst.BatonLastProbeError}`);
  if (inst.IsDowntimed) lines.push(`downtimed by ${inst.DowntimeOwner}: ${inst.DowntimeReason}`);
  return lines.join("\n");
}

function clip(text, max) {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

function drawTree(instances) {
  const nodes = layout(instances);
  const columns = Math.max(0, ...nodes.map((n) => n.x)) + 1;
  const rows = Math.max(0, ...nodes.map((n) => n.depth)) + 1;
  const width = PAD * 2 + columns * NODE_W + (columns - 1) * GAP_X;
  const height = PAD * 2 + rows * NODE_H + (rows - 1) * GAP_Y;
  const at = (n) => ({ x: PAD + n.x * (NODE_W + GAP_X), y: PAD + n.depth * (NODE_H + GAP_Y) });
  const edges = [];
  for (const n of nodes) {
    const from = at(n);
    for (const kid of n.kids) {
      const to = at(kid);
      const x1 = from.x + NODE_W / 2, y1 = from.y + NODE_H, x2 = to.x + NODE_W / 2, y2 = to.y;
      const mid = (y1 + y2) / 2;
      edges.push(svg("path", { class: "edge", d: `M${x1},${y1} C${x1},${mid} ${x2},${mid} ${x2},${y2}` }));
    }
  }
  const boxes = nodes.map((n) => {
    const { x, y } = at(n);
    const state = stateOf(n.inst);
    const key = keyText(n.inst.Key);
    return svg("g", { class: `node ${state}`, "data-key": key, "data-state": state, transform: `translate(${x},${y})` },
      svg("title", {}, tooltip(n.inst, state)),
      svg("rect", { width: NODE_W, height: NODE_H, rx: 6 }),
      svg("text", { x: 10, y: 19, class: "key" }, clip(key, 30)),
      svg("text", { x: 10, y: 36, class: "facts" }, clip(nodeFacts(n.inst), 34)),
      svg("text", { x: 10, y: 52, class: "state" }, STATES[state]));
  });
  return svg("svg", { class: "tree", width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": "replication topology" }, edges, boxes);
}

// ---- sections --------------------------------------------------------------------------------------
function problemItem(p) {
  return el("li", { class: p.IsActionableRecovery ? "bad" : "warn" },
    el("strong", {}, p.Analysis), " on ", el("code", {}, keyText(p.AnalyzedInstanceKey)),
    el("div", { class: "muted" }, p.Description || ""));
}

function clusterCard(info, instances, problems) {
  const alias = info.ClusterAlias && info.ClusterAlias !== info.ClusterName ? info.ClusterAlias : "";
  const recovery = info.HasAutomatedMasterRecovery ? "automated recovery" : "no automated recovery";
  return el("article", { class: "cluster", "data-cluster": info.ClusterName },
    el("h2", {}, alias || info.ClusterName, alias ? el("span", { class: "muted" }, ` ${info.ClusterName}`) : null),
    el("p", { class: "muted" },
      `${info.CountInstances} instances · max lag ${info.HeuristicLag}s · ${recovery}`),
    el("div", { class: "scroll" }, drawTree(instances)),
    problems.length ? el("ul", { class: "list" }, problems.map(problemItem)) : null);
}

function recoveryItem(r) {
  const a = r.AnalysisEntry || {};
  const cluster = (a.ClusterDetails || {}).ClusterAlias || (a.ClusterDetails || {}).ClusterName || "";
  const status = r.IsActive ? "active" : r.IsSuccessful ? "succeeded" : "failed";
  const successor = keyText(r.SuccessorKey);
  return el("li", { class: `recovery ${status}` },
    el("strong", {}, a.Analysis || "recovery"), ` ${cluster} `, el("span", { class: "pill" }, status),
    el("div", { class: "muted" }, `${keyText(a.AnalyzedInstanceKey)}${successor ? ` → ${successor}` : ""}`,
      ` · ${time(r.RecoveryStartTimestamp, true)}`, r.Acknowledged ? " · acknowledged" : ""));
}

function summarize(ev) {
  const d = ev.data || {};
  if (ev.type.startsWith("detection.")) {
    const f = d.finding || {};
    return `${f.code || ""} on ${keyText(f.instance) || ev.instance || ev.cluster || ""}`;
  }
  if (ev.type === "recovery.step") return `${(d.step || {}).name || ""} ${(d.step || {}).outcome || ""}`;
  if (ev.type.startsWith("recovery.")) {
    const r = d.record || {};
    return [r.alias || ev.cluster, r.code, r.outcome, r.reason].filter(Boolean).join(" · ");
  }
  if (ev.type.startsWith("kv.")) return `${d.dc || ""}: ${d.cluster || ""} → ${d.value || d.error || ""}`;
  return [ev.cluster, ev.instance].filter(Boolean).join(" ");
}

async function refresh() {
  clearTimeout(refreshTimer);
  try {
    const [infos, analysis, recoveries] = await Promise.all([
      getJSON("clusters-info"), getJSON("replication-analysis"), getJSON("audit-recovery")]);
    const members = await Promise.all(
      infos.map((i) => getJSON(`cluster/${encodeURIComponent(i.ClusterName)}`).catch(() => [])));
    const problems = analysis.Details || [];
    // what the badge counts: every analysis entry, plus every instance that is not ok (unreachable,
    // not replicating, lagging) that no entry names
    const named = new Set(problems.map((p) => keyText(p.AnalyzedInstanceKey)));
    const troubled = members.flat().filter((i) => !["ok", "downtimed"].includes(stateOf(i)));
    problemCount = problems.length + troubled.filter((i) => !named.has(keyText(i.Key))).length;
    const problemsOf = (name) => problems.filter((p) => (p.ClusterDetails || {}).ClusterName === name);
    const cards = infos.map((info, i) => clusterCard(info, members[i], problemsOf(info.ClusterName)));
    replace($("clusters"), cards.length ? cards : el("p", { class: "muted" }, "No clusters known yet."));
    replace($("problems"), problems.length ? problems.map(problemItem) : el("li", { class: "muted" }, "none"));
    replace($("recoveries"), recoveries.length
      ? recoveries.slice(0, 10).map(recoveryItem) : el("li", { class: "muted" }, "none"));
    $("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (err) {
    $("updated").textContent = `update failed: ${err.message}`;
  }
  refreshHealth();
  refreshTimer = setTimeout(refresh, REFRESH_MS);
}

async function refreshHealth() {
  try {
    const body = await (await fetch(`${API}health`, { credentials: "same-origin" })).json();
    // "healthy" only when Baton is and no cluster has a problem: a DeadMaster beside a green badge lies.
    const healthy = Boolean((body.Details || {}).Healthy);
    const troubled = problemCount > 0;
    $("health").textContent = !healthy ? "Baton unhealthy"
      : troubled ? `${problemCount} problem${problemCount === 1 ? "" : "s"}` : "healthy";
    $("health").className = `pill ${healthy && !troubled ? "ok" : "unreachable"}`;
    const leader = (body.Details || {}).RecoveryLeader;
    $("leader").textContent = leader ? `recovery leader: ${leader}` : "no recovery leader";
  } catch (err) {
    $("health").textContent = "API unreachable";
    $("health").className = "pill unreachable";
  }
}

// A detection or a recovery changes the picture: refresh soon (coalescing bursts of events).
function refreshSoon() {
  clearTimeout(quickTimer);
  quickTimer = setTimeout(refresh, 300);
}

function onEvent(message) {
  let ev;
  try {
    ev = JSON.parse(message.data);
  } catch (err) {
    return;
  }
  const list = $("events");
  list.querySelector(".placeholder")?.remove();
  const kind = ev.type.split(".")[0];
  list.prepend(el("li", { class: `event ${kind}`, "data-type": ev.type },
    el("span", { class: "muted" }, time(ev.time)), " ", el("strong", {}, ev.type),
    el("div", {}, summarize(ev))));
  while (list.children.length > MAX_EVENTS) list.lastChild.remove();
  if (kind === "detection" || kind === "recovery") refreshSoon();
}

function connectEvents() {
  const stream = new EventSource(`${API}events?replay=20`);
  const pill = $("stream");
  stream.onopen = () => { pill.textContent = "events: live"; pill.className = "pill ok"; };
  stream.onerror = () => { pill.textContent = "events: reconnecting"; pill.className = "pill lagging"; };
  for (const type of EVENT_TYPES) stream.addEventListener(type, onEvent);
  stream.onmessage = onEvent; // events without a name, should the API ever send them
}

refresh();
connectEvents();
