// Agent Orchestrator dashboard: live updates for server-rendered pages.
// - tasks page: when the server says the list changed (/ui/changes, SSE), swap in the counts
//   and rows of the same filters (/ui/rows); every 30 s too, for the relative ages,
// - task page: follow the agent's events (SSE) as a transcript, follow the worker's logs,
//   swap in the status part when the task changes (/ui/changes?task=ID), and switch the
//   Transcript/Logs tabs.
// Everything received is inserted as text (textContent) or as HTML the server escaped.

const AGES_MS = 30000;

async function fetchHtml(url) {
  const resp = await fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } });
  if (!resp.ok) throw new Error(`${url}: ${resp.status}`);
  return new DOMParser().parseFromString(await resp.text(), "text/html");
}

// Replace `old` by `fresh`, keeping keyboard focus on the same link or button if it was inside.
function swap(old, fresh) {
  if (!old || !fresh) return;
  const active = document.activeElement;
  const key = active && old.contains(active) ? active.getAttribute("href") || active.textContent : null;
  const open = [...old.querySelectorAll("details[open] > summary")].map((s) => s.textContent);
  old.replaceWith(fresh);
  for (const s of fresh.querySelectorAll("details > summary")) {
    if (open.includes(s.textContent)) s.parentElement.open = true;
  }
  if (key) {
    const again = [...fresh.querySelectorAll("a, button, summary")].find(
      (el) => (el.getAttribute("href") || el.textContent) === key,
    );
    if (again) again.focus();
  }
}

// Run `step` once at a time: a call while it runs makes it run once more afterwards. It
// returns false when there is nothing more to follow.
function serial(step) {
  let running = false;
  let again = false;
  let done = false;
  const run = async () => {
    if (done) return;
    if (running) {
      again = true;
      return;
    }
    running = true;
    try {
      do {
        again = false;
        if ((await step()) === false) done = true;
      } while (again && !done);
    } catch (e) {
      console.warn("refresh failed", e);
    } finally {
      running = false;
    }
  };
  run.done = () => done;
  return run;
}

// Call `refresh` on each `changed` event of `url`, and after the stream reconnects (changes
// may have been missed meanwhile); stop when `refresh` says there is nothing more to follow.
function onChanges(url, refresh) {
  const source = new EventSource(url);
  let opened = false;
  source.addEventListener("changed", () => {
    refresh().then(() => refresh.done() && source.close());
  });
  source.addEventListener("open", () => {
    if (opened) refresh();
    opened = true;
  });
  return source;
}

function liveTasks(table) {
  const refresh = serial(async () => {
    const doc = await fetchHtml(table.dataset.live);
    swap(document.getElementById("counts"), doc.getElementById("counts"));
    swap(document.getElementById("task-rows"), doc.getElementById("task-rows"));
  });
  onChanges(table.dataset.changes, refresh);
  setInterval(() => document.hidden || refresh(), AGES_MS);
}

function liveStatus(section) {
  const terminal = () => document.getElementById("task-live")?.dataset.terminal === "true";
  const refresh = serial(async () => {
    const doc = await fetchHtml(section.dataset.live);
    swap(document.getElementById("task-live"), doc.getElementById("task-live"));
    return !terminal();
  });
  if (!terminal()) onChanges(section.dataset.changes, refresh);
  return refresh;
}

// ---- transcript ------------------------------------------------------------------------

function item(list, kind, label, text) {
  const li = document.createElement("li");
  li.className = `t-${kind}`;
  const tag = document.createElement("span");
  tag.className = "t-label";
  tag.textContent = label;
  li.append(tag, " ");
  if (text !== undefined) {
    const body = document.createElement("span");
    body.className = "t-text";
    body.textContent = text;
    li.append(body);
  }
  list.append(li);
  return li;
}

const KEY_ARGS = ["command", "file_path", "path", "pattern", "url", "query", "description", "prompt"];

function keyArgument(input) {
  if (!input || typeof input !== "object") return "";
  for (const k of KEY_ARGS) if (typeof input[k] === "string") return input[k];
  const first = Object.values(input).find((v) => typeof v === "string");
  return first || "";
}

function resultText(content) {
  if (typeof content === "string") return content;
  if (Array.isArray(content)) {
    return content.map((c) => (typeof c === "string" ? c : c.text || JSON.stringify(c))).join("\n");
  }
  return JSON.stringify(content);
}

function collapsed(list, label, text, error) {
  const li = item(list, error ? "result error" : "result", label);
  const det = document.createElement("details");
  const sum = document.createElement("summary");
  const lines = text.split("\n").length;
  sum.textContent = `${lines} line${lines === 1 ? "" : "s"}`;
  const pre = document.createElement("pre");
  pre.textContent = text;
  det.append(sum, pre);
  li.append(det);
}

function render(list, type, ev) {
  const content = ev.message && Array.isArray(ev.message.content) ? ev.message.content : [];
  if (type === "system" && ev.subtype === "init") {
    item(list, "system", "session", [ev.session_id, ev.model].filter(Boolean).join(" · "));
  } else if (type === "assistant") {
    for (const c of content) {
      if (c.type === "text" && c.text) item(list, "text", "assistant", c.text);
      if (c.type === "tool_use") {
        const li = item(list, "tool", "tool");
        const name = document.createElement("strong");
        name.className = "t-name";
        name.textContent = c.name || "?";
        const arg = document.createElement("span");
        arg.className = "t-text";
        arg.textContent = keyArgument(c.input);
        li.append(name, " ", arg);
      }
    }
  } else if (type === "user") {
    for (const c of content) {
      if (c.type === "tool_result") collapsed(list, "result", resultText(c.content), c.is_error);
    }
  } else if (type === "result") {
    const bits = [ev.subtype, ev.num_turns !== undefined ? `${ev.num_turns} turns` : null,
      typeof ev.total_cost_usd === "number" ? `$${ev.total_cost_usd.toFixed(4)}` : null];
    item(list, "final", "result", bits.filter(Boolean).join(" · "));
    if (typeof ev.result === "string" && ev.result) item(list, "text", "answer", ev.result);
  } else if (type === "worker") {
    item(list, "note", "worker", ev.message || ev.subtype || "");
  }
}

function transcript(list, onEnd) {
  const source = new EventSource(list.dataset.events);
  const types = ["system", "assistant", "user", "result", "worker"];
  for (const type of types) {
    source.addEventListener(type, (msg) => {
      try {
        render(list, type, JSON.parse(msg.data));
      } catch (e) {
        console.warn("bad event", e);
      }
    });
  }
  source.addEventListener("end", (msg) => {
    source.close();
    const end = JSON.parse(msg.data);
    item(list, "end", "end", `${end.status} (${end.reason})`);
    list.dataset.ended = "true";
    onEnd();
  });
}

async function followLogs(pre) {
  const resp = await fetch(`${pre.dataset.logs}?follow=true`, { credentials: "same-origin" });
  if (!resp.ok || !resp.body) return;
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    pre.append(document.createTextNode(value));
  }
  pre.dataset.ended = "true";
}

// The Transcript/Logs tabs. The logs are only followed once their tab is first shown, so a
// task page holds one long-lived connection (the events) unless the logs are wanted.
function tabs(list, onShow) {
  const all = [...list.querySelectorAll('[role="tab"]')];
  const select = (tab) => {
    for (const t of all) {
      const on = t === tab;
      t.setAttribute("aria-selected", String(on));
      t.tabIndex = on ? 0 : -1;
      const pane = document.getElementById(t.getAttribute("aria-controls"));
      pane.hidden = !on;
      if (on) onShow(pane);
    }
  };
  all.forEach((t, i) => {
    t.addEventListener("click", () => select(t));
    t.addEventListener("keydown", (e) => {
      const step = e.key === "ArrowRight" ? 1 : e.key === "ArrowLeft" ? -1 : 0;
      if (!step) return;
      const next = all[(i + step + all.length) % all.length];
      select(next);
      next.focus();
    });
  });
  select(all[0]);
}

function main() {
  const table = document.querySelector("table[data-live]");
  if (table) liveTasks(table);
  const section = document.querySelector("section[data-live]");
  const refresh = section ? liveStatus(section) : null;
  const list = document.getElementById("transcript");
  if (list) transcript(list, () => refresh && refresh().catch(() => {}));
  const logs = document.getElementById("logs");
  const tablist = document.querySelector('[role="tablist"]');
  if (tablist) {
    tabs(tablist, (pane) => {
      if (logs && pane.contains(logs) && !logs.dataset.started) {
        logs.dataset.started = "true";
        followLogs(logs).catch((e) => console.warn("logs", e));
      }
    });
  }
}

main();
