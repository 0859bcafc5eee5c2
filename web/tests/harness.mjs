// What the console's browser tests stand on: a real `northstar serve --demo` on a temporary
// data directory and a free port, its API driven with the demo's secret key, and Debian's
// Chromium through playwright-core, with every page watched for console errors, failed
// requests and dialogs.
import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, createWriteStream } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'

export const XSS = '<img src=x onerror=alert(1)>'

export async function startServer(bin, consoleDir, { users = 2000, days = 90 } = {}) {
  const data = mkdtempSync(join(tmpdir(), 'ns-browser-'))
  const log = createWriteStream(join(data, 'server.log'))
  const args = ['serve', '--data', join(data, 'd'), '--host', '127.0.0.1', '--port', '0', '--demo', '--demo-users', String(users),
    '--demo-days', String(days), '--console-dir', consoleDir, '--no-scheduler']
  const proc = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  proc.stderr.pipe(log)
  const lines = createInterface({ input: proc.stdout })
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('server printed nothing within 120 s')), 120000)
    proc.on('exit', (code) => reject(new Error(`server exited with ${code}: see ${join(data, 'server.log')}`)))
    lines.on('line', (l) => {
      const m = /^listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(l)
      if (m) {
        clearTimeout(timer)
        resolve(Number(m[1]))
      }
    })
  })
  const base = `http://127.0.0.1:${port}`
  for (let i = 0; i < 200; i++) {
    try {
      if ((await fetch(base + '/healthz')).ok) break
    } catch {
      /* not yet */
    }
    await new Promise((r) => setTimeout(r, 50))
  }
  // Both files are written before the port opens (cli/commands.cc, RunServe).
  const keys = JSON.parse(readFileSync(join(data, 'd', 'demo-keys.json'), 'utf8'))
  const cred = readFileSync(join(data, 'd', 'admin-credentials.txt'), 'utf8')
  const password = /password: (\S+)/.exec(cred)[1]
  return {
    base,
    keys,
    admin: { email: 'admin@northstar.local', password },
    async stop() {
      lines.close()
      proc.kill('SIGTERM')
      await new Promise((r) => (proc.exitCode !== null ? r() : proc.on('exit', r)))
      if (!process.env.KEEP_DATA) rmSync(data, { recursive: true, force: true })
    },
  }
}

/** A JSON request with a key; throws on a status other than `expect`. */
export async function api(server, method, path, body, { key = server.keys.secret_key, expect } = {}) {
  const res = await fetch(server.base + path, {
    method,
    headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  const text = await res.text()
  const data = text ? JSON.parse(text) : null
  const want = expect ?? (method === 'POST' && !path.includes('/ack') && !path.includes('/refresh') && !path.includes('/events') ? 201 : 200)
  if (res.status !== want) throw new Error(`${method} ${path} -> ${res.status} (expected ${want}): ${text.slice(0, 400)}`)
  return data
}

export function todayIn(tz) {
  return new Intl.DateTimeFormat('en-CA', { timeZone: tz, year: 'numeric', month: '2-digit', day: '2-digit' }).format(new Date())
}
export function addDays(day, n) {
  const [y, m, d] = day.split('-').map(Number)
  return new Date(Date.UTC(y, m - 1, d + n)).toISOString().slice(0, 10)
}

/**
 * What every test needs whatever the demo data holds: an event, a scenario, actions and a KPI
 * whose names carry an HTML payload, a KPI far below its target with a rule that fires, and a
 * viewer account.
 */
export async function makeFixtures(server) {
  const today = todayIn('Asia/Shanghai')
  await api(server, 'POST', '/api/v1/events', [
    { event: XSS, distinct_id: XSS, properties: { channel: XSS, [XSS]: XSS } },
    { event: 'pay', distinct_id: 'xss-payer', properties: { channel: XSS, amount: 1 } },
  ], { key: server.keys.write_key, expect: 200 })
  const scenario = await api(server, 'POST', '/api/v1/scenarios', {
    name: `Browser test ${XSS}`,
    business_module: XSS,
    goal: { metric: XSS, target: 0.2 },
    key_user_group: { description: XSS },
    pain_points: [XSS],
    success_criteria: [XSS],
    owner: XSS,
    period: { from: addDays(today, -7), to: addDays(today, 21) },
  })
  const first = await api(server, 'POST', `/api/v1/scenarios/${scenario.id}/actions`, {
    action: `Coupon pack ${XSS}`, strategy: XSS, owner: 'zhang.san', start_date: addDays(today, -3), due_date: addDays(today, 4),
    status: 'in_progress', progress_note: XSS,
  })
  const second = await api(server, 'POST', `/api/v1/scenarios/${scenario.id}/actions`, {
    action: 'Shorter checkout', owner: 'li.si', start_date: addDays(today, 1), due_date: addDays(today, 9), depends_on: [first.id],
  })
  const kpi = await api(server, 'POST', '/api/v1/kpis', {
    name: `Payments ${XSS}`, scenario_id: scenario.id, owner: XSS,
    query: { kind: 'trends', series: [{ event: 'pay', math: 'total' }] },
    reduce: { series: 0, op: 'sum' }, target: 1e9, period: { type: 'month' },
  })
  await api(server, 'POST', '/api/v1/alert-rules', { kpi_id: kpi.id, type: 'below_target', threshold_pct: 10 })
  const refreshed = await api(server, 'POST', `/api/v1/kpis/${kpi.id}/refresh`)
  const alertId = refreshed.alerts_fired?.[0]?.id ?? refreshed.alerts_fired?.[0]
  const viewer = { email: 'viewer@example.com', password: 'viewer-password-1' }
  await api(server, 'POST', '/api/v1/users', { ...viewer, role: 'viewer', name: 'Viewer' })
  // The demo's operator (src/cli/demo_data.cc).
  const operator = { email: 'operator@northstar.local', password: 'northstar-operator' }
  return { today, scenarioId: scenario.id, actions: [first.id, second.id], kpiId: kpi.id, alertId, viewer, operator }
}

/**
 * Watches a page: console errors, uncaught exceptions, failed requests, HTTP errors and
 * dialogs are collected; `allow(url, status)` may excuse an answer a test asked for.
 */
export function watch(page) {
  const w = { problems: [], dialogs: [], allowed: [] }
  // Requests in flight, for idle(): Playwright's 'networkidle' is reached once per page load
  // and may fire in the pause before the app's first fetch on a loaded machine.
  const inflight = new Set()
  page.on('request', (r) => inflight.add(r))
  page.on('requestfinished', (r) => inflight.delete(r))
  page.on('requestfailed', (r) => inflight.delete(r))
  w.idle = async (quietMs = 400) => {
    for (let quiet = 0; quiet < quietMs; ) {
      await new Promise((r) => setTimeout(r, 50))
      quiet = inflight.size === 0 ? quiet + 50 : 0
    }
  }
  page.__nsWatch = w
  const excused = (url, status) => w.allowed.some((f) => f(url, status))
  page.on('console', (m) => {
    if (m.type() !== 'error') return
    const text = m.text()
    // Chromium reports every 4xx answer as a console error too; those are judged below.
    if (/Failed to load resource: the server responded with a status of (\d+)/.test(text) && w.allowed.length) {
      const url = m.location()?.url ?? ''
      const st = Number(/status of (\d+)/.exec(text)[1])
      if (excused(url, st)) return
    }
    w.problems.push(`console error: ${text} (${m.location()?.url ?? ''})`)
  })
  page.on('pageerror', (e) => w.problems.push(`uncaught: ${e.message}`))
  page.on('requestfailed', (r) => {
    const f = r.failure()?.errorText ?? ''
    // A navigation aborts the static files the old page was still loading (the logo), and a
    // download (export link) ends its request as "aborted" once the file is taken; an API
    // call aborted is still a failure.
    if (f === 'net::ERR_ABORTED' && (!r.url().includes('/api/') || r.url().includes('/export.'))) return
    w.problems.push(`request failed: ${r.method()} ${r.url()} ${f}`)
  })
  page.on('response', (r) => {
    if (r.status() >= 400 && !excused(r.url(), r.status())) w.problems.push(`HTTP ${r.status()}: ${r.request().method()} ${r.url()}`)
  })
  page.on('dialog', async (d) => {
    w.dialogs.push(`${d.type()}: ${d.message()}`)
    await d.dismiss().catch(() => {})
  })
  return w
}

export function findChromium() {
  for (const p of [process.env.CHROMIUM, '/usr/bin/chromium', '/usr/bin/chromium-browser']) if (p && existsSync(p)) return p
  return null
}

/**
 * The common frame of a console browser test file (one per area: web/tests/<area>.test.mjs,
 * run by ctest as console_<area>; docs/console.md, "Adding an area"). Call it once at the top
 * of the file:
 *
 *   const s = await consoleSuite(import.meta.url)
 *   test('…', async () => {
 *     const { context, page, w } = await s.open()            // or s.open({ lang: 'zh-CN' })
 *     await s.logIn(page, s.server.admin)                     // or s.fx.viewer, s.fx.operator
 *     await s.visit(page, { path: '/flags', ready: '[data-test=flags-page]' })
 *     …
 *     await s.shoot(page, 'flags')                            // <lang>-flags.png in SCREENSHOT_DIR
 *     s.clean(w)                                              // no dialog, console error, failed request
 *     await context.close()
 *   })
 *
 * It takes the binary from argv[2] or $NORTHSTAR, exits 77 (ctest: skipped) without Chromium,
 * starts `northstar serve --demo` with the fixtures of makeFixtures before the tests and stops
 * it after them. `options` go to startServer (users, days).
 */
export async function consoleSuite(testFileUrl, options = {}) {
  const { after, before } = await import('node:test')
  const { fileURLToPath } = await import('node:url')
  const { dirname, resolve, basename } = await import('node:path')
  const { mkdirSync } = await import('node:fs')
  const web = resolve(dirname(fileURLToPath(testFileUrl)), '..')
  const file = basename(fileURLToPath(testFileUrl))
  const bin = process.argv[2] ?? process.env.NORTHSTAR
  if (!bin) {
    console.error(`usage: node web/tests/${file} /path/to/northstar   (or NORTHSTAR=… node --test web/tests/${file})`)
    process.exit(2)
  }
  const chromiumPath = findChromium()
  if (!chromiumPath) {
    console.log('SKIP: no Chromium at /usr/bin/chromium (scripts/setup.sh installs the Debian package)')
    process.exit(77)
  }
  const dist = join(web, 'dist')
  if (!existsSync(join(dist, 'index.html'))) {
    console.error('web/dist/index.html is missing: build the console first (make console)')
    process.exit(1)
  }
  let chromium
  try {
    ;({ chromium } = await import('playwright-core'))
  } catch {
    console.error('playwright-core is not installed in web/node_modules: run make console (npm ci in web/)')
    process.exit(1)
  }
  const shots = process.env.SCREENSHOT_DIR ?? join(dirname(resolve(bin)), 'console-screenshots')
  const s = { server: null, fx: null, browser: null, shots, web }

  before(async () => {
    s.server = await startServer(resolve(bin), dist, options)
    s.fx = await makeFixtures(s.server)
    s.browser = await chromium.launch({
      executablePath: chromiumPath,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    })
    mkdirSync(shots, { recursive: true })
  })
  after(async () => {
    await s.browser?.close()
    await s.server?.stop()
  })

  /** A fresh browser context (own cookies and storage) with its page watched. */
  s.open = async ({ lang = 'en-US', width = 1400, height = 900 } = {}) => {
    const context = await s.browser.newContext({ locale: lang, viewport: { width, height }, baseURL: s.server.base })
    const page = await context.newPage()
    const w = watch(page)
    page.setDefaultTimeout(15000)
    return { context, page, w }
  }
  /** Fails on any dialog, console error or failed request the page has seen. */
  s.clean = (w) => {
    if (w.dialogs.length) throw new Error(`no dialog may open: ${w.dialogs.join('; ')}`)
    if (w.problems.length) throw new Error(`no console error or failed request: ${w.problems.join('; ')}`)
  }
  /** Waits until the page has had no request in flight for a while (watch().idle). */
  s.settle = async (page) => {
    await page.waitForLoadState('load')
    await page.__nsWatch.idle()
  }
  s.logIn = async (page, { email, password }) => {
    await page.goto('/')
    await page.waitForURL(/\/login/)
    await page.locator('[data-test=login-form] input[type=email]').fill(email)
    await page.locator('[data-test=login-form] input[type=password]').fill(password)
    await page.locator('[data-test=login-submit]').click()
    await page.locator('[data-test=cockpit]').waitFor()
    await s.settle(page) // leaving while the cockpit still loads would abort its requests
  }
  /** Opens `path` (or path()), clicks tab `tab` if given, waits for `ready` and for quiet. */
  s.visit = async (page, p) => {
    await page.goto(typeof p.path === 'function' ? p.path() : p.path)
    if (p.tab) await page.locator(`#tab-${p.tab}`).click()
    await page.locator(p.ready).first().waitFor()
    await s.settle(page)
  }
  /** Switches the UI language with the header's switch. */
  s.setLang = async (page, lang) => {
    await page.locator(`[data-test=lang-switch] [data-lang="${lang}"]`).click()
    await page.waitForFunction((l) => document.documentElement.lang === l, lang)
  }
  /** A full-page screenshot named <lang>-<name>.png (the page's current language). */
  s.shoot = async (page, name) => {
    const lang = await page.evaluate(() => document.documentElement.lang)
    await page.screenshot({ path: join(shots, `${lang}-${name}.png`), fullPage: true })
  }
  return s
}
