// How fast the cockpit is, for docs/benchmarks.md (not a test: no timing is asserted
// anywhere). Starts `northstar serve --demo` with the full demo (20,000 users, 90 days),
// logs in once, then loads the cockpit N times in a warm browser and prints, per load, the
// time until the KPI cards, the alerts and the first trend chart are drawn, and the
// requests the page made.
// Usage: node scripts/measure_cockpit.mjs /path/to/northstar [runs]
import { chromium } from 'playwright-core'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { findChromium, makeFixtures, startServer } from '../tests/harness.mjs'

const WEB = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const runs = Number(process.argv[3] ?? 7)
const server = await startServer(resolve(process.argv[2]), join(WEB, 'dist'), { users: 20000, days: 90 })
try {
  await makeFixtures(server)
  const browser = await chromium.launch({ executablePath: findChromium(), headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking'] })
  const page = await (await browser.newContext({ baseURL: server.base, viewport: { width: 1400, height: 900 } })).newPage()
  await page.goto('/login')
  await page.locator('input[type=email]').fill(server.admin.email)
  await page.locator('input[type=password]').fill(server.admin.password)
  await page.locator('[data-test=login-submit]').click()
  await page.locator('[data-test=cockpit] [data-metric=dau] canvas').waitFor()
  await page.waitForLoadState('networkidle')
  const times = []
  for (let i = 0; i < runs; i++) {
    const api = []
    const onReq = (r) => r.url().includes('/api/') && api.push(r.method() + ' ' + new URL(r.url()).pathname)
    page.on('request', onReq)
    const t0 = Date.now()
    await page.goto('/')
    await page.locator('[data-test=kpi-card]').first().waitFor()
    await page.locator('[data-test=alerts] [data-alert-id]').first().waitFor()
    await page.locator('[data-metric=dau] canvas').waitFor()
    const t = Date.now() - t0
    await page.waitForLoadState('networkidle')
    page.off('request', onReq)
    times.push(t)
    console.log(`load ${i + 1}: ${t} ms, ${api.length} API requests: ${api.join(', ')}`)
  }
  times.sort((a, b) => a - b)
  console.log(`cockpit drawn: median ${times[Math.floor(times.length / 2)]} ms, min ${times[0]}, max ${times.at(-1)} (${runs} loads)`)
  await browser.close()
} finally {
  await server.stop()
}
