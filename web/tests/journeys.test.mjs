// The journeys area in a real browser (docs/console.md, "Adding an area"; docs/automation.md):
// a journey built with the step-list form, activated, fed events through the API; the
// results page and the list show the API's numbers (per-step counts, treated vs holdout, the
// lift's interval, dead letters and their retry), in English and Chinese; a viewer sees no
// edit control. Screenshots in both languages go to $SCREENSHOT_DIR.
//
// Usage: node web/tests/journeys.test.mjs /path/to/northstar      (exit 77: no Chromium)
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { api, consoleSuite } from './harness.mjs'

const s = await consoleSuite(import.meta.url)
let journeyId = 0

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
async function until(fn, what, ms = 30000) {
  const end = Date.now() + ms
  for (;;) {
    const v = await fn()
    if (v) return v
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await sleep(250)
  }
}

/** Picks the option `text` of an Element Plus select. */
async function pick(page, select, text) {
  await select.click()
  await page.locator('.el-select-dropdown__item:visible', { hasText: text }).first().click()
  await select.locator('.el-select__selected-item', { hasText: text }).first().waitFor()
}

/** The native input of an el-input or el-input-number marked data-test=name. */
function inp(page, name) {
  return page.locator(`[data-test=${name}] input, input[data-test=${name}]`).first()
}

async function text(page, sel) {
  return (await page.locator(sel).first().innerText()).trim()
}

test('build a journey in the step-list form, activate it, and read the API numbers on its pages', async () => {
  const { context, page, w } = await s.open()
  await s.logIn(page, s.server.admin)
  await s.visit(page, { path: '/journeys', ready: '[data-test=journeys-page]' })
  await page.locator('[data-test=journey-create]').click()
  await page.locator('[data-test=journey-form]').waitFor()

  // Trigger jt_signup → (the default 24 h wait removed) → did not jt_pay → set a property →
  // did jt_vip → a webhook that cannot be delivered, with one attempt.
  await inp(page, 'f-name').fill('Welcome coupon')
  await inp(page, 'f-owner').fill('growth')
  await inp(page, 'f-trigger-event').fill('jt_signup')
  await page.locator('[data-test=step-0-remove]').click()
  await inp(page, 'step-0-event').fill('jt_pay')
  await pick(page, page.locator('[data-test=step-1-action]'), 'Set a person property')
  await inp(page, 'step-1-property').fill('welcomed')
  await inp(page, 'step-1-value').fill('yes')
  // Only VIPs go on to the webhook, whose host does not exist: their sends end as dead letters.
  await page.locator('[data-test=add-condition]').click()
  await pick(page, page.locator('[data-test=step-2-performed]'), 'did')
  await inp(page, 'step-2-event').fill('jt_vip')
  await page.locator('[data-test=add-action]').click()
  await inp(page, 'step-3-url').fill('http://hooks.invalid/coupon')
  await inp(page, 'step-3-title').fill('Hi {{distinct_id}}')
  await inp(page, 'f-attempts').fill('1')
  await inp(page, 'f-goal').fill('jt_pay')
  // A bad quiet-hours value is refused and the message names the field.
  await inp(page, 'f-quiet').fill('25:00-08:00')
  w.allowed.push((url, st) => url.endsWith('/api/v1/journeys') && st === 400)
  await page.locator('[data-test=journey-save]').click()
  assert.match(await text(page, '[data-test=journey-form-error]'), /limits\.quiet_hours/)
  await inp(page, 'f-quiet').fill('')
  await page.locator('[data-test=journey-save]').click()
  await page.locator('[data-test=journey-results-page]').waitFor()
  journeyId = Number(/\/journeys\/(\d+)/.exec(page.url())[1])

  const j = await api(s.server, 'GET', `/api/v1/journeys/${journeyId}`)
  assert.equal(j.name, 'Welcome coupon')
  assert.deepEqual(j.trigger, { type: 'event', event: 'jt_signup' })
  assert.deepEqual(j.steps.map((x) => x.type), ['condition', 'action', 'condition', 'action'])
  assert.deepEqual([j.steps[0].event, j.steps[0].performed], ['jt_pay', false])
  assert.deepEqual([j.steps[1].action, j.steps[1].property, j.steps[1].value], ['set_property', 'welcomed', 'yes'])
  assert.deepEqual([j.steps[2].event, j.steps[2].performed], ['jt_vip', true])
  assert.deepEqual([j.steps[3].action, j.steps[3].url, j.steps[3].title], ['webhook', 'http://hooks.invalid/coupon', 'Hi {{distinct_id}}'])
  assert.equal(j.delivery.max_attempts, 1)
  assert.deepEqual(j.goal, { event: 'jt_pay', within_days: 7 })

  await page.locator('[data-test=journey-activate]').click()
  await page.locator('[data-test=journey-status]', { hasText: 'Active' }).waitFor()

  // 300 sign-ups, a tenth of them pay at once (the condition lets them out); then some pay.
  const now = Date.now()
  const ids = Array.from({ length: 300 }, (_, i) => `jt-${i}`)
  const early = new Set(ids.filter((_, i) => i % 10 === 3))
  const events = ids.map((d, i) => ({ event: 'jt_signup', distinct_id: d, timestamp: now - 60000 + i }))
  for (const d of early) events.push({ event: 'jt_pay', distinct_id: d, timestamp: now - 30000 })
  const vips = ids.filter((d, i) => !early.has(d) && i % 50 === 1)
  for (const d of vips) events.push({ event: 'jt_vip', distinct_id: d, timestamp: now - 20000 })
  await api(s.server, 'POST', '/api/v1/events', events, { key: s.server.keys.write_key, expect: 200 })
  let r = await until(async () => {
    const x = await api(s.server, 'GET', `/api/v1/journeys/${journeyId}/results`)
    return x.entered === 300 && x.pending === 0 && x.steps[3].queued > 0 && x.steps[3].dead === x.steps[3].queued ? x : null
  }, 'every person through the journey')
  const later = ids.filter((d, i) => !early.has(d) && i % 3 === 0)
  await api(s.server, 'POST', '/api/v1/events', later.map((d) => ({ event: 'jt_pay', distinct_id: d, timestamp: Date.now() + 1000 })),
    { key: s.server.keys.write_key, expect: 200 })
  r = await api(s.server, 'GET', `/api/v1/journeys/${journeyId}/results`)
  assert.equal(r.steps[0].exited, early.size)

  await page.locator('[data-test=journey-refresh]').click()
  await s.settle(page)
  for (const k of ['entered', 'treated', 'holdout', 'sent', 'dead', 'converted'])
    assert.equal(await text(page, `[data-test=count-${k}]`), String(r[k]), `count ${k}`)
  for (const g of ['treated', 'holdout']) {
    assert.equal(await text(page, `[data-test=cmp-${g}-persons]`), String(r.comparison[g].persons), `${g} persons`)
    assert.equal(await text(page, `[data-test=cmp-${g}-converted]`), String(r.comparison[g].converted), `${g} converted`)
  }
  for (const [i, c] of r.steps.entries())
    for (const k of ['reached', 'passed', 'exited', 'held_out', 'sent', 'dead'])
      assert.equal(await text(page, `[data-test=step-${i}-${k}]`), String(c[k]), `step ${i} ${k}`)
  if (r.comparison.lift) {
    const label = await page.locator('[data-test=lift-interval]').getAttribute('aria-label')
    const fmt = (x) => `${x >= 0 ? '+' : '−'}${Math.abs(x * 100).toFixed(1)}%`
    assert.equal(label, `${fmt(r.comparison.lift.expected)} [${fmt(r.comparison.lift.ci[0])}, ${fmt(r.comparison.lift.ci[1])}]`)
  } else {
    await page.locator('[data-test=no-lift]').waitFor()
  }
  // Dead letters: the page lists the API's; one retried from the page.
  const dl = await api(s.server, 'GET', `/api/v1/journeys/${journeyId}/dead-letters`)
  assert.equal(await page.locator('[data-test=dead-letters] tbody tr').count(), Math.min(dl.total, 100))
  assert.match(await page.locator('[data-test=dead-letters]').innerText(), new RegExp(dl.items[0].idempotency_key))
  await page.locator(`[data-test=retry-${dl.items[0].id}]`).click()
  await page.locator('.el-message', { hasText: '1 sends queued again' }).waitFor()
  await s.settle(page)
  await s.shoot(page, 'journey-results')

  await s.visit(page, { path: '/journeys', ready: `[data-test=journey-link-${journeyId}]` })
  const list = await api(s.server, 'GET', '/api/v1/journeys')
  const row = list.find((x) => x.id === journeyId)
  assert.equal(await text(page, `[data-test=journey-entered-${journeyId}]`), String(row.entered))
  assert.equal(await text(page, `[data-test=journey-sent-${journeyId}]`), String(row.sent))
  await s.shoot(page, 'journeys')
  await s.visit(page, { path: `/journeys/${journeyId}/edit`, ready: '[data-test=journey-form]' })
  assert.equal(await inp(page, 'f-name').inputValue(), 'Welcome coupon')
  assert.equal(await page.locator('[data-test=step-list] > li').count(), 4)
  await s.shoot(page, 'journey-edit')

  // Chinese.
  await s.setLang(page, 'zh-CN')
  await page.locator('[data-test=journey-save]', { hasText: '保存' }).waitFor()
  await s.shoot(page, 'journey-edit')
  await s.visit(page, { path: '/journeys', ready: '[data-test=journeys-page]' })
  assert.match(await text(page, '[data-test=journeys-page] h1'), /用户旅程/)
  assert.match(await text(page, `[data-test=journey-status-${journeyId}]`), /运行中/)
  await s.shoot(page, 'journeys')
  await s.visit(page, { path: `/journeys/${journeyId}`, ready: '[data-test=journey-counts]' })
  assert.match(await page.locator('[data-test=journey-results-page]').innerText(), /触达组 vs 对照组/)
  await s.shoot(page, 'journey-results')
  await s.setLang(page, 'en')
  s.clean(w)
  await context.close()
})

test('a viewer reads journeys and their results but has no edit control', async () => {
  assert.ok(journeyId > 0, 'the first test made a journey')
  const { context, page, w } = await s.open()
  await s.logIn(page, s.fx.viewer)
  await s.visit(page, { path: '/journeys', ready: `[data-test=journey-link-${journeyId}]` })
  for (const sel of ['[data-test=journey-create]', `[data-test=journey-pause-${journeyId}]`, `[data-test=journey-edit-${journeyId}]`])
    assert.equal(await page.locator(sel).count(), 0, `${sel} hidden from a viewer`)
  await s.visit(page, { path: `/journeys/${journeyId}`, ready: '[data-test=journey-counts]' })
  for (const sel of ['[data-test=journey-pause]', '[data-test=journey-edit]', '[data-test=retry-all]', '[data-test^=retry-]'])
    assert.equal(await page.locator(sel).count(), 0, `${sel} hidden from a viewer`)
  await s.visit(page, { path: '/journeys/new', ready: '[data-test=journey-edit-page]' })
  assert.equal(await page.locator('[data-test=journey-form]').count(), 0, 'no form for a viewer')
  s.clean(w)
  await context.close()
})
