// The referral area in a real browser (docs/console.md "Adding an area"; docs/queries.md
// "Referral"): on first load the page shows the demo's own invite graph (the API's figures).
// Then the test sends a small invite graph over the API, 150 days back where the demo has no
// events (ann invites ben and cai, ben invites dan who does nothing after, fay and gus invite
// each other), opens the page on that range (?from=&to=), checks the headline figures with
// and without flagged invitations, the depth chart, the inviters' rewards and fraud tags
// against POST /api/v1/query, opens ann's invite tree (its size against the invite-tree
// route), sees the page in Chinese, and checks a viewer gets it without any edit control.
//
// Usage: node web/tests/referral.test.mjs /path/to/northstar      (exit 77: no Chromium)
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { addDays, api, consoleSuite } from './harness.mjs'

const s = await consoleSuite(import.meta.url)

// The hand-made graph's day, before the demo's first (the demo covers 90 days), and its range.
const graphDay = () => addDays(s.fx.today, -150)

test('referral: the demo\'s invite graph on first load', async () => {
  const want = await api(s.server, 'POST', '/api/v1/query', { kind: 'referral', date_from: addDays(s.fx.today, -29), date_to: s.fx.today, limit: 10 }, { expect: 200 })
  assert.ok(want.with_flagged.invitees > 0, 'the demo has accepted invitations')
  assert.ok(want.invitations_sent > 0, 'and invitations sent')
  const { context, page, w } = await s.open()
  await s.logIn(page, s.server.admin)
  await s.visit(page, { path: '/referral', ready: '[data-test=referral-page] [data-test=referral-k-factor]' })
  const k = page.locator('[data-test=referral-k-factor]')
  assert.equal(Number(await k.locator('[data-test=clean]').getAttribute('data-value')), want.without_flagged.k_factor)
  const ids = await page.locator('[data-test=referral-inviters] .el-table__body tr [data-test=inviter-id]').allInnerTexts()
  assert.deepEqual(ids, want.inviters.map((v) => v.distinct_id), 'the demo\'s inviters, in the API order')
  s.clean(w)
  await context.close()
})

async function sendGraph() {
  const y = graphDay()
  const at = (hm) => `${y}T${hm}:00+08:00`
  const ev = (event, distinct_id, timestamp, properties) => ({ event, distinct_id, timestamp, properties })
  await api(s.server, 'POST', '/api/v1/events', [
    ...[0, 1, 2, 3].map((i) => ev('invite_send', 'ref-ann', at(`08:0${i}`))),
    ev('invite_accept', 'ref-ben', at('09:00'), { inviter_id: 'ref-ann', $ip: '10.9.8.7' }),
    ev('view', 'ref-ben', at('09:30')),
    ev('invite_accept', 'ref-cai', at('11:00'), { inviter_id: 'ref-ann' }),
    ev('view', 'ref-cai', at('11:30')),
    ev('invite_accept', 'ref-dan', at('12:00'), { inviter_id: 'ref-ben' }),
    ev('invite_accept', 'ref-fay', at('13:00'), { inviter_id: 'ref-gus' }),
    ev('invite_accept', 'ref-gus', at('14:00'), { inviter_id: 'ref-fay' }),
    ev('view', 'ref-fay', at('15:00')),
    ev('view', 'ref-gus', at('15:00')),
  ], { expect: 200 })
}

const fmt3 = (v) => new Intl.NumberFormat('en-US', { maximumFractionDigits: 3 }).format(v)

test('referral: figures, depths, inviters with rewards and flags, the invite tree, in both languages', async () => {
  await sendGraph()
  const y = graphDay()
  const from = addDays(y, -2)
  const q = { kind: 'referral', date_from: from, date_to: y, limit: 10 }
  const want = await api(s.server, 'POST', '/api/v1/query', q, { expect: 200 })
  assert.equal(want.without_flagged.invitees, 2, 'ben and cai are clean')
  assert.equal(want.with_flagged.invitees, 5, 'five accepts')

  const { context, page, w } = await s.open()
  await s.logIn(page, s.server.admin)
  await s.visit(page, { path: `/referral?from=${from}&to=${y}`, ready: '[data-test=referral-page] [data-test=referral-k-factor]' })
  await s.settle(page)

  // Headline figures: the page shows the API's numbers, with and without flagged edges.
  const k = page.locator('[data-test=referral-k-factor]')
  assert.equal(Number(await k.locator('[data-test=clean]').getAttribute('data-value')), want.without_flagged.k_factor)
  assert.equal(Number(await k.locator('[data-test=all]').getAttribute('data-value')), want.with_flagged.k_factor)
  assert.equal(await k.locator('[data-test=clean]').innerText(), fmt3(want.without_flagged.k_factor))
  assert.match(await k.locator('[data-test=all]').innerText(), new RegExp(fmt3(want.with_flagged.k_factor).replace('.', '\\.')))
  const share = page.locator('[data-test=referral-share] [data-test=clean]')
  assert.equal(Number(await share.getAttribute('data-value')), want.without_flagged.referral_share)
  const conv = page.locator('[data-test=referral-conversion] [data-test=clean]')
  assert.equal(Number(await conv.getAttribute('data-value')), want.without_flagged.referral_conversion_rate)
  assert.equal(await page.locator('[data-test=referral-invitees] [data-test=all]').getAttribute('data-value'), String(want.with_flagged.invitees))
  await page.locator('[data-test=referral-depth] canvas').first().waitFor()

  // The inviters: ann first with her reward; the cycle and no-activity flags as tags.
  const rows = page.locator('[data-test=referral-inviters] .el-table__body tr')
  const ids = await rows.locator('[data-test=inviter-id]').allInnerTexts()
  assert.deepEqual(ids, want.inviters.map((v) => v.distinct_id), 'the API order')
  assert.equal(ids[0], 'ref-ann')
  assert.equal(await rows.nth(0).locator('[data-test=reward]').innerText(), want.inviters[0].reward)
  const benRow = rows.nth(ids.indexOf('ref-ben'))
  assert.match(await benRow.locator('[data-reason=no_activity]').innerText(), /No activity × 1/)
  const fayRow = rows.nth(ids.indexOf('ref-fay'))
  assert.match(await fayRow.locator('[data-reason=cycle]').innerText(), /Cycle/)

  // ann's invite tree: a click on her row draws it; its size is the route's.
  const tree = await api(s.server, 'GET', `/api/v1/persons/ref-ann/invite-tree?as_of=${y}&depth=6&limit=300`)
  assert.equal(tree.nodes, 4, 'ann, ben, cai, dan')
  await rows.nth(0).locator('[data-test=inviter-id]').click()
  await page.locator('[data-test=referral-tree] canvas').first().waitFor()
  assert.equal(await page.locator('[data-test=tree-nodes]').getAttribute('data-value'), String(tree.nodes))
  await s.settle(page)
  await s.shoot(page, 'referral')

  // In Chinese.
  await s.setLang(page, 'zh-CN')
  await page.locator('h1', { hasText: '邀请裂变' }).waitFor()
  assert.match(await page.locator('[data-test=referral-k-factor]').innerText(), /K 因子/)
  assert.match(await fayRow.locator('[data-reason=cycle]').innerText(), /循环邀请/)
  await s.settle(page)
  await s.shoot(page, 'referral')
  await s.setLang(page, 'en')
  s.clean(w)
  await context.close()
})

test('referral: a viewer sees the page and no edit control', async () => {
  const { context, page, w } = await s.open()
  await s.logIn(page, s.fx.viewer)
  await s.visit(page, { path: '/referral', ready: '[data-test=referral-k-factor]' })
  const buttons = await page.locator('[data-test=referral-page] button').allInnerTexts()
  assert.deepEqual(buttons.filter((b) => /save|delete|edit|new|add/i.test(b)), [], 'no edit control')
  await page.locator('input[data-test=tree-id], [data-test=tree-id] input').first().fill('nobody-at-all')
  w.allowed.push((url, status) => url.includes('/persons/nobody-at-all/invite-tree') && status === 404)
  await page.locator('[data-test=tree-show]').click()
  await page.locator('[data-test=tree-missing]').waitFor()
  s.clean(w)
  await context.close()
})
