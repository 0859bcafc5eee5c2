// The Insights builders issue 11's server made possible (issue 12): paths as a Sankey,
// stickiness, trends formulas, the funnel's visualisations, relative dates, PNG export and
// deleting a saved insight — each checked against POST /api/v1/query's own answer to the
// query the page sent, in a real Chromium (web/tests/harness.mjs). Screenshots of every
// builder in both languages.
//
// Usage: node web/tests/insights.test.mjs /path/to/northstar      (exit 77: no Chromium)
import { after, test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { api, consoleSuite } from './harness.mjs'

// A smaller demo than console.test.mjs's: every number is checked against the API anyway.
const s = await consoleSuite(import.meta.url, { users: 1000, days: 30 })

/** Picks `text` in a filterable Element Plus select: type it, take the first match. */
async function choose(page, select, text) {
  await select.click()
  await page.keyboard.type(text)
  await page.locator('.el-select-dropdown__item:visible', { hasText: text }).first().waitFor()
  await page.keyboard.press('Enter')
  await select.locator('.el-select__selected-item', { hasText: text }).first().waitFor()
  await page.keyboard.press('Escape')
}

/** Clicks the builder's Run and returns the query it sent and the answer it got. */
async function run(page, builder) {
  const [req] = await Promise.all([
    page.waitForRequest((r) => r.url().endsWith('/api/v1/query') && r.method() === 'POST'),
    page.locator(`[data-test=${builder}] [data-test=run]`).click(),
  ])
  const res = await req.response()
  assert.equal(res.status(), 200, `the ${builder}'s query is answered`)
  return { query: JSON.parse(req.postData()), answer: await res.json() }
}

// One logged-in page for every test (a login costs a cockpit load); each test opens its
// builder by URL and checks the page is clean at its end.
let shared = null
async function loggedIn() {
  if (!shared) {
    shared = await s.open()
    await s.logIn(shared.page, s.server.admin)
  }
  return shared
}
after(() => shared?.context.close().catch(() => {}))

const cellTexts = (loc) => loc.allInnerTexts().then((xs) => xs.map((x) => Number(x.trim())))

test('paths: the Sankey and its tables show the API\'s nodes and edges; PNG export; save and delete', async () => {
  const { page, w } = await loggedIn()
  await s.visit(page, { path: '/insights?kind=paths', ready: '[data-test=paths-builder]' })
  await choose(page, page.locator('[data-test=paths-start]'), 'product_click')
  const depth = page.locator('[data-test=paths-depth] input')
  await depth.fill('4')
  await depth.blur()
  const { query, answer: shown } = await run(page, 'paths-builder')
  assert.equal(query.start_event, 'product_click')
  assert.equal(query.step_limit, 4)
  // The default range is a relative date of the server, sent as such.
  assert.deepEqual([query.date_from, query.date_to], ['last_7_days', 'last_7_days'])
  const answer = await api(s.server, 'POST', '/api/v1/query', query, { expect: 200 })
  assert.ok(answer.edges.length > 3 && answer.nodes.length > 3, 'the demo has paths')
  assert.deepEqual(shown.edges, answer.edges)
  const chart = page.locator('[data-chart=paths]')
  await chart.locator('canvas').waitFor()
  assert.equal(Number(await chart.getAttribute('data-links')), answer.edges.length, 'one Sankey flow per edge')
  assert.equal(Number(await chart.getAttribute('data-nodes')), answer.nodes.length, 'one Sankey node per node')
  const edges = page.locator('[data-test=paths-edges] tbody tr')
  assert.equal(await edges.count(), answer.edges.length)
  assert.deepEqual(await cellTexts(edges.locator('[data-col=persons]')), answer.edges.map((e) => e.persons))
  assert.deepEqual(await cellTexts(edges.locator('[data-col=paths]')), answer.edges.map((e) => e.paths))
  const first = answer.edges[0]
  await page.locator(`[data-test=paths-edges] tr[data-source="${first.source}"][data-target="${first.target}"]`).waitFor()
  const nodes = page.locator('[data-test=paths-nodes] tbody tr')
  assert.deepEqual(await nodes.evaluateAll((rows) => rows.map((r) => r.dataset.node)), answer.nodes.map((n) => n.id))
  assert.deepEqual(await cellTexts(nodes.locator('[data-col=persons]')), answer.nodes.map((n) => n.persons))
  assert.deepEqual(await cellTexts(nodes.locator('[data-col=dropoff]')), answer.nodes.map((n) => n.dropoff_persons))
  // PNG export of the chart.
  const [download] = await Promise.all([page.waitForEvent('download'), chart.locator('[data-test=export-png]').click()])
  assert.equal(download.suggestedFilename(), 'paths.png')
  const png = readFileSync(await download.path())
  assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'a PNG file')
  assert.ok(png.length > 5000, 'with a picture in it')
  // Saved with its relative range, then deleted.
  await page.locator('[data-test=insight-name]').fill('Paths after a click')
  await page.locator('[data-test=insight-tags]').click()
  await page.keyboard.type('growth')
  await page.keyboard.press('Enter')
  await page.keyboard.press('Escape')
  await page.locator('[data-test=save-insight]').click()
  await page.locator('[data-test=saved-insights] button', { hasText: 'Paths after a click' }).waitFor()
  const saved = (await api(s.server, 'GET', '/api/v1/insights')).insights.find((i) => i.name === 'Paths after a click')
  assert.equal(saved.kind, 'paths')
  assert.equal(saved.query.date_from, 'last_7_days', 'saved as "the last 7 days", not as two dates')
  assert.deepEqual(saved.tags, ['growth'])
  await page.locator('[data-test=saved-insights] button', { hasText: '#growth' }).waitFor()
  await page.locator('[data-test=delete-insight]').click()
  await page.locator('.el-popconfirm .el-button--primary:visible').click()
  await page.locator('.el-message--success', { hasText: 'deleted' }).waitFor()
  await page.locator('[data-test=saved-insights] button', { hasText: 'Paths after a click' }).waitFor({ state: 'detached' })
  assert.ok(!(await api(s.server, 'GET', '/api/v1/insights')).insights.some((i) => i.id === saved.id), 'gone from the API')
  await s.settle(page)
  s.clean(w)
})

test('stickiness: the bars\' table shows the API\'s persons per number of active days', async () => {
  const { page, w } = await loggedIn()
  await s.visit(page, { path: '/insights?kind=stickiness', ready: '[data-test=stickiness-builder]' })
  await choose(page, page.locator('[data-test=stickiness-event-0]'), 'app_launch')
  await page.locator('[data-test=stickiness-builder] [data-test=add-series]').click()
  await choose(page, page.locator('[data-test=stickiness-event-1]'), 'pay')
  // Only the persons of one channel: a filter on every series.
  await page.locator('[data-test=stickiness-builder] [data-test=add-filter]').click()
  await choose(page, page.locator('[data-test=stickiness-builder] [data-test=filter-property]'), 'channel')
  await page.locator('[data-test=stickiness-builder] [data-test=filter-value]').fill('organic')
  const { query, answer: shown } = await run(page, 'stickiness-builder')
  assert.deepEqual(query.series.map((x) => x.event), ['app_launch', 'pay'])
  assert.deepEqual(query.filters, [{ property: 'channel', op: 'eq', value: 'organic' }])
  const answer = await api(s.server, 'POST', '/api/v1/query', query, { expect: 200 })
  assert.deepEqual(shown.series, answer.series)
  assert.equal(answer.intervals, 7, 'the last 7 days')
  await page.locator('[data-chart=stickiness] canvas').waitFor()
  const rows = page.locator('[data-test=stickiness-table] tbody tr[data-intervals]')
  assert.equal(await rows.count(), answer.intervals)
  for (const j of [0, 1]) {
    assert.deepEqual(await cellTexts(rows.locator(`[data-series="${j}"]`)), answer.series[j].counts.map((c) => c.persons))
    assert.equal(Number(await page.locator(`[data-test=stickiness-table] [data-total="${j}"]`).innerText()), answer.series[j].persons)
  }
  assert.ok(answer.series[0].persons > 0, 'the demo has app launches')
  s.clean(w)
})

test('trends: a formula over two series, compared with the previous period, as one number each', async () => {
  const { page, w } = await loggedIn()
  await s.visit(page, { path: '/insights?kind=trends', ready: '[data-test=trends-builder]' })
  await choose(page, page.locator('[data-test=series-event-0]'), 'pay')
  await page.locator('[data-test=trends-builder] [data-test=add-series]').click()
  await page.locator('[data-test=series-math-1]').click()
  await page.locator('.el-select-dropdown__item:visible', { hasText: /^Unique persons$/ }).click()
  await page.locator('[data-test=formula]').fill('A / B * 100')
  // Payers paying more than 100 (the series' own filter).
  await page.locator('[data-test=series-filter-0]').click()
  await choose(page, page.locator('[data-series-filters="0"] [data-test=filter-property]'), 'amount')
  await page.locator('[data-series-filters="0"] [data-test=filter-op]').click()
  await page.locator('.el-select-dropdown__item:visible', { hasText: /^>$/ }).click()
  await page.locator('[data-series-filters="0"] [data-test=filter-value]').fill('100')
  await page.locator('[data-test=compare]').click()
  await page.locator('.el-select-dropdown__item:visible', { hasText: 'Compare to previous period' }).click()
  // Lines first: the formula's series is drawn.
  let { query, answer } = await run(page, 'trends-builder')
  assert.equal(query.formula, 'A / B * 100')
  assert.equal(query.compare, 'previous_period')
  assert.deepEqual(query.series, [{ event: 'pay', math: 'dau', filters: [{ property: 'amount', op: 'gt', value: 100 }] }, { event: '$any', math: 'dau' }])
  await page.locator('[data-chart=trends] canvas').waitFor()
  const labels = await page.locator('[data-test=trends-table] .el-table__row').allInnerTexts()
  assert.equal(labels.length, 6, 'two series and the formula, now and in the previous period')
  assert.ok(labels.some((l) => l.includes('A / B * 100 (previous period)')))
  // One number per series: the formula over the totals, as the API computes it.
  await page.locator('[data-test=display] .el-radio-button', { hasText: 'Number' }).click()
  ;({ query, answer } = await run(page, 'trends-builder'))
  assert.equal(query.display, 'number')
  const api2 = await api(s.server, 'POST', '/api/v1/query', query, { expect: 200 })
  const formula = api2.series.find((x) => x.math === 'formula' && x.compare_label === 'current')
  assert.ok(formula.aggregated_value > 0 && formula.aggregated_value < 100, 'a share of the active persons')
  const card = page.locator('[data-test=trend-numbers] .number[data-series="2"]')
  assert.equal(Number(await card.getAttribute('data-value')), formula.aggregated_value)
  assert.deepEqual(answer.series.map((x) => x.aggregated_value), api2.series.map((x) => x.aggregated_value))
  s.clean(w)
})

test('funnel: the time-to-convert histogram and the conversion over time of the API', async () => {
  const { page, w } = await loggedIn()
  await s.visit(page, { path: '/insights?kind=funnel', ready: '[data-test=funnel-builder]' })
  await choose(page, page.locator('[data-test=step-0]'), 'add_to_cart')
  await choose(page, page.locator('[data-test=step-1]'), 'pay')
  await choose(page, page.locator('[data-test=funnel-breakdown-select]'), 'channel')
  await page.locator('[data-test=funnel-viz] .el-radio-button', { hasText: 'Time to convert' }).click()
  let { query, answer } = await run(page, 'funnel-builder')
  assert.equal(query.viz, 'time_to_convert')
  const api1 = await api(s.server, 'POST', '/api/v1/query', query, { expect: 200 })
  assert.deepEqual(answer.time_to_convert, api1.time_to_convert)
  assert.ok(api1.time_to_convert.count > 0)
  // The breakdown: one group of bars per value, and its table.
  assert.deepEqual(query.breakdown, ['channel'])
  assert.ok(api1.breakdowns.length > 1)
  await page.locator('[data-chart=funnel-breakdown] canvas').waitFor()
  const byValue = page.locator('[data-test=funnel-breakdown-table] tbody tr')
  assert.deepEqual(await byValue.evaluateAll((rows) => rows.map((r) => r.cells[0].textContent)), api1.breakdowns.map((b) => String([b.breakdown_value].flat()[0] ?? '(null)')))
  assert.deepEqual(await cellTexts(byValue.locator('td:nth-child(2)')), api1.breakdowns.map((b) => b.steps[0].count))
  await page.locator('[data-chart=funnel-time-to-convert] canvas').waitFor()
  assert.match(await page.locator('[data-test=ttc-summary]').innerText(), new RegExp(`^${api1.time_to_convert.count.toLocaleString('en-US')} conversions`))
  await page.locator('[data-test=funnel-viz] .el-radio-button', { hasText: 'Conversion over time' }).click()
  ;({ query, answer } = await run(page, 'funnel-builder'))
  assert.equal(query.viz, 'trends')
  const api2 = await api(s.server, 'POST', '/api/v1/query', query, { expect: 200 })
  const rows = page.locator('[data-test=funnel-trends-table] tbody tr')
  assert.equal(await rows.count(), api2.trends.dates.length)
  assert.deepEqual(await cellTexts(rows.locator('td:nth-child(3)')), api2.trends.to_counts)
  // Correlation analysis: which events go with paying, the API's counts and ratios.
  await page.locator('[data-test=funnel-viz] .el-radio-button', { hasText: 'Correlation' }).click()
  ;({ query, answer } = await run(page, 'funnel-builder'))
  assert.equal(query.viz, 'correlation')
  const api3 = await api(s.server, 'POST', '/api/v1/query', query, { expect: 200 })
  const corr = page.locator('[data-test=correlation-events] tbody tr')
  await corr.first().waitFor()
  assert.deepEqual(await cellTexts(corr.locator('[data-col=success]')), api3.correlation.events.map((e) => e.success_count))
  assert.deepEqual(await cellTexts(corr.locator('[data-col=failure]')), api3.correlation.events.map((e) => e.failure_count))
  // What the persons who added to the cart and did not pay did instead: the funnel's paths.
  const [req] = await Promise.all([
    page.waitForRequest((r) => r.url().endsWith('/api/v1/query') && JSON.parse(r.postData()).kind === 'paths'),
    page.locator('[data-test=paths-before-1]').click(),
  ])
  const pathsQuery = JSON.parse(req.postData())
  assert.deepEqual([pathsQuery.funnel_step, pathsQuery.mode, pathsQuery.funnel.steps.map((x) => x.event)], [0, 'before', ['add_to_cart', 'pay']])
  assert.equal(pathsQuery.date_from, undefined, "the funnel's range")
  const api4 = await api(s.server, 'POST', '/api/v1/query', pathsQuery, { expect: 200 })
  await page.locator('[data-test=paths-funnel]').waitFor()
  const edges = page.locator('[data-test=paths-edges] tbody tr')
  await edges.first().waitFor()
  assert.deepEqual(await cellTexts(edges.locator('[data-col=persons]')), api4.edges.map((e) => e.persons))
  assert.equal(api4.persons, api3.correlation.failure_total, 'the paths of the drop-offs (persons who did not pay)')
  s.clean(w)
})

test('viewer: a saved stickiness insight opens and runs, with no save, delete, KPI or pin control', async () => {
  const ins = await api(s.server, 'POST', '/api/v1/insights', {
    name: 'Launch days', tags: ['habits'], query: { kind: 'stickiness', series: [{ event: 'app_launch' }], date_from: 'this_month', date_to: 'this_month' },
  })
  const { context, page, w } = await s.open()
  await s.logIn(page, s.fx.viewer)
  await s.visit(page, { path: `/insights?insight=${ins.id}`, ready: '[data-test=stickiness-table] tbody tr' })
  // The saved named range is shown as such and sent as such.
  assert.match(await page.locator('[data-test=range-preset]').innerText(), /This month/)
  for (const sel of ['save-insight', 'insight-tags', 'delete-insight', 'make-kpi', 'pin'])
    assert.equal(await page.locator(`[data-test=${sel}]`).count(), 0, `no ${sel} for a viewer`)
  s.clean(w)
  await context.close()
})

const BUILDERS = [
  { kind: 'trends', chart: 'trends' },
  { kind: 'funnel', chart: 'funnel', setup: async (page) => {
    await choose(page, page.locator('[data-test=step-0]'), 'product_click')
    await choose(page, page.locator('[data-test=step-1]'), 'add_to_cart')
    await choose(page, page.locator('[data-test=funnel-breakdown-select]'), 'channel')
  } },
  { kind: 'retention', ready: '[data-test=retention-table]' },
  { kind: 'paths', chart: 'paths', setup: (page) => choose(page, page.locator('[data-test=paths-start]'), 'add_to_cart') },
  { kind: 'stickiness', chart: 'stickiness' },
  { kind: 'lifecycle', chart: 'lifecycle' },
]

test('every builder in English and Chinese (screenshots)', async () => {
  const { page, w } = await loggedIn()
  await s.visit(page, { path: '/insights', ready: '[data-test=trends-builder]' })
  for (const lang of ['en', 'zh-CN']) {
    if (lang === 'zh-CN') await s.setLang(page, 'zh-CN')
    for (const b of BUILDERS) {
      // The kind's tab, as a user switches (no reload).
      await page.locator(`[data-test=insight-kind] [data-kind=${b.kind}]`).click()
      await page.locator(`[data-test=${b.kind}-builder]`).waitFor()
      if (b.setup) await b.setup(page)
      await page.locator(`[data-test=${b.kind}-builder] [data-test=run]`).click()
      await page.locator(b.chart ? `[data-chart=${b.chart}] canvas` : b.ready).waitFor()
      await s.settle(page)
      await s.shoot(page, `insights-${b.kind}`)
    }
  }
  // In Chinese: the kinds, the named ranges and the stickiness table's units.
  assert.match(await page.locator('[data-test=insight-kind]').innerText(), /路径[\s\S]*粘性/)
  assert.match(await page.locator('[data-test=range-preset]').first().innerText(), /最近 \d+ 天/)
  await page.locator('[data-test=insight-kind] [data-kind=stickiness]').click()
  await page.locator('[data-test=stickiness-builder] [data-test=run]').click()
  await page.locator('[data-test=stickiness-table] tbody tr[data-intervals="7"]', { hasText: '7 天' }).waitFor()
  await s.settle(page)
  s.clean(w)
})
