// Editing scenarios and dashboards in the console (issue 12): the four template tables edited
// in place with the server's refusals under the cell they name, deleting an action in an
// Element Plus dialog, a KPI made from the scenario page, and a dashboard renamed, arranged
// and deleted — each checked against the API's own answer; in Chinese; a viewer gets no edit
// control. Runs as ctest console_scenarios.
//
// Usage: node web/tests/scenarios.test.mjs /path/to/northstar      (exit 77: no Chromium)
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { addDays, api, consoleSuite } from './harness.mjs'

// A small demo: these tests edit rows, they do not need many persons.
const s = await consoleSuite(import.meta.url, { users: 300, days: 14 })

/** The input of an edited cell (Element Plus puts the attributes on the input itself). */
const cell = (row, name) => row.locator(`input[data-edit=${name}], textarea[data-edit=${name}], [data-edit=${name}] input`).first()

/**
 * The form controls under `root` that have no accessible name (aria-label, aria-labelledby, a
 * <label for>, a wrapping <label>, a title or a placeholder; a button its text), visible ones only.
 */
async function unlabelled(page, root) {
  return page.locator(root).first().evaluate((el) => {
    const named = (c) => {
      if (c.getAttribute('aria-label')?.trim() || c.getAttribute('aria-labelledby') || c.title?.trim()) return true
      if (c.id && document.querySelector(`label[for="${CSS.escape(c.id)}"]`)) return true
      if (c.closest('label')) return true
      if (c.tagName === 'BUTTON' || c.getAttribute('role') === 'button') return !!c.textContent.trim()
      return !!c.getAttribute('placeholder')?.trim()
    }
    const controls = [...el.querySelectorAll('input:not([type=hidden]), select, textarea, button, [role=button], [tabindex="0"]')]
    return controls.filter((c) => c.offsetParent !== null && !c.disabled && !named(c)).map((c) => c.outerHTML.slice(0, 160))
  })
}

/** Types a day into an Element Plus date picker's input and confirms it. */
async function typeDay(input, day) {
  await input.click()
  await input.fill(day)
  await input.press('Enter')
}

test('the template tables: edit an action inline (a refusal shown under its cell), the requirements and the evaluation; delete an action; a new KPI', async () => {
  const { context, page, w } = await s.open()
  await s.logIn(page, s.server.admin)
  const [id] = s.fx.actions
  const doomed = await api(s.server, 'POST', `/api/v1/scenarios/${s.fx.scenarioId}/actions`, { action: 'To be deleted', owner: 'nobody' })
  await s.visit(page, { path: `/scenarios/${s.fx.scenarioId}`, tab: 'process', ready: `#pane-process [data-action-row="${doomed.id}"]` })
  const before = await api(s.server, 'GET', `/api/v1/actions/${id}`)

  // Due before start: the server's message under the due-date cell, nothing changed.
  await page.locator(`[data-action-row="${id}"] [data-test=edit-action]`).click()
  const row = page.locator('#pane-process tr.editing')
  await cell(row, 'owner').fill('wang.wu')
  await typeDay(cell(row, 'due_date'), addDays(before.start_date, -2))
  w.allowed.push((url, status) => status === 400 && url.endsWith(`/api/v1/actions/${id}`)) // asked for
  await row.locator('[data-test=save-action]').click()
  const err = row.locator('[data-field-error=due_date]')
  await err.waitFor()
  assert.match(await err.innerText(), /due_date: is before start_date/)
  const unchanged = await api(s.server, 'GET', `/api/v1/actions/${id}`)
  assert.deepEqual([unchanged.owner, unchanged.due_date], [before.owner, before.due_date])

  // A good due date: owner and due date saved.
  const due = addDays(before.start_date, 10)
  await typeDay(cell(row, 'due_date'), due)
  await cell(row, 'owner').press('Enter') // Enter in a text cell saves the row
  await page.locator('#pane-process tr.editing').waitFor({ state: 'detached' })
  const after = await api(s.server, 'GET', `/api/v1/actions/${id}`)
  assert.deepEqual([after.owner, after.due_date], ['wang.wu', due])
  await page.locator('#pane-process .el-table__row', { hasText: 'wang.wu' }).waitFor()

  // Delete an action: an Element Plus dialog asks first (no window.confirm).
  await page.locator(`[data-action-row="${doomed.id}"] [data-test=delete-action]`).click()
  const dialog = page.locator('[data-test=confirm-dialog]')
  await dialog.waitFor()
  assert.match(await dialog.innerText(), /To be deleted/)
  await dialog.locator('[data-test=confirm-ok]').click()
  await page.locator(`[data-action-row="${doomed.id}"]`).waitFor({ state: 'detached' })
  await api(s.server, 'GET', `/api/v1/actions/${doomed.id}`, undefined, { expect: 404 })

  // Requirements: four success criteria are refused under that row; an owner saved.
  await page.locator('#tab-requirements').click()
  const req = page.locator('[data-test=requirements]')
  await req.locator('[data-test=edit-requirements]').click()
  assert.deepEqual(await unlabelled(page, '[data-test=requirements]'), [], 'every requirement input has a name')
  await req.locator('textarea[name=success_criteria]').fill('a\nb\nc\nd')
  w.allowed.push((url, status) => status === 400 && url.endsWith(`/api/v1/scenarios/${s.fx.scenarioId}`))
  await req.locator('[data-test=save-requirements]').click()
  await req.locator('[data-field-error=success_criteria]').waitFor()
  assert.match(await req.locator('[data-field-error=success_criteria]').innerText(), /at most 3 criteria/)
  await req.locator('textarea[name=success_criteria]').fill('first-order conversion >= 20%')
  await req.locator('input[name=owner]').fill('li.na')
  await req.locator('[data-test=save-requirements]').click()
  await req.locator('[data-test=edit-requirements]').waitFor()
  const sc = await api(s.server, 'GET', `/api/v1/scenarios/${s.fx.scenarioId}`)
  assert.deepEqual([sc.owner, sc.success_criteria], ['li.na', ['first-order conversion >= 20%']])

  // The evaluation's texts.
  await page.locator('#tab-evaluation').click()
  await page.locator('[data-test=edit-evaluation]').click()
  assert.deepEqual(await unlabelled(page, '#pane-evaluation'), [], 'every evaluation input has a name')
  await page.locator('[data-test=evaluation-form] textarea[name=what_worked]').fill('Coupons lifted first orders')
  await page.locator('[data-test=save-evaluation]').click()
  await page.locator('[data-text=what_worked]', { hasText: 'Coupons lifted first orders' }).waitFor()
  assert.equal((await api(s.server, 'GET', `/api/v1/scenarios/${s.fx.scenarioId}/evaluation`)).what_worked, 'Coupons lifted first orders')

  // A KPI of this scenario from the monitoring table.
  await page.locator('#tab-monitoring').click()
  const form = page.locator('[data-test=kpi-form]')
  await page.locator('[data-test=edit-kpi-row]').first().click()
  assert.deepEqual(await unlabelled(page, '#pane-monitoring'), [], 'every monitoring control has a name')
  await form.locator('input[name=kpi-name]').fill('Paid orders this month')
  await form.locator('select[name=kpi-event]').selectOption('pay')
  await form.locator('input[name=kpi-target]').fill('500')
  await form.locator('[data-test=create-kpi]').click()
  await page.locator('[data-test=monitoring-table] .el-table__row', { hasText: 'Paid orders this month' }).waitFor()
  const kpi = (await api(s.server, 'GET', '/api/v1/kpis')).find((k) => k.name === 'Paid orders this month')
  assert.ok(kpi, 'GET /api/v1/kpis has the new KPI')
  assert.deepEqual([kpi.scenario_id, kpi.target, kpi.query.series[0].event], [s.fx.scenarioId, 500, 'pay'])

  // Screenshots of the editing in both languages.
  await page.locator('#tab-process').click()
  await page.locator(`[data-action-row="${id}"] [data-test=edit-action]`).click()
  assert.deepEqual(await unlabelled(page, '#pane-process'), [], 'every control of the process table has a name')
  await s.shoot(page, 'scenario-process-editing')
  await s.setLang(page, 'zh-CN')
  assert.equal(await page.locator('[data-test=save-action]').innerText(), '保存')
  await page.locator('[data-test=cancel-action]').click()
  assert.equal(await page.locator(`[data-action-row="${id}"] [data-test=edit-action]`).innerText(), '编辑')
  await page.locator(`[data-action-row="${id}"] [data-test=edit-action]`).click()
  await s.shoot(page, 'scenario-process-editing')
  await page.locator('#tab-monitoring').click()
  await page.locator('[data-test=kpi-form] h3', { hasText: '为本场景新建指标' }).waitFor()
  await s.shoot(page, 'scenario-monitoring-editing')
  await s.setLang(page, 'en')
  await s.shoot(page, 'scenario-monitoring-editing')
  await s.settle(page)
  s.clean(w)
  await context.close()
})

test('a dashboard renamed, its tiles moved (buttons, arrow keys, mouse) and removed, and a dashboard deleted', async () => {
  const q = (event) => ({ kind: 'trends', series: [{ event, math: 'total' }], date_from: '-6d', date_to: 'today' })
  const a = await api(s.server, 'POST', '/api/v1/insights', { name: 'Payments', query: q('pay') })
  const b = await api(s.server, 'POST', '/api/v1/insights', { name: 'Any events', query: q('$any') })
  const board = await api(s.server, 'POST', '/api/v1/dashboards', {
    name: 'Weekly board',
    tiles: [{ insight_id: a.id, x: 0, y: 0, w: 6, h: 4 }, { insight_id: b.id, x: 6, y: 0, w: 6, h: 4 }],
  })
  const spare = await api(s.server, 'POST', '/api/v1/dashboards', { name: 'Spare board', tiles: [] })
  const { context, page, w } = await s.open({ lang: 'zh-CN' })
  await s.logIn(page, s.server.admin)
  await s.visit(page, { path: `/dashboards?id=${board.id}`, ready: `[data-tile-insight="${b.id}"] canvas` })

  await page.locator('[data-test=rename-dashboard]').click()
  await page.locator('#dashboard-name').fill('Growth weekly')
  await page.locator('[data-test=save-name]').click()
  await page.locator('[data-test=dashboard-name]', { hasText: 'Growth weekly' }).waitFor()
  assert.equal((await api(s.server, 'GET', `/api/v1/dashboards/${board.id}`)).name, 'Growth weekly')

  await page.locator('[data-test=arrange]').click()
  assert.match(await page.locator('[data-test=save-layout]').innerText(), /保存布局/)
  assert.deepEqual(await unlabelled(page, '[data-test=dashboards-page]'), [], 'every dashboard control has a name')
  await s.shoot(page, 'dashboard-arrange')
  await page.locator(`[data-tile-insight="${b.id}"] [data-test=tile-remove]`).click()
  const tile = page.locator(`[data-tile-insight="${a.id}"]`)
  await tile.locator('[data-test=tile-right]').click()
  await tile.locator('[data-test=tile-right]').click()
  await tile.locator('[data-test=tile-wider]').click()
  await tile.focus()
  await page.keyboard.press('ArrowDown') // moves down a row
  await page.keyboard.press('Shift+ArrowDown') // one row taller
  assert.match(await tile.locator('[data-test=tile-pos]').innerText(), /3.*2.*7 × 5/)
  // And with the mouse: dragged two columns to the left.
  const grid = await page.locator('[data-dashboard-id]').boundingBox()
  const box = await tile.boundingBox()
  const col = (grid.width + 12) / 12
  await tile.dragTo(page.locator('[data-dashboard-id]'), {
    sourcePosition: { x: box.width / 2, y: 30 },
    targetPosition: { x: box.x - grid.x + box.width / 2 - 2 * col, y: box.y - grid.y + 30 },
  })
  assert.match(await tile.locator('[data-test=tile-pos]').innerText(), /1.*2.*7 × 5/)
  await page.locator('[data-test=save-layout]').click()
  await page.locator('[data-test=arrange]').waitFor()
  const saved = await api(s.server, 'GET', `/api/v1/dashboards/${board.id}`)
  assert.deepEqual(saved.tiles.map(({ insight_id, x, y, w, h }) => ({ insight_id, x, y, w, h })), [{ insight_id: a.id, x: 0, y: 1, w: 7, h: 5 }])
  await page.locator(`[data-tile-insight="${a.id}"] canvas`).waitFor()
  await s.setLang(page, 'en')
  await s.shoot(page, 'dashboard-arranged')

  // Delete the spare dashboard through the dialog.
  await page.goto(`/dashboards?id=${spare.id}`)
  await page.locator('[data-test=dashboard-name]', { hasText: 'Spare board' }).waitFor()
  await page.locator('[data-test=delete-dashboard]').click()
  await page.locator('[data-test=confirm-dialog] [data-test=confirm-ok]').click()
  await page.waitForURL((u) => !u.search.includes(`id=${spare.id}`))
  await api(s.server, 'GET', `/api/v1/dashboards/${spare.id}`, undefined, { expect: 404 })
  await s.settle(page)
  s.clean(w)
  await context.close()
})

test('a viewer sees the scenario and dashboard pages without an edit control', async () => {
  const { context, page, w } = await s.open()
  await s.logIn(page, s.fx.viewer)
  await s.visit(page, { path: `/scenarios/${s.fx.scenarioId}`, tab: 'process', ready: '#pane-process .el-table__row' })
  for (const tab of ['requirements', 'monitoring', 'evaluation']) await page.locator(`#tab-${tab}`).click()
  await page.locator('#pane-evaluation .texts').waitFor()
  for (const sel of ['edit-action', 'delete-action', 'note-input', 'action-form', 'edit-requirements', 'edit-kpi-row', 'kpi-form', 'edit-evaluation'])
    assert.equal(await page.locator(`[data-test=${sel}]`).count(), 0, `no ${sel} for a viewer`)
  await s.visit(page, { path: '/dashboards', ready: '[data-test=dashboard-name]' })
  for (const sel of ['rename-dashboard', 'arrange', 'delete-dashboard', 'tile-controls'])
    assert.equal(await page.locator(`[data-test=${sel}]`).count(), 0, `no ${sel} for a viewer`)
  await s.settle(page)
  s.clean(w)
  await context.close()
})
