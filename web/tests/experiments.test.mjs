// The experiments area in a real browser (docs/console.md, "Adding an area"; docs/experiments.md):
// an operator-role admin creates an experiment through the form (variants, a funnel and a mean
// metric picked from event names, dates), the results page shows exactly the API's exposures,
// values, effects, intervals and p-values, draws the interval and the exposures per day, and the
// SRM banner the API's answer calls for; the experiment is edited through the form; the pages in
// Chinese; a viewer sees no edit control. Screenshots in both languages.
//
// Usage: node web/tests/experiments.test.mjs /path/to/northstar      (exit 77: no Chromium)
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { addDays, api, consoleSuite, todayIn } from './harness.mjs'

const s = await consoleSuite(import.meta.url, { users: 300, days: 20 })
const FLAG = 'browser-checkout'

/** 600 persons exposed over the last 10 days, half to each variant; control converts 10%, test 20%. */
async function sendExposures() {
  const now = Date.now()
  const events = []
  for (let i = 0; i < 600; i++) {
    const variant = i % 2 === 0 ? 'control' : 'test'
    const ts = now - (1 + (i % 10)) * 86400000 - (i % 7) * 3600000
    const did = `exp-user-${i}`
    events.push({ event: '$feature_flag_called', distinct_id: did, timestamp: new Date(ts).toISOString(),
      properties: { $feature_flag: FLAG, $feature_flag_response: variant } })
    const converts = variant === 'control' ? i % 20 === 0 : i % 10 === 1 || i % 10 === 3
    if (converts)
      events.push({ event: 'pay', distinct_id: did, timestamp: new Date(ts + 600000).toISOString(), properties: { amount: 30 + (i % 5) * 10 } })
  }
  for (let i = 0; i < events.length; i += 500)
    await api(s.server, 'POST', '/api/v1/events', events.slice(i, i + 500), { key: s.server.keys.write_key, expect: 200 })
}

/** Picks `text` in a filterable Element Plus select: type it, take the first match. */
async function choose(page, select, text) {
  await select.click()
  await page.keyboard.type(text)
  await page.locator('.el-select-dropdown__item:visible', { hasText: text }).first().waitFor()
  await page.keyboard.press('Enter')
  await page.locator('h1').first().click() // closes the dropdown (a multiple select stays open after Enter)
  await page.locator('.el-select-dropdown__item:visible').first().waitFor({ state: 'hidden' })
}
/** Picks the option labelled `label` in a plain Element Plus select. */
async function pick(page, select, label) {
  await select.click()
  await page.locator('.el-select-dropdown__item:visible', { hasText: label }).first().click()
  // The click selects the option and the dropdown closes after its transition; a click that
  // lands while the dropdown is still opening selects it but may leave it open (seen once on
  // a loaded machine): Escape closes it then.
  const open = page.locator('.el-select-dropdown__item:visible').first()
  try {
    await open.waitFor({ state: 'hidden', timeout: 3000 })
  } catch {
    await page.keyboard.press('Escape')
    await open.waitFor({ state: 'hidden' })
  }
}

// The page's formats (en-US): src/format.ts and ExperimentResultsPage.vue.
const pct = (v, d) => new Intl.NumberFormat('en-US', { style: 'percent', maximumFractionDigits: d }).format(v)
const num = (v, d) => new Intl.NumberFormat('en-US', { maximumFractionDigits: Math.abs(v) >= 1000 ? 0 : d }).format(v)
const effect = (v) => (v === null ? '–' : (v > 0 ? '+' : '') + pct(v, 1))
const pval = (p) => (p === null ? '–' : p < 0.0001 ? '< 0.0001' : num(p, 4))

test('create an experiment in the form; its results show the API numbers; edit it; Chinese; a viewer only reads', async () => {
  await sendExposures()
  const today = todayIn('Asia/Shanghai')
  const { context, page, w } = await s.open()
  await s.logIn(page, s.server.admin)
  await s.visit(page, { path: '/experiments', ready: '[data-test=experiments-page]' })
  await s.shoot(page, 'experiments')
  await page.locator('[data-test=experiment-new]').click()
  const form = page.locator('[data-test=experiment-form]')
  await form.waitFor()
  await form.locator('[data-test=f-name]').fill('Browser checkout test')
  await form.locator('[data-test=f-flag]').fill(FLAG)
  await form.locator('[data-test=f-hypothesis]').fill('The new checkout converts more')
  await form.locator('[data-test=f-start]').fill(addDays(today, -12))
  await form.locator('[data-test=f-end]').fill(today)
  await pick(page, form.locator('[data-test=f-status]'), 'Running')
  await choose(page, form.locator('[data-test=metric-primary-0] [data-test=metric-steps]'), 'pay')
  await form.locator('[data-test=f-add-secondary]').click()
  const mean = form.locator('[data-test=metric-secondary-0]')
  await pick(page, mean.locator('[data-test=metric-type]'), 'Mean per person')
  await choose(page, mean.locator('[data-test=metric-event]'), 'pay')
  await pick(page, mean.locator('[data-test=metric-math]'), 'Sum of a property')
  await mean.locator('[data-test=metric-property]').fill('amount')
  await mean.locator('[data-test=metric-name]').fill('Revenue per user')
  await s.settle(page)
  await s.shoot(page, 'experiment-form')
  await form.locator('[data-test=f-save]').click()
  await page.locator('[data-test=srm-banner]').waitFor()
  await s.settle(page)

  // What the form stored.
  const list = (await api(s.server, 'GET', '/api/v1/experiments')).experiments
  const exp = list.find((e) => e.name === 'Browser checkout test')
  assert.ok(exp, 'the experiment was created')
  assert.equal(exp.flag_key, FLAG)
  assert.deepEqual(exp.variants.map((v) => v.key), ['control', 'test'])
  assert.equal(exp.status, 'running')
  assert.deepEqual(exp.primary_metrics[0].steps, ['pay'])
  assert.deepEqual([exp.secondary_metrics[0].type, exp.secondary_metrics[0].math, exp.secondary_metrics[0].property], ['mean', 'sum', 'amount'])
  assert.match(page.url(), new RegExp(`/experiments/${exp.id}$`))

  // The results page against the API's answer.
  const r = await api(s.server, 'GET', `/api/v1/experiments/${exp.id}/results`)
  assert.deepEqual(r.variants.map((v) => v.exposed), [300, 300], 'every generated person is exposed once')
  for (const v of r.variants)
    assert.equal(await page.locator(`[data-test=exposed-${v.key}] [data-test=exposed-count]`).innerText(), num(v.exposed, 0))
  assert.equal(await page.locator('[data-test=srm-banner]').getAttribute('data-srm'), r.srm_flagged ? 'flagged' : r.srm_checked ? 'ok' : 'wait')
  const conv = r.metrics[0]
  const card = page.locator('[data-test=metric-result-0]')
  for (const v of conv.variants) {
    assert.equal(await card.locator(`[data-test=row-${v.key}] [data-test=cell-n]`).innerText(), num(v.n, 0))
    assert.equal(await card.locator(`[data-test=row-${v.key}] [data-test=cell-value]`).innerText(), pct(v.rate, 2))
  }
  const e = conv.effects[0]
  assert.ok(e.ok, 'the conversion effect is computed')
  const row = card.locator('[data-test=row-test]')
  assert.equal(await row.locator('[data-test=cell-effect]').innerText(), effect(e.expected))
  assert.equal(await row.locator('[data-test=cell-ci]').innerText(), `[${effect(e.ci[0])}, ${effect(e.ci[1])}]`)
  assert.equal(await row.locator('[data-test=cell-p]').innerText(), pval(e.p_value))
  await card.locator('[data-test=forest-plot] [data-test=forest-test] circle').waitFor()
  const rev = r.metrics[1]
  assert.equal(await page.locator('[data-test=metric-result-1] [data-test=row-control] [data-test=cell-value]').innerText(), num(rev.variants[0].mean, 2))
  await page.locator('[data-test=experiment-results-page] canvas').first().waitFor() // exposures per day
  await s.shoot(page, 'experiment-results')

  // Edit through the form.
  await page.locator('[data-test=results-edit]').click()
  await form.waitFor()
  await page.locator('[data-test=f-name]').waitFor()
  await page.waitForFunction(() => document.querySelector('[data-test=f-name]')?.value === 'Browser checkout test')
  await form.locator('[data-test=f-hypothesis]').fill('Shorter checkout, more payments')
  await form.locator('[data-test=f-save]').click()
  await page.locator('[data-test=srm-banner]').waitFor()
  await s.settle(page)
  const edited = await api(s.server, 'GET', `/api/v1/experiments/${exp.id}`)
  assert.equal(edited.hypothesis, 'Shorter checkout, more payments')
  assert.deepEqual(edited.primary_metrics, exp.primary_metrics, 'the metrics survive an edit')

  // Chinese.
  await s.setLang(page, 'zh-CN')
  await page.locator('[data-test=metric-result-0] th', { hasText: '实验组' }).first().waitFor()
  assert.match(await page.locator('[data-test=nav-experiments]').innerText(), /实验/)
  await s.shoot(page, 'experiment-results')
  await s.visit(page, { path: '/experiments', ready: '[data-test=experiments-page]' })
  assert.match(await page.locator('h1').first().innerText(), /A\/B 实验/)
  await s.shoot(page, 'experiments')
  await s.visit(page, { path: `/experiments/${exp.id}/edit`, ready: '[data-test=experiment-form]' })
  assert.match(await page.locator('[data-test=experiment-form] legend').first().innerText(), /实验组/)
  await s.shoot(page, 'experiment-form')
  s.clean(w)
  await context.close()

  // A viewer reads the list and the results, and gets no edit control.
  const v = await s.open()
  await s.logIn(v.page, s.fx.viewer)
  await s.visit(v.page, { path: '/experiments', ready: '[data-test=experiment-link]' })
  assert.equal(await v.page.locator('[data-test=experiment-new]').count(), 0, 'no New button')
  assert.equal(await v.page.locator('[data-test=experiment-edit]').count(), 0, 'no Edit link')
  await s.visit(v.page, { path: `/experiments/${exp.id}`, ready: '[data-test=srm-banner]' })
  assert.equal(await v.page.locator('[data-test=results-edit]').count(), 0, 'no Edit on the results')
  await s.visit(v.page, { path: `/experiments/${exp.id}/edit`, ready: '[data-test=experiment-edit-page]' })
  assert.equal(await v.page.locator('[data-test=experiment-form]').count(), 0, 'no form for a viewer')
  s.clean(v.w)
  await v.context.close()
})
