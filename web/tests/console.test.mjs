// The web console in a real browser (issue 12): Debian's Chromium, headless, driven by
// playwright-core against a real `northstar serve --demo`. Every test fails on a console
// error, a failed request or a dialog in its pages. Screenshots of every page in both
// languages go to <build dir>/console-screenshots (or $SCREENSHOT_DIR).
//
// Usage: node web/tests/console.test.mjs /path/to/northstar      (exit 77: no Chromium)
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { XSS, addDays, api, consoleSuite } from './harness.mjs'

const s = await consoleSuite(import.meta.url)

test('log in: the login page, then the cockpit with KPI cards, trends and scenarios', async () => {
  const { context, page, w } = await s.open()
  await s.logIn(page, s.server.admin)
  const cards = page.locator('[data-test=kpi-card]')
  await cards.first().waitFor()
  assert.ok((await cards.count()) >= 1, 'at least one KPI card')
  const ours = page.locator(`[data-test=kpi-card][data-kpi-id="${s.fx.kpiId}"]`)
  await ours.waitFor()
  assert.match(await ours.innerText(), /Achievement/)
  assert.equal(await ours.locator('[data-light]').first().getAttribute('data-light'), 'red', 'a KPI far below target is red')
  await page.locator('[data-metric=dau] canvas').first().waitFor()
  await page.locator(`[data-test=cockpit-scenarios] a[href="/scenarios/${s.fx.scenarioId}"]`).waitFor()
  assert.equal(await page.locator('[data-test=role]').innerText(), 'Admin')
  await s.settle(page)
  // Logging out ends the session: the next page is the login again.
  await page.locator('[data-test=logout]').click()
  await page.waitForURL(/\/login/)
  await page.goto('/scenarios')
  await page.waitForURL(/\/login/)
  s.clean(w)
  await context.close()
})

test('switch the language: the console in Chinese, remembered after a reload', async () => {
  const { context, page, w } = await s.open()
  await s.logIn(page, s.server.admin)
  assert.match(await page.locator('[data-test=nav-cockpit]').innerText(), /Cockpit/)
  await page.locator('[data-test=lang-switch] [data-lang=zh-CN]').click()
  await page.locator('[data-test=nav-cockpit]', { hasText: '运营驾驶舱' }).waitFor()
  assert.match(await page.locator('h1').first().innerText(), /运营驾驶舱/)
  await page.reload()
  await page.locator('[data-test=cockpit]').waitFor()
  assert.match(await page.locator('[data-test=nav-scenarios]').innerText(), /运营场景/)
  assert.equal(await page.evaluate(() => document.documentElement.lang), 'zh-CN')
  await s.settle(page)
  s.clean(w)
  await context.close()
})

test('a Chinese browser opens the console in Chinese', async () => {
  const { context, page, w } = await s.open({ lang: 'zh-CN' })
  await page.goto('/login')
  await page.locator('[data-test=login-submit]', { hasText: '登录' }).waitFor()
  s.clean(w)
  await context.close()
})

test('viewer: no edit button anywhere, and the API refuses a forced change (403)', async () => {
  const { context, page, w } = await s.open()
  await s.logIn(page, s.fx.viewer)
  assert.equal(await page.locator('[data-test=role]').innerText(), 'Viewer')
  await page.locator(`[data-alert-id="${s.fx.alertId}"]`).waitFor()
  assert.equal(await page.locator('[data-test=ack]').count(), 0, 'no acknowledge button')
  await page.goto(`/scenarios/${s.fx.scenarioId}`)
  await page.locator('#tab-kanban').click()
  await page.locator(`[data-test=kanban] [data-action-id="${s.fx.actions[0]}"]`).waitFor()
  assert.equal(await page.locator('[data-test=status-select]').count(), 0, 'no status menu')
  assert.equal(await page.locator('[data-test=kanban] [draggable=true]').count(), 0, 'no draggable card')
  await page.locator('[data-test=view-only]').waitFor()
  // Alerts and settings: the viewer reads, with no control that would change anything, and
  // the pages ask for nothing an admin alone may see (any 403 would fail the test).
  await page.goto('/alerts')
  await page.locator('[data-test=alert-history] .el-table__row').first().waitFor()
  await s.settle(page)
  for (const sel of ['[data-test=ack]', '[data-test=delete-rule]', '[data-test=rule-form]', '[data-test=channel-form]', '[data-test=test-channel]'])
    assert.equal(await page.locator(sel).count(), 0, `no ${sel} for a viewer`)
  await page.goto('/settings')
  await page.locator('[data-test=admin-only]').waitFor()
  await s.settle(page)
  assert.equal(await page.locator('[data-test=save-settings]').count(), 0)
  assert.equal(await page.locator('[data-test=create-key]').count(), 0)
  assert.equal(await page.locator('button:has-text("Save")').count(), 0, 'no Save button at all')
  await page.goto('/insights')
  await page.locator('[data-test=saved-insights]').waitFor()
  await s.settle(page)
  assert.equal(await page.locator('[data-test=save-insight]').count(), 0, 'no Save insight for a viewer')
  // Forcing the change from the page, with the session's own CSRF token: the server refuses.
  w.allowed.push((url, status) => status === 403 && /\/api\/v1\/(actions|alerts)\//.test(url))
  const statuses = await page.evaluate(async ({ actionId, alertId }) => {
    const csrf = document.cookie.split('; ').find((c) => c.startsWith('ns_csrf='))?.slice(8) ?? ''
    const h = { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf }
    const a = await fetch(`/api/v1/actions/${actionId}`, { method: 'PATCH', headers: h, body: '{"status":"done"}' })
    const b = await fetch(`/api/v1/alerts/${alertId}/ack`, { method: 'POST', headers: h, body: '{}' })
    return [a.status, b.status]
  }, { actionId: s.fx.actions[0], alertId: s.fx.alertId })
  assert.deepEqual(statuses, [403, 403])
  const action = await api(s.server, 'GET', `/api/v1/actions/${s.fx.actions[0]}`)
  assert.equal(action.status, 'in_progress', 'unchanged')
  await s.settle(page)
  s.clean(w)
  await context.close()
})

test('acknowledge a firing alert from the cockpit', async () => {
  const { context, page, w } = await s.open()
  await s.logIn(page, s.server.admin)
  const item = page.locator(`[data-alert-id="${s.fx.alertId}"]`)
  await item.waitFor()
  assert.equal(await item.getAttribute('data-state'), 'firing')
  assert.match(await item.innerText(), /Root cause|Payments/)
  await item.locator('[data-test=ack]').click()
  await page.locator(`[data-alert-id="${s.fx.alertId}"][data-state=acknowledged]`).waitFor()
  const alert = await api(s.server, 'GET', `/api/v1/alerts/${s.fx.alertId}`)
  assert.equal(alert.state, 'acknowledged')
  assert.equal(alert.acked_by, s.server.admin.email)
  await s.settle(page)
  s.clean(w)
  await context.close()
})

test('drag an action on the kanban: its status changes through the API', async () => {
  const { context, page, w } = await s.open()
  await s.logIn(page, s.server.admin)
  await page.goto(`/scenarios/${s.fx.scenarioId}`)
  await page.locator('#tab-kanban').click()
  const id = s.fx.actions[1]
  const card = page.locator(`[data-test=kanban] [data-action-id="${id}"]`)
  await card.waitFor()
  assert.equal(await card.evaluate((el) => el.closest('[data-status]').dataset.status), 'not_started')
  await card.dragTo(page.locator('[data-test=kanban] [data-status=done]'))
  await page.locator(`[data-test=kanban] [data-status=done] [data-action-id="${id}"]`).waitFor()
  assert.equal((await api(s.server, 'GET', `/api/v1/actions/${id}`)).status, 'done')
  // The same through the keyboard-friendly status menu.
  await page.locator(`[data-test=kanban] [data-action-id="${id}"] [data-test=status-select]`).selectOption('in_progress')
  await page.locator(`[data-test=kanban] [data-status=in_progress] [data-action-id="${id}"]`).waitFor()
  assert.equal((await api(s.server, 'GET', `/api/v1/actions/${id}`)).status, 'in_progress')
  // The Gantt draws both actions, the dependency and the critical path.
  await page.locator('#tab-gantt').click()
  await page.locator(`[data-test=gantt] [data-task-id="${id}"]`).waitFor()
  assert.equal(await page.locator('[data-test=gantt] path.dep').count(), 1, 'one dependency arrow')
  await s.settle(page)
  s.clean(w)
  await context.close()
})

/** Picks `text` in a filterable Element Plus select: type it, take the first match. */
async function choose(page, select, text) {
  await select.click()
  await page.keyboard.type(text)
  await page.locator('.el-select-dropdown__item:visible', { hasText: text }).first().waitFor()
  await page.keyboard.press('Enter')
  await select.locator('.el-select__selected-item', { hasText: text }).first().waitFor()
  await page.keyboard.press('Escape')
}

test('a 5-step funnel built in the page shows the numbers of the API; its drop-off persons list and download', async () => {
  const { context, page, w } = await s.open()
  await s.logIn(page, s.server.admin)
  await page.goto('/insights?kind=funnel')
  const steps = ['product_exposure', 'product_click', 'add_to_cart', 'order', 'pay']
  for (let i = 2; i < steps.length; i++) await page.locator('[data-test=add-step]').click()
  for (let i = 0; i < steps.length; i++) await choose(page, page.locator(`[data-test=step-${i}]`), steps[i])
  await page.locator('[data-test=funnel-builder] [data-test=run]').click()
  await page.locator('[data-test=funnel-table] [data-step-row="4"]').waitFor()
  const shown = await page.locator('[data-test=funnel-table] [data-col=count]').allInnerTexts()
  const today = s.fx.today
  const query = {
    kind: 'funnel', steps: steps.map((event) => ({ event })), window_seconds: 7 * 86400, order: 'ordered',
    date_from: addDays(today, -13), date_to: today, dropoff_limit: 100,
  }
  const answer = await api(s.server, 'POST', '/api/v1/query', query, { expect: 200 })
  assert.deepEqual(shown.map(Number), answer.steps.map((s) => s.count), 'the page shows the counts of the API')
  assert.ok(answer.steps[0].count > 0, 'the demo has people in the funnel')
  await page.locator('[data-test=dropoff-2]').click()
  const list = page.locator('[data-test=dropoff-list] li')
  await list.first().waitFor()
  assert.deepEqual(await list.allInnerTexts(), answer.steps[2].dropoff.persons)
  const [download] = await Promise.all([page.waitForEvent('download'), page.locator('[data-test=dropoff-csv]').click()])
  const csv = readFileSync(await download.path(), 'utf8').trim().split(/\r?\n/)
  assert.equal(csv[0], 'distinct_id')
  assert.equal(csv.length - 1, answer.steps[2].dropoff.count, 'every dropped-off person in the file')
  await page.screenshot({ path: join(s.shots, 'en-insights-funnel.png'), fullPage: true })
  // Saved, listed, and made a KPI of.
  await page.locator('[data-test=insight-name]').fill('Five steps')
  await page.locator('[data-test=save-insight]').click()
  await page.locator('[data-test=saved-insights] button', { hasText: 'Five steps' }).waitFor()
  const saved = (await api(s.server, 'GET', '/api/v1/insights')).insights.find((i) => i.name === 'Five steps')
  assert.deepEqual(saved.query.steps.map((s) => s.event), steps)
  await page.locator('[data-test=make-kpi]').click()
  // The KPI's own message: the save's may still be on screen on a loaded machine.
  await page.locator('.el-message--success', { hasText: 'KPI #' }).waitFor()
  const kpis = await api(s.server, 'GET', '/api/v1/kpis')
  assert.ok(kpis.some((k) => k.name === 'Five steps'), 'a KPI made from the insight')
  // Opened again by its id: the builder is filled in and shows the same numbers.
  await s.settle(page)
  await page.goto(`/insights?insight=${saved.id}`)
  await page.locator('[data-test=funnel-table] [data-step-row="4"]').waitFor()
  assert.deepEqual(await page.locator('[data-test=funnel-table] [data-col=count]').allInnerTexts(), shown)
  // Pinned to a new dashboard, which draws it.
  await page.locator('[data-test=pin-select]').click()
  await page.keyboard.type('Growth board')
  await page.keyboard.press('Enter')
  await page.locator('[data-test=pin]').click()
  await page.locator('.el-message--success', { hasText: 'Growth board' }).waitFor()
  const board = (await api(s.server, 'GET', '/api/v1/dashboards')).dashboards.find((d) => d.name === 'Growth board')
  assert.deepEqual(board.tiles.map((x) => x.insight_id), [saved.id])
  // The pin reloads the page's list of dashboards: leaving before it answers aborts it.
  await s.settle(page)
  await page.goto(`/dashboards?id=${board.id}`)
  await page.locator(`[data-tile-insight="${saved.id}"] canvas`).waitFor()
  await s.settle(page)
  s.clean(w)
  await context.close()
})

async function typeRange(page, picker, from, to) {
  const inputs = picker.locator('input')
  await inputs.nth(0).click()
  await inputs.nth(0).fill(from)
  await inputs.nth(1).fill(to)
  await inputs.nth(1).press('Enter') // (no Escape: it would close the dialog around the picker)
}

test('create a scenario (a refusal of the server shown under its field) with two dependent actions; the Gantt draws them', async () => {
  const { context, page, w } = await s.open()
  await s.logIn(page, s.server.admin)
  await page.goto('/scenarios')
  await page.locator('[data-test=new-scenario]').click()
  const dialog = page.locator('[data-test=new-scenario-dialog]')
  await dialog.locator('input[name=name]').fill('Browser-made scenario')
  await dialog.locator('textarea[name=success]').fill('a\nb\nc\nd')
  w.allowed.push((url, status) => status === 400 && url.endsWith('/api/v1/scenarios')) // asked for
  await dialog.locator('[data-test=create-scenario]').click()
  const err = dialog.locator('[data-field-error=success_criteria]')
  await err.waitFor()
  assert.match(await err.innerText(), /at most 3 criteria/)
  await dialog.locator('textarea[name=success]').fill('first-order conversion >= 20%')
  await typeRange(page, dialog.locator('.el-date-editor'), addDays(s.fx.today, -2), addDays(s.fx.today, 20))
  await dialog.locator('[data-test=create-scenario]').click()
  await page.waitForURL(/\/scenarios\/\d+$/)
  const id = Number(page.url().split('/').pop())
  await page.locator('#tab-process').click()
  const form = page.locator('[data-test=action-form]')
  await form.locator('input[name=action]').fill('First')
  await typeRange(page, form.locator('.el-date-editor'), addDays(s.fx.today, -1), addDays(s.fx.today, 3))
  await form.locator('[data-test=add-action]').click()
  await page.locator('#pane-process .el-table__row', { hasText: 'First' }).waitFor()
  await form.locator('input[name=action]').fill('Second')
  await typeRange(page, form.locator('.el-date-editor'), addDays(s.fx.today, 1), addDays(s.fx.today, 6))
  await form.locator('.el-select').click()
  await page.locator('.el-select-dropdown__item:visible', { hasText: 'First' }).click()
  await page.keyboard.press('Escape')
  await form.locator('[data-test=add-action]').click()
  await page.locator('#pane-process .el-table__row', { hasText: 'Second' }).waitFor()
  const sc = await api(s.server, 'GET', `/api/v1/scenarios/${id}`)
  assert.equal(sc.name, 'Browser-made scenario')
  const [first, second] = sc.actions
  assert.deepEqual([first.action, second.action, second.depends_on], ['First', 'Second', [first.id]])
  assert.equal(second.start_date, addDays(s.fx.today, 1))
  await page.locator('#tab-gantt').click()
  await page.locator(`[data-test=gantt] [data-task-id="${second.id}"]`).waitFor()
  assert.equal(await page.locator('[data-test=gantt] path.dep').count(), 1)
  // The four template tables as one workbook: the download is an XLSX with four sheets.
  const [xlsx] = await Promise.all([page.waitForEvent('download'), page.locator('[data-test=export-xlsx]').click()])
  const book = readFileSync(await xlsx.path())
  assert.equal(book.subarray(0, 2).toString(), 'PK', 'a zip file')
  for (let n = 1; n <= 4; n++) assert.ok(book.includes(`xl/worksheets/sheet${n}.xml`), `sheet ${n}`)
  // Second starts after First ends (the server's schedule): both on the critical path.
  assert.equal(await page.locator(`[data-test=gantt] [data-task-id="${second.id}"]`).getAttribute('data-critical'), 'true')
  await s.settle(page)
  s.clean(w)
  await context.close()
})

const PAGES = [
  { name: 'cockpit', path: '/', ready: '[data-test=cockpit] [data-metric=dau] canvas' },
  { name: 'scenarios', path: '/scenarios', ready: '[data-test=scenario-link]' },
  { name: 'scenario-requirements', path: () => `/scenarios/${s.fx.scenarioId}`, tab: 'requirements', ready: '.kv' },
  { name: 'scenario-process', path: () => `/scenarios/${s.fx.scenarioId}`, tab: 'process', ready: '#pane-process .el-table__row' },
  { name: 'scenario-monitoring', path: () => `/scenarios/${s.fx.scenarioId}`, tab: 'monitoring', ready: '#pane-monitoring .el-table__row' },
  { name: 'scenario-evaluation', path: () => `/scenarios/${s.fx.scenarioId}`, tab: 'evaluation', ready: '#pane-evaluation .texts' },
  { name: 'scenario-kanban', path: () => `/scenarios/${s.fx.scenarioId}`, tab: 'kanban', ready: '[data-test=kanban] [data-action-id]' },
  { name: 'scenario-gantt', path: () => `/scenarios/${s.fx.scenarioId}`, tab: 'gantt', ready: '[data-test=gantt] [data-task-id]' },
  { name: 'alerts', path: '/alerts', ready: '[data-test=alert-history] .el-table__row' },
  { name: 'insights', path: '/insights', ready: 'h1' },
  { name: 'dashboards', path: '/dashboards', ready: '[data-test=dashboards-page] h1' },
  { name: 'people', path: '/people', ready: '[data-test=person-link]' },
  { name: 'person', path: () => `/people/${encodeURIComponent(XSS)}`, ready: '[data-test=timeline] li' },
  { name: 'settings', path: '/settings', ready: '[data-test=audit-log] .el-table__row' },
  { name: 'not-found', path: '/no/such/page', ready: 'h1' },
]


test(`an event, scenario, action and KPI named ${XSS} open no dialog on any page`, async () => {
  const { context, page, w } = await s.open()
  await s.logIn(page, s.server.admin)
  for (const p of PAGES) await s.visit(page, p)
  await page.goto(`/scenarios/${s.fx.scenarioId}`)
  await page.locator('.kv').waitFor()
  assert.ok((await page.locator('.kv').innerText()).includes(XSS), 'the payload is shown as text')
  assert.equal(await page.locator('img[src="x"]').count(), 0, 'and never becomes an element')
  s.clean(w)
  await context.close()
})

test('screenshots of every page in both languages (and the cockpit at 390 px)', async () => {
  for (const lang of ['en', 'zh-CN']) {
    const { context, page, w } = await s.open({ lang: lang === 'en' ? 'en-US' : 'zh-CN' })
    await page.goto('/login')
    await page.locator('[data-test=login-form]').waitFor()
    await page.screenshot({ path: join(s.shots, `${lang}-login.png`) })
    await s.logIn(page, s.server.admin)
    assert.equal(await page.evaluate(() => document.documentElement.lang), lang)
    for (const p of PAGES) {
      await s.visit(page, p)
      await page.screenshot({ path: join(s.shots, `${lang}-${p.name}.png`), fullPage: true })
    }
    s.clean(w)
    await context.close()
  }
  // A phone (Feishu's or DingTalk's in-app browser): the cockpit, the alerts and a
  // scenario's kanban fit 390 px without sideways scrolling.
  const { context, page, w } = await s.open({ lang: 'zh-CN', width: 390, height: 844 })
  await s.logIn(page, s.server.admin)
  for (const p of PAGES.filter((x) => ['cockpit', 'alerts', 'scenario-kanban'].includes(x.name))) {
    await s.visit(page, p)
    const wide = await page.evaluate(() => document.documentElement.scrollWidth)
    assert.ok(wide <= 390, `${p.name}: no sideways scrolling at 390 px, the page is ${wide} px wide`)
    await page.screenshot({ path: join(s.shots, `zh-CN-${p.name}-390px.png`), fullPage: true })
    assert.deepEqual(w.problems, [], `${p.name} at 390 px`)
  }
  // The menu folds behind its button.
  await page.locator('.ns-burger').click()
  await page.locator('[data-test=nav-cockpit]').click()
  await page.locator('[data-test=cockpit] [data-metric=dau] canvas').waitFor()
  await s.settle(page)
  s.clean(w)
  await context.close()
  console.log(`screenshots in ${s.shots}`)
})
