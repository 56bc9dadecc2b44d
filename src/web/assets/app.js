// The live scoreboard: a snapshot, then one event per change, from
// /events (server-sent events). Rows are kept by name with the version
// that set them, so a change is applied once even if it comes twice.
// ?teams=a,b&events=c follows a few, as a tablet does.
"use strict";

const params = new URLSearchParams(location.search);
const wanted = (name) => {
  const v = params.get(name);
  return v ? new Set(v.split(",").map((s) => s.trim().toLowerCase()).filter(Boolean)) : null;
};
const wantTeams = wanted("teams");
const wantEvents = wanted("events");

const teams = new Map();   // lower-case name -> row
const events = new Map();
let lastId = null;          // the last event id seen: where to resume
let lastUpdate = 0;         // cluster time of the newest change shown
let source = null;
let retryMs = 1000;
const RETRY_MAX_MS = 10000;

const $ = (id) => document.getElementById(id);
const shown = (set, name) => !set || set.has(name.toLowerCase());
const clock = (t) => (t > 0 && t < 8.64e12 ? new Date(t * 1000).toLocaleTimeString() : "—");

function setLive(live) {
  document.body.dataset.live = String(live);
  $("live-text").textContent = live ? "Live" : "Reconnecting…";
}

function flash(el) {
  el.classList.remove("flash");
  void el.offsetWidth; // restart the animation
  el.classList.add("flash");
}

function putTeam(row) {
  const key = row.team.toLowerCase();
  const have = teams.get(key);
  if (have && have.version >= row.version) return false;
  teams.set(key, row);
  lastUpdate = Math.max(lastUpdate, row.updated);
  return true;
}

function putEvent(row) {
  const key = row.event.toLowerCase();
  const have = events.get(key);
  if (have && have.version >= row.version) return false;
  events.set(key, row);
  lastUpdate = Math.max(lastUpdate, row.updated);
  return true;
}

// Gold, then silver, then bronze, then name; equal counts share a rank.
function ranked() {
  const rows = [...teams.values()].filter((t) => shown(wantTeams, t.team));
  rows.sort((a, b) => b.gold - a.gold || b.silver - a.silver || b.bronze - a.bronze ||
    (a.team < b.team ? -1 : a.team > b.team ? 1 : 0));
  let rank = 0;
  let prev = null;
  return rows.map((t, i) => {
    const counts = `${t.gold},${t.silver},${t.bronze}`;
    if (counts !== prev) { rank = i + 1; prev = counts; }
    return [rank, t];
  });
}

function cell(tr, cls, text) {
  const td = document.createElement("td");
  td.className = cls;
  td.textContent = text;
  tr.appendChild(td);
}

function render(changed) {
  const body = $("medals").tBodies[0];
  body.replaceChildren(...ranked().map(([rank, t]) => {
    const tr = document.createElement("tr");
    tr.dataset.team = t.team.toLowerCase();
    cell(tr, "rank", rank);
    cell(tr, "team", t.team);
    cell(tr, "gold", t.gold);
    cell(tr, "silver", t.silver);
    cell(tr, "bronze", t.bronze);
    cell(tr, "total", t.gold + t.silver + t.bronze);
    if (changed.has("team:" + tr.dataset.team)) flash(tr);
    return tr;
  }));
  const list = $("events");
  list.replaceChildren(...[...events.values()].filter((e) => shown(wantEvents, e.event)).map((e) => {
    const li = document.createElement("li");
    li.dataset.event = e.event.toLowerCase();
    const name = document.createElement("span");
    name.className = "event";
    name.textContent = e.event;
    const time = document.createElement("time");
    time.textContent = clock(e.updated);
    // A time outside what a Date can hold must not stop the page.
    if (e.updated > 0 && e.updated < 8.64e12) time.dateTime = new Date(e.updated * 1000).toISOString();
    const score = document.createElement("span");
    score.className = "score";
    score.textContent = e.score;
    li.append(name, time, score);
    if (changed.has("event:" + li.dataset.event)) flash(li);
    return li;
  }));
  $("updated").textContent = clock(lastUpdate);
  document.body.dataset.version = lastId === null ? "" : lastId;
}

function onSnapshot(e) {
  const snap = JSON.parse(e.data);
  teams.clear();
  events.clear();
  lastUpdate = 0;
  snap.teams.forEach(putTeam);
  snap.events.forEach(putEvent);
  lastId = e.lastEventId;
  setLive(true);
  render(new Set());
}

function onChange(e) {
  const c = JSON.parse(e.data);
  const changed = new Set();
  if (c.tally && putTeam(c.tally)) changed.add("team:" + c.tally.team.toLowerCase());
  if (c.score && putEvent(c.score)) changed.add("event:" + c.score.event.toLowerCase());
  if (c.team && putTeam({ team: c.team, gold: 0, silver: 0, bronze: 0, version: 0, updated: 0 })) {
    changed.add("team:" + c.team.toLowerCase());
  }
  if (c.event && putEvent({ event: c.event, score: "", version: 0, updated: 0 })) {
    changed.add("event:" + c.event.toLowerCase());
  }
  lastUpdate = Math.max(lastUpdate, c.time || 0);
  lastId = e.lastEventId;
  setLive(true);
  render(changed);
}

function connect() {
  // The browser resumes by itself with Last-Event-ID; a new EventSource
  // (after a refusal closed the last one) says where it was in the URL.
  const url = lastId === null ? "/events" : "/events?last=" + encodeURIComponent(lastId);
  source = new EventSource(url);
  source.addEventListener("snapshot", onSnapshot);
  source.addEventListener("change", onChange);
  source.addEventListener("status", (e) => setLive(JSON.parse(e.data).live));
  source.onopen = () => { retryMs = 1000; };
  source.onerror = () => {
    setLive(false);
    if (source.readyState === EventSource.CLOSED) {
      // Refused (503: not ready, or full): the browser gives up, we don't.
      source.close();
      setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, RETRY_MAX_MS);
    }
  };
}

document.addEventListener("DOMContentLoaded", () => {
  if (wantTeams || wantEvents) {
    const parts = [];
    if (wantTeams) parts.push("teams: " + params.get("teams"));
    if (wantEvents) parts.push("events: " + params.get("events"));
    const note = $("filter");
    note.textContent = "Following " + parts.join("; ");
    note.hidden = false;
  }
  setLive(false);
  $("live-text").textContent = "Connecting…";
  connect();
});
