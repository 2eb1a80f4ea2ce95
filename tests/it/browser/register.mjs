// Drives a real Chromium (Debian's /usr/bin/chromium) through directoryd's web pages for
// tests/it/test_directory_browser.py. playwright-core only: no browser download.
//
//   node register.mjs form    --url https://127.0.0.1:PORT/ --smtp ADDR --alt ADDR
//                             --shots DIR [--prefix NAME] [--no-js]
//       opens the form, checks lang, title, headings and labels, fills the fields through
//       their labels, submits and reads the answer page ("Check both inboxes").
//   node register.mjs confirm --url https://127.0.0.1:PORT/confirm?t=TOKEN
//                             --shots DIR [--prefix NAME] [--no-js]
//       opens a confirmation link, checks the page, presses the Confirm button and reads
//       the answer page.
//
// Prints one JSON object on stdout; exits 1 with a message on stderr when something the
// script itself checks fails (the Python test asserts on the JSON). The server's
// certificate is self-signed, so certificate errors are ignored - which is why every URL,
// and every request the page makes, must go to a loopback address: anything else is
// refused. Environment: POSTERN_IT_CHROMIUM (default /usr/bin/chromium),
// POSTERN_IT_BROWSER_TIMEOUT (ms per step, default 60000).

import { chromium } from "playwright-core";
import fs from "node:fs";
import path from "node:path";

const TIMEOUT = Number(process.env.POSTERN_IT_BROWSER_TIMEOUT || 60000);
const EXECUTABLE = process.env.POSTERN_IT_CHROMIUM || "/usr/bin/chromium";
const LOOPBACK = new Set(["127.0.0.1", "localhost", "[::1]"]);

const VALUED = ["--url", "--smtp", "--alt", "--shots", "--prefix"];

class CheckFailed extends Error {}

function check(cond, what) {
  if (!cond) throw new CheckFailed(what);
}

function parseArgs(argv) {
  const [mode, ...rest] = argv;
  const opts = { mode, js: true, prefix: mode };
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i];
    if (a === "--no-js") {
      opts.js = false;
    } else if (VALUED.includes(a) && i + 1 < rest.length) {
      opts[a.slice(2)] = rest[++i];
    } else {
      throw new CheckFailed(`unknown argument ${a}`);
    }
  }
  check(mode === "form" || mode === "confirm", "mode must be form or confirm");
  check(opts.url && opts.shots, "--url and --shots are required");
  if (mode === "form") check(opts.smtp && opts.alt, "--smtp and --alt are required");
  check(isLoopback(opts.url), `refusing a non-loopback URL: ${opts.url}`);
  return opts;
}

function isLoopback(u) {
  try {
    const url = new URL(u);
    return url.protocol === "https:" && LOOPBACK.has(url.hostname);
  } catch {
    return false;
  }
}

// What the page shows: title, language, headings, the text of <main>.
async function pageFacts(page, response) {
  const main = page.locator("main");
  return {
    url: page.url(),
    status: response ? response.status() : null,
    title: await page.title(),
    lang: await page.locator("html").getAttribute("lang"),
    h1: await page.locator("h1").allInnerTexts(),
    h2: await page.locator("h2").allInnerTexts(),
    main: (await main.count()) === 1 ? await main.innerText() : "",
  };
}

async function shot(page, opts, name) {
  const file = path.join(opts.shots, `${opts.prefix}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true, timeout: TIMEOUT });
  return file;
}

// Submits through the button and waits for the answer page's navigation.
async function submitWith(page, button) {
  const [response] = await Promise.all([
    page.waitForNavigation({ waitUntil: "load", timeout: TIMEOUT }),
    button.click({ timeout: TIMEOUT }),
  ]);
  return response;
}

// Every visible form control has a <label> naming it (the accessible name comes from it).
async function unlabelled(page) {
  const missing = [];
  const controls = page.locator("input:not([type=hidden]), select, textarea");
  for (let i = 0; i < (await controls.count()); i++) {
    const c = controls.nth(i);
    const id = await c.getAttribute("id");
    const labels = id ? await page.locator(`label[for="${id}"]`).count() : 0;
    if (labels !== 1) missing.push(id || (await c.getAttribute("name")) || `#${i}`);
  }
  return missing;
}

async function runForm(page, opts) {
  const out = { screenshots: [] };
  const response = await page.goto(opts.url, { waitUntil: "load", timeout: TIMEOUT });
  out.form = await pageFacts(page, response);
  check(out.form.status === 200, `form answered ${out.form.status}`);
  out.form.unlabelled = await unlabelled(page);
  out.form.skip_link = await page.getByRole("link", { name: "Skip to content" }).count();
  out.form.scripts = await page.locator("script").count();
  out.cookies = (await page.context().cookies()).map((c) => ({
    name: c.name, secure: c.secure, httpOnly: c.httpOnly, sameSite: c.sameSite,
  }));
  out.screenshots.push(await shot(page, opts, "form"));

  // Fill the fields by their labels, as a screen reader user would find them.
  const form = page.locator("form[action='/register']");
  await form.getByLabel(/^Your email \(SMTP\) address/).fill(opts.smtp, { timeout: TIMEOUT });
  await form.getByLabel(/^Your alternative address/).fill(opts.alt, { timeout: TIMEOUT });
  await form.getByLabel("Type of the alternative address").selectOption("", { timeout: TIMEOUT });
  out.screenshots.push(await shot(page, opts, "form-filled"));

  const button = form.getByRole("button", { name: "Send the two confirmation links" });
  const answer = await submitWith(page, button);
  out.result = await pageFacts(page, answer);
  out.screenshots.push(await shot(page, opts, "submitted"));
  return out;
}

async function runConfirm(page, opts) {
  const out = { screenshots: [] };
  const response = await page.goto(opts.url, { waitUntil: "load", timeout: TIMEOUT });
  out.link = await pageFacts(page, response);
  out.screenshots.push(await shot(page, opts, "link"));
  check(out.link.status === 200, `confirmation link answered ${out.link.status}`);

  const button = page.locator("form[action='/confirm']").getByRole("button", { name: "Confirm" });
  check((await button.count()) === 1, "no Confirm button on the link's page");
  const answer = await submitWith(page, button);
  out.result = await pageFacts(page, answer);
  out.screenshots.push(await shot(page, opts, "confirmed"));
  return out;
}

// Whether this context runs page scripts: proves that a --no-js run really has none.
async function probeScripts(page) {
  const probe = "<title>no-js</title><script>document.title = 'js'</script>";
  await page.goto("data:text/html," + encodeURIComponent(probe), { timeout: TIMEOUT });
  return (await page.title()) === "js";
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  fs.mkdirSync(opts.shots, { recursive: true });
  const root = typeof process.getuid === "function" && process.getuid() === 0;
  const browser = await chromium.launch({
    executablePath: EXECUTABLE,
    headless: true,
    // Chromium's sandbox cannot start as root; everyone else keeps it.
    chromiumSandbox: !root,
    timeout: TIMEOUT,
  });
  try {
    const context = await browser.newContext({
      ignoreHTTPSErrors: true, // the self-signed certificate; loopback only, see below
      javaScriptEnabled: opts.js,
      locale: "en-GB",
      viewport: { width: 1024, height: 768 },
    });
    context.setDefaultTimeout(TIMEOUT);
    context.setDefaultNavigationTimeout(TIMEOUT);
    const refused = [];
    await context.route("**/*", (route) => {
      const u = route.request().url();
      if (isLoopback(u) || u.startsWith("data:")) return route.continue();
      refused.push(u);
      return route.abort("blockedbyclient");
    });
    const page = await context.newPage();
    const consoleErrors = [];
    page.on("console", (m) => {
      if (m.type() === "error") consoleErrors.push(m.text());
    });
    page.on("pageerror", (e) => consoleErrors.push(String(e)));
    const scriptsRun = await probeScripts(page);
    check(scriptsRun === opts.js, `page scripts ${scriptsRun ? "ran" : "did not run"}`);
    const out = opts.mode === "form" ? await runForm(page, opts) : await runConfirm(page, opts);
    out.javascript = opts.js;
    out.scripts_run = scriptsRun;
    out.refused = refused;
    out.console_errors = consoleErrors;
    out.browser_version = browser.version();
    process.stdout.write(JSON.stringify(out) + "\n");
    await context.close();
  } finally {
    await browser.close();
  }
}

main().catch((e) => {
  process.stderr.write(`register.mjs: ${e instanceof CheckFailed ? e.message : e.stack || e}\n`);
  process.exit(1);
});
