// The feature-flags area in a real browser (docs/flags.md, docs/console.md "Adding an area"):
// a flag made through the form (conditions, variants whose weights must sum to 100, a payload)
// reads back the same from the API, the active switch changes it, the "test a distinct id" box
// shows what POST /api/v1/flags/evaluate answers, the page in Chinese, and a viewer sees no
// edit control. Screenshots in both languages.
//
// Usage: node web/tests/flags.test.mjs /path/to/northstar      (exit 77: no Chromium)
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { api, consoleSuite } from './harness.mjs'

const s = await consoleSuite(import.meta.url, { users: 300, days: 10 })
const PAGE = { path: '/feature-flags', ready: '[data-test=flags-page]' }

/** Waits for the dialog's opening transition, so a screenshot shows it, not its fade. */
async function settleAnimations(page) {
  await page.evaluate(() => Promise.all(document.getAnimations().map((a) => a.finished.catch(() => {}))))
}

test('an operator makes a flag in the form, switches it, tests ids; the page in both languages', async () => {
  const { context, page, w } = await s.open()
  await s.logIn(page, s.fx.operator)
  await s.visit(page, PAGE)
  await page.locator('[data-test=flag-create]').click()
  const dialog = page.locator('[data-test=flag-dialog]')
  await dialog.locator('[data-test=flag-key]').fill('new-checkout')
  await dialog.locator('[data-test=flag-name]').fill('New checkout')
  const rollout = dialog.locator('[data-test=flag-rollout] input')
  await rollout.fill('10')
  await rollout.press('Tab')
  // A condition group: vips, everyone of them.
  await dialog.locator('[data-test=group-add]').click()
  await dialog.locator('[data-test=condition-add]').click()
  await dialog.locator('[data-test=condition-key]').fill('plan')
  await dialog.locator('[data-test=condition-value]').fill('vip, svip')
  const groupRollout = dialog.locator('[data-test=group-rollout] input')
  await groupRollout.fill('100')
  await groupRollout.press('Tab')
  // Two variants: 50 + 40 is refused inline, 50 + 50 is saved.
  await dialog.locator('[data-test=variant-add]').click()
  await dialog.locator('[data-test=variant-add]').click()
  const keys = dialog.locator('[data-test=variant-key]')
  const weights = dialog.locator('[data-test=variant-weight] input')
  await keys.nth(0).fill('control')
  await weights.nth(0).fill('50')
  await weights.nth(0).press('Tab')
  await keys.nth(1).fill('test')
  await weights.nth(1).fill('40')
  await weights.nth(1).press('Tab')
  const sum = dialog.locator('[data-test=weight-sum]')
  await assert.doesNotReject(sum.filter({ hasText: '90%' }).waitFor())
  assert.match(await sum.getAttribute('class'), /ns-error/)
  assert.equal(await dialog.locator('[data-test=flag-save]').isDisabled(), true, 'no save while the weights sum to 90')
  await weights.nth(1).fill('50')
  await weights.nth(1).press('Tab')
  await sum.filter({ hasText: '100%' }).waitFor()
  await dialog.locator('[data-payload=test]').fill('{"button": "green"}')
  await settleAnimations(page)
  await s.shoot(page, 'flags-form')
  await dialog.locator('[data-test=flag-save]').click()
  await page.locator('[data-flag-key=new-checkout]').waitFor()
  await s.settle(page)

  // What the API stored is what the form said; the list shows it.
  const stored = (await api(s.server, 'GET', '/api/v1/flags')).flags.find((f) => f.key === 'new-checkout')
  assert.equal(stored.name, 'New checkout')
  assert.equal(stored.rollout_percentage, 10)
  assert.deepEqual(stored.variants.map((v) => [v.key, v.rollout_percentage]), [['control', 50], ['test', 50]])
  assert.deepEqual(stored.groups[0].properties, [{ key: 'plan', type: 'person', operator: 'exact', value: ['vip', 'svip'] }])
  assert.equal(stored.groups[0].rollout_percentage, 100)
  assert.deepEqual(stored.payloads, { test: { button: 'green' } })
  assert.equal(await page.locator('[data-flag-rollout=new-checkout]').innerText(), '10%')
  assert.equal(await page.locator('[data-flag-variant="new-checkout:test"]').innerText(), 'test 50%')

  // The active switch.
  await page.locator('[data-flag-active=new-checkout]').click()
  await s.settle(page)
  assert.equal((await api(s.server, 'GET', `/api/v1/flags/${stored.id}`)).active, false)
  await page.locator('[data-flag-active=new-checkout]').click()
  await s.settle(page)
  assert.equal((await api(s.server, 'GET', `/api/v1/flags/${stored.id}`)).active, true)

  // The test box answers what the API answers, for several ids.
  for (const id of ['visitor-1', 'visitor-2', 'visitor-3', 'visitor-4']) {
    await page.locator('[data-test=flag-test-id] input, input[data-test=flag-test-id]').first().fill(id)
    await page.locator('[data-test=flag-test-run]').click()
    await s.settle(page)
    const want = (await api(s.server, 'POST', '/api/v1/flags/evaluate', { distinct_id: id }, { expect: 200 })).flags['new-checkout']
    const shown = await page.locator('[data-answer=new-checkout]').innerText()
    assert.equal(shown, want.enabled ? want.variant : 'Off', `answer for ${id}`)
  }
  // A vip is in the condition group: always in, with the payload of its variant.
  const vip = await api(s.server, 'POST', '/api/v1/flags/evaluate', { distinct_id: 'v', person_properties: { plan: 'VIP' } }, { expect: 200 })
  assert.equal(vip.flags['new-checkout'].enabled, true)
  await s.shoot(page, 'flags')

  await s.setLang(page, 'zh-CN')
  await page.locator('[data-test=flags-page] h1', { hasText: '功能开关' }).waitFor()
  assert.match(await page.locator('[data-test=flag-test]').innerText(), /测试用户 ID/)
  await s.shoot(page, 'flags')
  await page.locator('[data-flag-edit=new-checkout]').click()
  await page.locator('[data-test=flag-dialog]', { hasText: '编辑开关 new-checkout' }).waitFor()
  await settleAnimations(page)
  await s.shoot(page, 'flags-form')
  s.clean(w)
  await context.close()
})

test('a viewer sees the flags and tests ids, with no edit control', async () => {
  await api(s.server, 'POST', '/api/v1/flags', { key: 'viewer-visible', rollout_percentage: 30 })
  const { context, page, w } = await s.open()
  await s.logIn(page, s.fx.viewer)
  await s.visit(page, PAGE)
  await page.locator('[data-flag-key=viewer-visible]').waitFor()
  for (const sel of ['[data-test=flag-create]', '[data-flag-edit]', '[data-flag-delete]'])
    assert.equal(await page.locator(sel).count(), 0, `no ${sel} for a viewer`)
  assert.match(await page.locator('[data-flag-active=viewer-visible]').getAttribute('class'), /is-disabled/)
  await page.locator('[data-test=flag-test-id] input, input[data-test=flag-test-id]').first().fill('someone')
  await page.locator('[data-test=flag-test-run]').click()
  await page.locator('[data-answer=viewer-visible]').waitFor()
  s.clean(w)
  await context.close()
})
