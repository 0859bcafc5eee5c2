// The console's persons lists and exports that close issue 12 (docs/console.md), in a real
// browser: the People page filtered by a lifecycle stage, a tier and a tag (its CSV follows
// the filters), a distribution's "List" and a base tag's values; a funnel step's converted
// persons listed and downloaded, and the breakdown attribution sent and drawn; a saved
// insight renamed in place and an unsaved result exported as XLSX (read back, in both
// languages); the requirements table's key user group cohort and goal KPI chosen from lists.
// Each check compares the page with the API's own answer. Every page is watched (harness.mjs).
//
// Usage: node web/tests/lists_exports.test.mjs /path/to/northstar      (exit 77: no Chromium)
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { inflateRawSync } from 'node:zlib'
import { XSS, api, consoleSuite } from './harness.mjs'

const s = await consoleSuite(import.meta.url, { users: 500, days: 30 })

/** The files of a zip (an XLSX) by name: the central directory read, each entry inflated. */
function unzip(buf) {
  let eocd = buf.length - 22
  while (eocd >= 0 && buf.readUInt32LE(eocd) !== 0x06054b50) eocd--
  assert.ok(eocd >= 0, 'a zip file')
  const files = {}
  let p = buf.readUInt32LE(eocd + 16)
  for (let n = buf.readUInt16LE(eocd + 10); n > 0; n--) {
    assert.equal(buf.readUInt32LE(p), 0x02014b50, 'a central directory entry')
    const method = buf.readUInt16LE(p + 10)
    const size = buf.readUInt32LE(p + 20)
    const nameLen = buf.readUInt16LE(p + 28)
    const skip = nameLen + buf.readUInt16LE(p + 30) + buf.readUInt16LE(p + 32)
    const local = buf.readUInt32LE(p + 42)
    const name = buf.subarray(p + 46, p + 46 + nameLen).toString()
    const start = local + 30 + buf.readUInt16LE(local + 26) + buf.readUInt16LE(local + 28)
    const data = buf.subarray(start, start + size)
    files[name] = (method === 8 ? inflateRawSync(data) : data).toString('utf8')
    p += 46 + skip
  }
  return files
}

/** Waits until the People page shows `n` persons in all. */
async function peopleTotal(page, n) {
  await page.locator(`[data-test=people-total][data-total="${n}"]`).waitFor()
  await page.__nsWatch.idle()
}
const total = async (query) => (await api(s.server, 'GET', `/api/v1/persons?limit=1&${query}`)).total
/** A download's text. */
async function download(page, locator) {
  const [d] = await Promise.all([page.waitForEvent('download'), locator.click()])
  return readFileSync(await d.path())
}
/** A download link ends its request as aborted once the file is taken: not a failure. */
const forgiveDownloads = (w) => (w.problems = w.problems.filter((p) => !/request failed: GET \S*\/api\/v1\/persons\.csv\S* net::ERR_ABORTED/.test(p)))

/** Picks `text` in a filterable Element Plus select: type it, take the first match. */
async function choose(page, select, text) {
  await select.click()
  await page.keyboard.type(text)
  await page.locator('.el-select-dropdown__item:visible', { hasText: text }).first().waitFor()
  await page.keyboard.press('Enter')
  await select.locator('.el-select__selected-item', { hasText: text }).first().waitFor()
  await page.keyboard.press('Escape')
}

test('People: lifecycle, tier and tag filters equal the API; the CSV follows them; a distribution lists its persons', async () => {
  const { context, page, w } = await s.open()
  await s.logIn(page, s.fx.operator)
  await s.visit(page, { path: '/people', ready: '[data-test=people-total]' })
  await peopleTotal(page, await total(''))
  await page.locator('[data-test=people-lifecycle]').selectOption('active')
  const active = await total('lifecycle=active')
  assert.ok(active > 0, 'the demo has active persons')
  await peopleTotal(page, active)
  assert.match(page.url(), /lifecycle=active/, 'the filter is in the address')
  await page.locator('[data-test=people-tier]').selectOption('value:high')
  await peopleTotal(page, await total('lifecycle=active&tier=value:high'))
  // Every person listed is active (the list's own lifecycle column).
  for (const text of await page.locator('.el-table__body tr td:nth-child(2)').allInnerTexts()) assert.equal(text.trim(), 'active')
  await page.locator('[data-test=people-clear]').click()
  await page.locator('[data-test=people-tag]').selectOption('repeat_buyer')
  const repeat = await total('tag=repeat_buyer')
  assert.ok(repeat > 0, 'the demo has repeat buyers')
  await peopleTotal(page, repeat)
  // The export: every match of the filter, one row each.
  const csv = (await download(page, page.locator('[data-test=people-export]'))).toString('utf8').replace(/^\ufeff/, '').trim().split(/\r?\n/)
  assert.equal(csv[0].split(',')[0], 'distinct_id')
  assert.equal(csv.length - 1, repeat, 'the CSV has every repeat buyer')
  await s.shoot(page, 'people-filtered')

  // A tier's "List" on the distributions opens the People page on it, with the bar's count.
  await s.visit(page, { path: '/segments/distributions', ready: '[data-test=dist-tier-value-high][data-count]' })
  const high = Number(await page.locator('[data-test=dist-tier-value-high]').getAttribute('data-count'))
  await page.locator('[data-test=dist-list-tier-value-high]').click()
  await page.waitForURL(/\/people\?tier=value(:|%3A)high/)
  await peopleTotal(page, high)

  // A base tag's values: the API's, each listing as many persons.
  await s.visit(page, { path: '/segments/distributions', ready: '[data-test=dist-base-value]' })
  await page.locator('[data-test=dist-base-tag]').selectOption('city_tier')
  const values = await api(s.server, 'GET', '/api/v1/tags/city_tier/values?limit=30')
  assert.ok(values.values.length > 1, 'the demo has several city tiers')
  await page.locator(`[data-test=dist-base-value][data-value="${values.values[0].value}"]`).waitFor()
  const shown = await page.locator('[data-test=dist-base-value]').evaluateAll((els) => els.map((e) => [e.dataset.value, Number(e.dataset.count)]))
  assert.deepEqual(shown, values.values.map((v) => [v.value, v.persons]))
  assert.equal(Number(await page.locator('[data-test=dist-base-persons]').getAttribute('data-persons')), values.persons)
  await s.shoot(page, 'segments-base-tags')
  await page.locator(`[data-test=dist-base-list][data-value="${values.values[0].value}"]`).click()
  await page.waitForURL(/\/people\?tag=/)
  await peopleTotal(page, values.values[0].persons)
  assert.equal(await total(`tag=${encodeURIComponent(`city_tier:${values.values[0].value}`)}`), values.values[0].persons)

  // In Chinese: the filters' labels.
  await s.setLang(page, 'zh-CN')
  await page.getByText('生命周期阶段').waitFor()
  await s.shoot(page, 'people-filtered')
  await s.settle(page)
  forgiveDownloads(w)
  s.clean(w)
  await context.close()
})

test('Funnel: a step lists and downloads its converted persons; breakdown attribution; rename in place; XLSX of an unsaved result', async () => {
  const { context, page, w } = await s.open()
  await s.logIn(page, s.fx.operator)
  await page.goto('/insights?kind=funnel')
  const steps = ['product_exposure', 'add_to_cart', 'pay']
  await page.locator('[data-test=add-step]').click()
  for (let i = 0; i < steps.length; i++) await choose(page, page.locator(`[data-test=step-${i}]`), steps[i])
  /** Runs the builder and answers the query it sent with the API's answer to it. */
  const run = async () => {
    const [req] = await Promise.all([
      page.waitForRequest((r) => r.method() === 'POST' && new URL(r.url()).pathname === '/api/v1/query'),
      page.locator('[data-test=funnel-builder] [data-test=run]').click(),
    ])
    const query = req.postDataJSON()
    await page.locator(`[data-test=funnel-table] [data-step-row="${steps.length - 1}"]`).waitFor()
    await page.__nsWatch.idle()
    return { query, answer: await api(s.server, 'POST', '/api/v1/query', query, { expect: 200 }) }
  }
  const { query, answer } = await run()
  assert.equal(query.converted_limit, 100, 'the page asks for the converted persons')
  assert.ok(answer.steps[1].count > 0, 'the demo has persons who carted')
  await page.locator('[data-test=converted-1]').click()
  const list = page.locator('[data-test=converted-list] li')
  await list.first().waitFor()
  assert.deepEqual(await list.allInnerTexts(), answer.steps[1].converted_persons)
  const csv = (await download(page, page.locator('[data-test=converted-csv]'))).toString('utf8').trim().split(/\r?\n/)
  assert.equal(csv[0], 'distinct_id')
  assert.equal(csv.length - 1, answer.steps[1].count, 'every person who reached step 2 in the file')
  assert.deepEqual(csv.slice(1, 1 + answer.steps[1].converted_persons.length), answer.steps[1].converted_persons)
  await s.shoot(page, 'insights-funnel-converted')
  // The drop-off list still answers beside it.
  await page.locator('[data-test=dropoff-2]').click()
  await page.locator('[data-test=dropoff-list] li').first().waitFor()

  // Breakdown by channel, attributed to the last touch, then to step 2.
  await choose(page, page.locator('[data-test=funnel-breakdown-select]'), 'channel')
  await page.locator('[data-test=funnel-attribution]').selectOption('last_touch')
  const last = await run()
  assert.equal(last.query.breakdown_attribution, 'last_touch')
  const rows = async () =>
    page.locator('[data-test=funnel-breakdown-table] tbody tr').evaluateAll((trs) => trs.map((tr) => [...tr.querySelectorAll('td')].slice(0, -1).map((td) => td.textContent.trim())))
  // The page's bvalue(): a value list joined by " / ", null as "(null)".
  const name = (v) => (v === null || v === undefined ? '(null)' : Array.isArray(v) ? v.map((x) => String(x ?? '(null)')).join(' / ') : String(v))
  const want = (a) => a.breakdowns.map((b) => [name(b.breakdown_value), ...b.steps.map((x) => String(x.count))])
  assert.deepEqual(await rows(), want(last.answer))
  await page.locator('[data-test=funnel-attribution]').selectOption('step')
  await page.locator('[data-test=funnel-attribution-step]').selectOption({ index: 1 })
  const atStep = await run()
  assert.deepEqual(atStep.query.breakdown_attribution, { step: 1 })
  assert.equal(atStep.answer.breakdown_attribution, 'step')
  assert.deepEqual(await rows(), want(atStep.answer))

  // Saved, then renamed in place with its query changed: the same id, no new insight.
  await page.locator('[data-test=insight-name]').fill('Carts to pay')
  await page.locator('[data-test=save-insight]').click()
  await page.locator('[data-test=saved-insights] button', { hasText: 'Carts to pay' }).waitFor()
  const before = (await api(s.server, 'GET', '/api/v1/insights')).insights
  const saved = before.find((i) => i.name === 'Carts to pay')
  assert.deepEqual(saved.query.breakdown_attribution, { step: 1 }, 'the attribution is saved')
  await page.locator('[data-test=funnel-attribution]').selectOption('first_touch')
  await page.locator('[data-test=insight-name]').fill('Carts to pay (first touch)')
  await page.locator('[data-test=update-insight]').click()
  await page.locator('[data-test=saved-insights] button', { hasText: 'Carts to pay (first touch)' }).waitFor()
  const after = await api(s.server, 'GET', `/api/v1/insights/${saved.id}`)
  assert.equal(after.name, 'Carts to pay (first touch)')
  assert.equal(after.query.breakdown_attribution, undefined, 'the new query replaced the old one')
  assert.equal((await api(s.server, 'GET', '/api/v1/insights')).insights.length, before.length, 'no new insight')

  // A new, unsaved funnel: its result as XLSX, read back, in English then in Chinese.
  await s.settle(page)
  await page.goto('/insights?kind=funnel')
  await page.locator('[data-test=step-0]').waitFor()
  for (let i = 0; i < 2; i++) await choose(page, page.locator(`[data-test=step-${i}]`), steps[i + 1])
  const [req] = await Promise.all([
    page.waitForRequest((r) => r.method() === 'POST' && new URL(r.url()).pathname === '/api/v1/query'),
    page.locator('[data-test=funnel-builder] [data-test=run]').click(),
  ])
  await page.locator('[data-test=funnel-table] [data-step-row="1"]').waitFor()
  const unsaved = await api(s.server, 'POST', '/api/v1/query', req.postDataJSON(), { expect: 200 })
  const book = unzip(await download(page, page.locator('[data-test=result-xlsx]')))
  assert.deepEqual([...book['xl/workbook.xml'].matchAll(/<sheet name="([^"]+)"/g)].map((m) => m[1]), ['Funnel', 'About'])
  for (const text of ['Step', 'Persons', 'add_to_cart', 'pay']) assert.ok(book['xl/sharedStrings.xml'].includes(text), text)
  for (const st of unsaved.steps) assert.ok(book['xl/worksheets/sheet1.xml'].includes(`<v>${st.count}</v>`), `count ${st.count}`)
  await s.setLang(page, 'zh-CN')
  const zh = unzip(await download(page, page.locator('[data-test=result-xlsx]')))
  assert.ok(zh['xl/sharedStrings.xml'].includes('步骤') && zh['xl/workbook.xml'].includes('查询说明'), 'Chinese headings and sheet')
  await s.settle(page)
  s.clean(w)
  await context.close()
})

test('Requirements: the key user group cohort and the goal KPI chosen from lists; the viewer sees them read only', async () => {
  const cohort = await api(s.server, 'POST', '/api/v1/cohorts', {
    name: 'Carted this month',
    definition: { op: 'and', conditions: [{ type: 'performed', event: 'add_to_cart', last_days: 30 }] },
  })
  const { context, page, w } = await s.open()
  await s.logIn(page, s.fx.operator)
  const path = `/scenarios/${s.fx.scenarioId}`
  await s.visit(page, { path, tab: 'requirements', ready: '[data-test=edit-requirements]' })
  await page.locator('[data-test=edit-requirements]').click()
  await page.locator(`[data-test=req-cohort] option[value="${cohort.id}"]`).waitFor({ state: 'attached' })
  await page.locator('[data-test=req-cohort]').selectOption({ label: `#${cohort.id} Carted this month` })
  await page.locator('[data-test=req-goal-kpi]').selectOption({ label: `#${s.fx.kpiId} Payments ${XSS}` })
  await page.locator('[data-test=save-requirements]').click()
  await page.locator('[data-test=edit-requirements]').waitFor()
  const sc = await api(s.server, 'GET', `/api/v1/scenarios/${s.fx.scenarioId}`)
  assert.deepEqual(sc.key_user_group, { description: XSS, cohort_id: cohort.id }, 'the cohort chosen, the description kept')
  assert.deepEqual(sc.goal, { metric: XSS, target: 0.2, kpi_id: s.fx.kpiId }, 'the KPI chosen, metric and target kept')
  const size = (await api(s.server, 'GET', `/api/v1/cohorts/${cohort.id}`)).size
  const shown = await page.locator('[data-test=req-key_user_group-link]').innerText()
  assert.ok(shown.includes('Carted this month') && shown.includes(size.toLocaleString('en-US')), `the cohort and its size: ${shown}`)
  // The KPI's name is the payload as text, escaped once (not "&lt;img").
  assert.equal((await page.locator('[data-test=req-goal-link]').innerText()).trim(), `KPI #${s.fx.kpiId} · Payments ${XSS}`)
  await s.shoot(page, 'scenario-requirements-links')
  // Back to no KPI: the goal keeps its metric and target.
  await page.locator('[data-test=edit-requirements]').click()
  await page.locator('[data-test=req-goal-kpi]').selectOption({ index: 0 })
  await page.locator('[data-test=save-requirements]').click()
  await page.locator('[data-test=edit-requirements]').waitFor()
  await page.__nsWatch.idle()
  assert.deepEqual((await api(s.server, 'GET', `/api/v1/scenarios/${s.fx.scenarioId}`)).goal, { metric: XSS, target: 0.2 })
  await s.setLang(page, 'zh-CN')
  await page.locator('[data-test=req-key_user_group-link]', { hasText: '人群' }).waitFor()
  await s.shoot(page, 'scenario-requirements-links')
  await s.settle(page)
  s.clean(w)
  await context.close()

  const v = await s.open()
  await s.logIn(v.page, s.fx.viewer)
  await s.visit(v.page, { path, tab: 'requirements', ready: '[data-test=req-key_user_group-link]' })
  assert.equal(await v.page.locator('[data-test=edit-requirements], [data-test=req-cohort]').count(), 0, 'no edit control for a viewer')
  await s.settle(v.page)
  s.clean(v.w)
  await v.context.close()
})
