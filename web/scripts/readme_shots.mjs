// The three pictures of the README (docs/images/): the cockpit, a funnel and a Gantt, taken
// from a fresh `northstar serve --demo` (the full demo, with its seeded scenarios, KPIs and
// alert). Usage: node scripts/readme_shots.mjs /path/to/northstar
import { chromium } from 'playwright-core'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { api, findChromium, startServer } from '../tests/harness.mjs'

const WEB = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const OUT = join(WEB, '..', 'docs', 'images')
const server = await startServer(resolve(process.argv[2]), join(WEB, 'dist'), { users: 20000, days: 90 })
try {
  // The first-start demo's own team content (cli/demo_data.cc): its first scenario's Gantt.
  const sc = (await api(server, 'GET', '/api/v1/scenarios'))[0].id
  const browser = await chromium.launch({ executablePath: findChromium(), headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking'] })
  const page = await (await browser.newContext({ baseURL: server.base, locale: 'zh-CN', viewport: { width: 1360, height: 860 } })).newPage()
  await page.goto('/login')
  await page.locator('input[type=email]').fill(server.admin.email)
  await page.locator('input[type=password]').fill(server.admin.password)
  await page.locator('[data-test=login-submit]').click()
  await page.locator('[data-metric=dau] canvas').waitFor()
  await page.waitForLoadState('networkidle')
  await page.waitForTimeout(800) // chart animations
  await page.screenshot({ path: join(OUT, 'cockpit.png') })
  await page.goto(`/scenarios/${sc}`)
  await page.locator('#tab-gantt').click()
  await page.locator('[data-test=gantt] [data-task-id]').first().waitFor()
  await page.waitForTimeout(800) // the tab's underline slides
  await page.screenshot({ path: join(OUT, 'gantt.png'), clip: { x: 0, y: 0, width: 1360, height: 640 } })
  await page.goto('/insights?kind=funnel')
  const steps = ['product_exposure', 'product_click', 'add_to_cart', 'order', 'pay']
  for (let i = 2; i < steps.length; i++) await page.locator('[data-test=add-step]').click()
  for (let i = 0; i < steps.length; i++) {
    await page.locator(`[data-test=step-${i}]`).click()
    await page.keyboard.type(steps[i])
    await page.locator('.el-select-dropdown__item:visible', { hasText: steps[i] }).first().waitFor()
    await page.keyboard.press('Enter')
    await page.keyboard.press('Escape')
  }
  await page.locator('[data-test=run]').click()
  await page.locator('[data-test=funnel-table] [data-step-row="4"]').waitFor()
  await page.waitForTimeout(800)
  await page.locator('[data-test=funnel-builder] .result').screenshot({ path: join(OUT, 'funnel.png') })
  await browser.close()
  console.log(`written: ${OUT}/cockpit.png, gantt.png, funnel.png`)
} finally {
  await server.stop()
}
