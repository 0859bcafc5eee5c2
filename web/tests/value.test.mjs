// The Value area (web/src/areas/value): commerce, LTV cohorts, channels with a spend import
// and predicted CLV, each checked against POST /api/v1/query's own answer; Chinese; a viewer
// gets no import form; screenshots of every tab in both languages.
//
// Usage: node web/tests/value.test.mjs /path/to/northstar      (exit 77: no Chromium)
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { addDays, api, consoleSuite, todayIn } from './harness.mjs'

const s = await consoleSuite(import.meta.url)
const en = (n, digits = 2) => new Intl.NumberFormat('en-US', { maximumFractionDigits: Math.abs(n) >= 1000 ? 0 : digits }).format(n)

async function openTab(page, name) {
  await page.locator(`#tab-${name}`).click()
  await page.locator(`[data-test=run-${name}]`).waitFor()
}

test('value: commerce, LTV, channels with a spend import and CLV show the API\'s numbers', async () => {
  const { context, page, w } = await s.open()
  await s.logIn(page, s.fx.operator)
  await page.locator('[data-test=nav-value]').click()
  await page.locator('[data-test=commerce-figures]').waitFor()
  await s.settle(page)
  const today = todayIn('Asia/Shanghai')
  const commerce = await api(s.server, 'POST', '/api/v1/query', { kind: 'commerce', date_from: addDays(today, -27), date_to: today, interval: 'week' }, { expect: 200 })
  assert.ok(commerce.orders > 0, 'the demo has orders')
  for (const k of ['orders', 'paying_persons'])
    assert.equal(await page.locator(`[data-figure=${k}] .figure-value`).innerText(), en(commerce[k], 0), k)
  assert.equal(await page.locator('[data-figure=gmv] .figure-value').innerText(), en(commerce.gmv), 'gmv')
  await s.shoot(page, 'value-commerce')

  await openTab(page, 'ltv')
  await page.locator('[data-test=ltv-table] tbody tr').first().waitFor()
  const ltv = await api(s.server, 'POST', '/api/v1/query', { kind: 'ltv', date_from: addDays(today, -179), date_to: today, period: 'month', periods: 6 }, { expect: 200 })
  assert.equal(await page.locator('[data-test=ltv-table] tbody tr').count(), ltv.cohorts.length, 'one row per cohort')
  const first = ltv.cohorts[0]
  const cells = page.locator(`[data-test=ltv-table] tr[data-cohort="${first.cohort}"] td`)
  assert.equal(await cells.nth(1).innerText(), en(first.persons, 0), 'cohort size')
  assert.equal(await cells.nth(2).innerText(), en(first.ltv[0]), 'LTV of period 0')
  await s.shoot(page, 'value-ltv')

  await openTab(page, 'channels')
  await page.locator('[data-test=channels-table]').waitFor()
  await s.settle(page)
  // On first load the demo's paid channels have spend: their spend, CAC and stop-loss are the API's.
  const demo = await api(s.server, 'POST', '/api/v1/query', { kind: 'channels', date_from: addDays(today, -13), date_to: today }, { expect: 200 })
  const paid = demo.channels.filter((c) => c.spend > 0)
  assert.deepEqual(paid.map((c) => c.channel).sort(), ['app_store', 'feed_ads', 'kol', 'search_ads'], 'the demo\'s paid channels')
  for (const c of paid) {
    const r = page.locator(`[data-test=channels-table] tr[data-channel="${c.channel}"]`)
    assert.equal(await r.locator('[data-figure=spend]').innerText(), en(c.spend), `${c.channel} spend`)
    assert.equal(await r.locator('[data-figure=cac]').innerText(), en(c.cac), `${c.channel} CAC`)
    assert.equal(await r.locator('.el-tag--danger').count(), c.stop_loss.triggered ? 1 : 0, `${c.channel} stop-loss`)
  }
  const d1 = addDays(today, -1)
  await page.locator('[data-test=spend-import] textarea').fill(`date,channel,campaign,spend,currency\n${d1},organic,,120.5,CNY\n${today},organic,,80,CNY\n`)
  await page.locator('[data-test=spend-submit]').click()
  await page.locator('[data-test=spend-imported]').waitFor()
  await s.settle(page)
  const stored = await api(s.server, 'GET', `/api/v1/spend?date_from=${d1}&date_to=${today}`)
  const rows = (stored.rows ?? stored).filter((r) => r.channel === 'organic')
  assert.equal(rows.reduce((a, r) => a + r.spend, 0), 200.5, 'the import reached the server')
  const channels = await api(s.server, 'POST', '/api/v1/query', { kind: 'channels', date_from: addDays(today, -13), date_to: today }, { expect: 200 })
  const organic = channels.channels.find((c) => c.channel === 'organic')
  assert.equal(organic.spend, 200.5)
  const row = page.locator('[data-test=channels-table] tr[data-channel="organic"]')
  assert.equal(await row.locator('[data-figure=spend]').innerText(), en(200.5))
  assert.equal(await row.locator('[data-figure=new_persons]').innerText(), en(organic.new_persons, 0))
  await s.shoot(page, 'value-channels')

  await openTab(page, 'clv')
  await page.locator('[data-test=clv-model]').waitFor()
  await s.settle(page)
  const clv = await api(s.server, 'POST', '/api/v1/query', { kind: 'clv', calibration_to: today, horizon_days: 365, time_unit: 'week', limit: 50 }, { expect: 200 })
  assert.equal(await page.locator('[data-test=clv-customers]').innerText(), en(clv.customers, 0))
  assert.equal(await page.locator('[data-test=clv-table] tbody tr').count(), clv.persons.length)
  await s.shoot(page, 'value-clv')

  await s.setLang(page, 'zh-CN')
  assert.equal(await page.locator('[data-test=value-page] h1').innerText(), '价值与渠道')
  for (const tab of ['commerce', 'ltv', 'channels', 'clv']) {
    await openTab(page, tab)
    await s.settle(page)
    await s.shoot(page, `value-${tab}`)
  }
  s.clean(w)
  await context.close()
})

test('value: a viewer reads the figures but gets no spend import', async () => {
  const { context, page, w } = await s.open()
  await s.logIn(page, s.fx.viewer)
  await s.visit(page, { path: '/value', ready: '[data-test=commerce-figures]' })
  await openTab(page, 'channels')
  await page.locator('[data-test=channels-table]').waitFor()
  await s.settle(page)
  assert.equal(await page.locator('[data-test=spend-import]').count(), 0, 'no import form')
  s.clean(w)
  await context.close()
})
