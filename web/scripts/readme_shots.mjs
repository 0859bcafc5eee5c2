// The three pictures of the README (docs/images/): the cockpit, a funnel and a Gantt, taken
// from a fresh `northstar serve --demo` with a scenario, actions and KPIs made through the API
// as a team would. Usage: node scripts/readme_shots.mjs /path/to/northstar
import { chromium } from 'playwright-core'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { addDays, api, findChromium, startServer, todayIn } from '../tests/harness.mjs'

const WEB = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const OUT = join(WEB, '..', 'docs', 'images')
const server = await startServer(resolve(process.argv[2]), join(WEB, 'dist'), { users: 20000, days: 90 })
try {
  const today = todayIn('Asia/Shanghai')
  const { id: sc } = await api(server, 'POST', '/api/v1/scenarios', {
    name: '新用户首单转化', business_module: '转化', goal: { metric: '首单转化率', target: 0.2 }, owner: '王芳',
    key_user_group: { description: '注册 7 天内的新用户' }, pain_points: ['结算页字段过多', '新人券领取后未使用'],
    success_criteria: ['首单转化率 ≥ 20%'], period: { from: addDays(today, -14), to: addDays(today, 16) },
  })
  const a1 = await api(server, 'POST', `/api/v1/scenarios/${sc}/actions`, { action: '新人首单券包', strategy: '激励', owner: '张三', start_date: addDays(today, -12), due_date: addDays(today, -6), status: 'done' })
  const a2 = await api(server, 'POST', `/api/v1/scenarios/${sc}/actions`, { action: '结算页精简到 3 个字段', strategy: '体验', owner: '李四', start_date: addDays(today, -8), due_date: addDays(today, -1), depends_on: [a1.id] })
  const a3 = await api(server, 'POST', `/api/v1/scenarios/${sc}/actions`, { action: '未下单用户 24 小时短信提醒', strategy: '触达', owner: '赵六', start_date: addDays(today, -2), due_date: addDays(today, 5), depends_on: [a1.id], status: 'in_progress' })
  await api(server, 'POST', `/api/v1/scenarios/${sc}/actions`, { action: '复盘与 SOP 沉淀', strategy: '复盘', owner: '王芳', start_date: addDays(today, 6), due_date: addDays(today, 9), depends_on: [a2.id, a3.id] })
  const k1 = await api(server, 'POST', '/api/v1/kpis', { name: '首单转化率', scenario_id: sc, owner: '王芳', target: 0.2,
    query: { kind: 'funnel', steps: [{ event: 'register' }, { event: 'pay' }], window_seconds: 604800 }, reduce: { from_step: 1, to_step: 2 }, period: { type: 'month' } })
  const k2 = await api(server, 'POST', '/api/v1/kpis', { name: '本月 GMV', owner: '王芳', target: 2500000,
    query: { kind: 'trends', series: [{ event: 'pay', math: 'sum', property: 'amount' }] }, reduce: { series: 0, op: 'sum' }, period: { type: 'month' } })
  await api(server, 'POST', '/api/v1/kpis', { name: '日活（月均）', owner: '李四', target: 3000,
    query: { kind: 'trends', series: [{ event: '$any', math: 'dau' }] }, reduce: { series: 0, op: 'avg' }, period: { type: 'month' } })
  await api(server, 'POST', '/api/v1/alert-rules', { kpi_id: k1.id, type: 'below_target', threshold_pct: 5 })
  await api(server, 'POST', `/api/v1/kpis/${k1.id}/refresh`)
  await api(server, 'POST', '/api/v1/alert-rules', { kpi_id: k2.id, type: 'below_target', threshold_pct: 10 })
  await api(server, 'POST', `/api/v1/kpis/${k2.id}/refresh`)
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
  await page.screenshot({ path: join(OUT, 'gantt.png'), clip: { x: 0, y: 0, width: 1360, height: 420 } })
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
