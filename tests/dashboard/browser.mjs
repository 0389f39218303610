// Browser tests of the dashboard: Debian's chromium driven by playwright-core.
//
// Run by crates/agent-orchestrator/tests/dashboard_browser.rs, which starts an orchestrator
// with an API token and a script worker that stops at a gate file until this script opens it:
//   AO_URL        the server's base URL
//   AO_TOKEN      the server's API token
//   AO_GATES      directory of gate files: the worker of task ID waits for AO_GATES/ID
//   AO_SHOTS      directory for screenshots (desktop and phone width of each page)
// Exits non-zero, with the failing step, on any failure.

import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
let chromium;
try {
  ({ chromium } = require("playwright-core"));
} catch (e) {
  console.error("playwright-core is not installed: run scripts/install-browser-test.sh");
  process.exit(2);
}

const { AO_URL: base, AO_TOKEN: token, AO_GATES: gates, AO_SHOTS: shots } = process.env;
for (const [k, v] of Object.entries({ AO_URL: base, AO_TOKEN: token, AO_GATES: gates, AO_SHOTS: shots })) {
  if (!v) throw new Error(`${k} is not set`);
}
mkdirSync(shots, { recursive: true });

// Generous: CI runs this beside the whole workspace's tests on two cores.
const WAIT = 30_000;
const DESKTOP = { width: 1280, height: 860 };
const PHONE = { width: 360, height: 740 };

function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
}

async function step(name, fn) {
  const t = Date.now();
  try {
    await fn();
    console.log(`ok   ${name} (${Date.now() - t} ms)`);
  } catch (e) {
    console.error(`FAIL ${name}: ${e.stack || e}`);
    throw e;
  }
}

const open = (id) => writeFileSync(join(gates, id), "go\n");
const taskId = (page) => new URL(page.url()).pathname.split("/").pop();

// Save the page at desktop and at phone width (full page), then go back to desktop.
async function shoot(page, name) {
  await page.screenshot({ path: join(shots, `${name}-desktop.png`), fullPage: true });
  await page.setViewportSize(PHONE);
  await page.screenshot({ path: join(shots, `${name}-phone.png`), fullPage: true });
  await page.setViewportSize(DESKTOP);
}

async function submit(page, fields) {
  await page.goto(`${base}/new`);
  for (const [name, value] of Object.entries(fields)) await page.fill(`[name="${name}"]`, value);
  await page.click('form[action="/new"] button[type="submit"]');
}

async function rowStatus(page, id, status) {
  await page.waitForSelector(`tr[data-id="${id}"][data-status="${status}"]`, { timeout: WAIT });
}

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage"],
});
const context = await browser.newContext({ viewport: DESKTOP });
const page = await context.newPage();
const dialogs = [];
page.on("dialog", async (d) => {
  dialogs.push(d.message());
  await d.dismiss();
});
const cspErrors = [];
page.on("console", (m) => {
  if (m.type() === "error" && /Content Security Policy/i.test(m.text())) cspErrors.push(m.text());
});

let a, b, c, x, e;
try {
  await step("a wrong token is refused, the right one logs in", async () => {
    await page.goto(base);
    check(new URL(page.url()).pathname === "/login", `redirected to /login, at ${page.url()}`);
    await shoot(page, "login");
    await page.fill("#token", "not-the-token");
    await page.click('form[action="/login"] button');
    await page.waitForSelector("#token-error", { timeout: WAIT });
    check((await page.textContent("#token-error")).includes("not accepted"), "refusal message");
    check(new URL(page.url()).pathname === "/login", "still on the login page");
    await page.fill("#token", token);
    await page.click('form[action="/login"] button');
    await page.waitForSelector("table.tasks", { timeout: WAIT });
    const cookies = await context.cookies();
    const session = cookies.find((k) => k.name === "ao_session");
    check(session && session.httpOnly && session.sameSite === "Strict", "HttpOnly SameSite=Strict session cookie");
  });

  await step("a 422 from the form shows next to its field", async () => {
    await submit(page, { prompt: "too long a timeout", timeout_seconds: "999999999" });
    await page.waitForSelector("#timeout_seconds-error", { timeout: WAIT });
    const msg = await page.textContent("#timeout_seconds-error");
    check(/between 1 and/.test(msg), `timeout message: ${msg}`);
    const follows = await page.evaluate(() => {
      const input = document.getElementById("timeout_seconds");
      return input.getAttribute("aria-invalid") === "true"
        && input.getAttribute("aria-describedby").includes("timeout_seconds-error");
    });
    check(follows, "the input is marked invalid and described by the error");
    check((await page.inputValue("#prompt")) === "too long a timeout", "the form is refilled");
    await shoot(page, "submit-422");
  });

  await step("submit through the form; the transcript fills while the task runs", async () => {
    await submit(page, { prompt: "Task A: list the files\nsecond line", labels: "team=core" });
    await page.waitForURL(/\/tasks\/[0-9a-f-]+$/, { timeout: WAIT });
    a = taskId(page);
    await page.waitForSelector('#task-live .status-line [data-status="running"]', { timeout: WAIT });
    await page.waitForSelector('#transcript .t-tool:has-text("ls -la")', { timeout: WAIT });
    await page.waitForSelector('#transcript .t-text:has-text("Looking at the files")', { timeout: WAIT });
    check(!(await page.$("#transcript .t-end")), "the transcript has not ended while running");
    await shoot(page, "task-running");
  });

  await step("rows go queued → running → succeeded live, without a reload", async () => {
    await submit(page, { prompt: "Task B: write the docs", labels: "team=web" });
    await page.waitForURL(/\/tasks\/[0-9a-f-]+$/, { timeout: WAIT });
    b = taskId(page);
    await page.goto(base);
    await page.evaluate(() => { window.__noReload = true; });
    await rowStatus(page, b, "queued");
    await rowStatus(page, a, "running");
    await page.waitForSelector('[data-count="queued"]:has-text("1")', { timeout: WAIT });
    open(a);
    await rowStatus(page, a, "succeeded");
    await rowStatus(page, b, "running");
    open(b);
    await rowStatus(page, b, "succeeded");
    check(await page.evaluate(() => window.__noReload === true), "the page was not reloaded");
    const badge = await page.textContent(`tr[data-id="${b}"] .badge`);
    check(badge.includes("succeeded") && badge.includes("✓"), `the badge has a word and a symbol: ${badge}`);
    await shoot(page, "tasks");
  });

  await step("the finished task shows its result, transcript and logs", async () => {
    await page.goto(`${base}/tasks/${a}`);
    await page.waitForSelector('#transcript .t-end', { timeout: WAIT });
    await page.waitForSelector('#transcript .t-text:has-text("All done")', { timeout: WAIT });
    const result = await page.textContent("#task-live");
    check(result.includes("$0.0123") && result.includes("sess-"), `result facts: ${result}`);
    await page.click('#transcript .t-result summary');
    check(await page.isVisible('#transcript .t-result pre:has-text("file-a")'), "tool result expands");
    await shoot(page, "task");
    await page.focus("#tab-transcript");
    await page.keyboard.press("ArrowRight");
    await page.waitForSelector('#logs:has-text("log line one")', { state: "visible", timeout: WAIT });
    check(await page.evaluate(() => document.activeElement.id === "tab-logs"), "arrow keys move between tabs");
    const raw = await page.request.get(`${base}/ui/tasks/${a}/json`);
    check(raw.ok() && (await raw.json()).status === "succeeded", "raw JSON");
  });

  await step("cancel a running task from its page", async () => {
    await submit(page, { prompt: "Task C: runs until cancelled" });
    await page.waitForURL(/\/tasks\/[0-9a-f-]+$/, { timeout: WAIT });
    c = taskId(page);
    await page.waitForSelector('#task-live .status-line [data-status="running"]', { timeout: WAIT });
    await page.click("details.cancel summary");
    await shoot(page, "task-cancel");
    await page.click('details.cancel button[type="submit"]');
    await page.waitForSelector('#task-live .status-line [data-status="cancelled"]', { timeout: WAIT });
  });

  await step("XSS prompts render as text", async () => {
    const evil = `<script>alert(1)</script> "><img src=x onerror=alert(2)>`;
    await submit(page, { prompt: evil, labels: `k=<b>bold</b>` });
    await page.waitForURL(/\/tasks\/[0-9a-f-]+$/, { timeout: WAIT });
    x = taskId(page);
    check((await page.textContent(".prompt-full")) === evil, "prompt shown verbatim");
    await page.goto(base);
    await page.waitForSelector(`tr[data-id="${x}"]`, { timeout: WAIT });
    check((await page.textContent(`tr[data-id="${x}"] td.prompt a`)).includes("<script>alert(1)</script>"), "list shows the prompt as text");
    check((await page.$$("img")).length === 0 && (await page.$$("main b")).length === 0, "no element was injected");
    open(x);
    await rowStatus(page, x, "succeeded");
    check(dialogs.length === 0, `no dialog opened: ${dialogs}`);
  });

  await step("filter by status and label, search prompts", async () => {
    await page.goto(base);
    await page.selectOption("#f-status", "cancelled");
    await page.click(".filters button");
    await page.waitForSelector(`tr[data-id="${c}"]`, { timeout: WAIT });
    check((await page.$$("#task-rows tr[data-id]")).length === 1, "only the cancelled task");
    await page.goto(base);
    await page.fill("#f-label", "team=web");
    await page.click(".filters button");
    await page.waitForSelector(`tr[data-id="${b}"]`, { timeout: WAIT });
    check((await page.$$("#task-rows tr[data-id]")).length === 1, "only the team=web task");
    await page.goto(base);
    await page.fill("#f-q", "list THE files");
    await page.keyboard.press("Enter");
    await page.waitForURL(/q=list/, { timeout: WAIT });
    const ids = await page.$$eval("#task-rows tr[data-id]", (rows) => rows.map((r) => r.dataset.id));
    check(ids.length === 1 && ids[0] === a, `search finds task A only: ${ids}`);
    await shoot(page, "tasks-search");
  });

  await step("usage page: charts with tables", async () => {
    await page.goto(`${base}/usage`);
    check((await page.$$("svg.chart")).length === 3, "three charts");
    check((await page.$$("table.data")).length === 3, "three tables");
    const total = await page.$eval("table.data tbody tr:last-child td:last-child", (td) => td.textContent);
    check(Number(total) >= 4, `today's finished tasks: ${total}`);
    await shoot(page, "usage");
  });

  await step("overview: a running repository task among finished ones", async () => {
    await submit(page, {
      prompt: "Task E: add a CONTRIBUTING.md", repo_url: "https://github.com/acme/app",
      repo_ref: "main", labels: "team=web\nenv=prod", max_budget_usd: "2",
    });
    await page.waitForURL(/\/tasks\/[0-9a-f-]+$/, { timeout: WAIT });
    e = taskId(page);
    await page.goto(base);
    await rowStatus(page, e, "running");
    check((await page.textContent(`tr[data-id="${e}"] td.repo`)).includes("acme/app @ main"), "repository and ref");
    await shoot(page, "tasks-overview");
    open(e);
    await rowStatus(page, e, "succeeded");
  });

  await step("keyboard: skip link and visible focus", async () => {
    await page.goto(base);
    await page.keyboard.press("Tab");
    check(await page.evaluate(() => document.activeElement.classList.contains("skip")), "the skip link comes first");
    const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
    check(outline !== "none", `focus is visible (${outline})`);
  });

  check(cspErrors.length === 0, `no CSP violation: ${cspErrors.join("; ")}`);
} finally {
  for (const id of [a, b, c, x, e].filter(Boolean)) open(id);
  await browser.close();
}
console.log("all browser scenarios passed");
