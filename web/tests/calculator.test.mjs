// The experiment calculator area (web/src/areas/calculator; docs/statistics.md) in a real
// browser: the numbers typed into the page give exactly what POST /api/v1/experiments/analyze
// and /power answer, the interval chart draws each effect on the right side of 0, a sample
// ratio mismatch is shown, a bad number's message sits under its field, a viewer uses it too,
// and it reads in Chinese. Screenshots in both languages.
//
// Usage: node web/tests/calculator.test.mjs /path/to/northstar      (exit 77: no Chromium)
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { api, consoleSuite } from './harness.mjs'

const s = await consoleSuite(import.meta.url)

// gbstats' sequential proportion case: 1,396 / 3,000 against 2,422 / 3,461.
const CONTROL = { name: 'control', n: 3000, sum: 1396 }
const NEW = { name: 'new checkout', n: 3461, sum: 2422 }

async function fillRow(page, i, { name, n, sum }) {
  const row = page.locator(`[data-test=variant-${i}]`)
  await row.locator('[data-test=v-name]').fill(name)
  await row.locator('[data-test=v-n]').fill(String(n))
  await row.locator('[data-test=v-sum]').fill(String(sum))
}

const pct = (v) => `${v > 0 ? '+' : ''}${(v * 100).toFixed(2)}%`

async function analyze(page) {
  const answered = page.waitForResponse((r) => r.url().endsWith('/api/v1/experiments/analyze'))
  await page.locator('[data-test=analyze]').click()
  await answered
  await page.__nsWatch.idle()
}

test('analyze: the page shows the API answer, draws the interval and warns of the mismatch', async () => {
  const { context, page, w } = await s.open()
  await s.logIn(page, s.server.admin)
  await page.locator('[data-test=nav-calculator]').click()
  await page.locator('[data-test=calculator-page]').waitFor()
  await fillRow(page, 0, CONTROL)
  await fillRow(page, 1, NEW)
  await analyze(page)

  const want = await api(s.server, 'POST', '/api/v1/experiments/analyze',
    { metric: 'proportion', difference: 'relative', method: 'frequentist', alternative: 'two_sided', alpha: 0.05, correction: 'none',
      variants: [CONTROL, NEW], traffic_weights: [1, 1] }, { expect: 200 })
  const e = want.effects[0]
  const row = page.locator('[data-test=result-1]')
  assert.equal((await row.locator('[data-test=expected]').innerText()).split('\n')[0].trim(), pct(e.expected))
  assert.equal(await row.locator('[data-test=ci]').innerText(), `[${pct(e.ci[0])}, ${pct(e.ci[1])}]`)
  assert.equal(await row.locator('[data-test=p-value]').innerText(), '< 0.0001')
  assert.match(await row.locator('[data-test=significance]').innerText(), /^Significant$/)
  assert.equal(await page.locator('[data-test=result-0] [data-test=value]').innerText(), '46.5%')
  // The split is far from the planned 50/50: the warning names the p-value.
  assert.ok(want.srm_flagged)
  assert.match(await page.locator('[data-test=srm-warning]').innerText(), /Sample ratio mismatch/)
  // The interval lies right of the zero line, the dot inside it.
  const zero = Number(await page.locator('[data-test=zero-line]').getAttribute('x1'))
  const bar = page.locator('[data-test=interval-0] [data-test=interval-bar]')
  const [x1, x2] = [Number(await bar.getAttribute('x1')), Number(await bar.getAttribute('x2'))]
  const dot = Number(await page.locator('[data-test=interval-0] [data-test=interval-dot]').getAttribute('cx'))
  assert.ok(zero < x1 && x1 < dot && dot < x2, `0 at ${zero}, interval ${x1}..${x2}, estimate ${dot}`)
  await s.shoot(page, 'calculator')

  // Sequential: the interval the API gives for gbstats' case ([0.40098, 0.60675] there).
  await page.locator('[data-test=method]').selectOption('sequential')
  await analyze(page)
  const seq = await api(s.server, 'POST', '/api/v1/experiments/analyze',
    { metric: 'proportion', method: 'sequential', variants: [CONTROL, NEW] }, { expect: 200 })
  assert.deepEqual(seq.effects[0].ci.map((x) => Math.round(x * 1e5) / 1e5), [0.40098, 0.60675])
  assert.equal(await row.locator('[data-test=ci]').innerText(), `[${pct(seq.effects[0].ci[0])}, ${pct(seq.effects[0].ci[1])}]`)
  // Bayesian: chance to win and risk instead of the p-value.
  await page.locator('[data-test=method]').selectOption('bayesian')
  await analyze(page)
  const bayes = await api(s.server, 'POST', '/api/v1/experiments/analyze',
    { metric: 'proportion', method: 'bayesian', variants: [CONTROL, NEW] }, { expect: 200 })
  assert.equal(await row.locator('[data-test=chance-to-win]').innerText(), `${(bayes.effects[0].chance_to_win * 100).toFixed(1)}%`)
  assert.equal(await row.locator('[data-test=p-value]').count(), 0)
  await s.shoot(page, 'calculator-bayesian')

  // A third variant with more conversions than persons: the server's message under that cell.
  w.allowed.push((url, status) => status === 400 && url.endsWith('/api/v1/experiments/analyze'))
  await page.locator('[data-test=add-variant]').click()
  await fillRow(page, 2, { name: 'typo', n: 100, sum: 150 })
  await analyze(page)
  const err = page.locator('[data-field-error="variants[2].sum"]')
  assert.match(await err.innerText(), /variants\[2\]\.sum: conversions must be in \[0, n\]/)
  assert.equal(await page.locator('[data-test=results]').count(), 0)
  await page.locator('[data-test=remove-2]').click()
  await analyze(page)
  await page.locator('[data-test=results]').waitFor()
  s.clean(w)
  await context.close()
})

test('power: persons, days and the week table are the API answer; Chinese', async () => {
  const { context, page, w } = await s.open()
  await s.logIn(page, s.server.admin)
  await s.visit(page, { path: '/calculator', ready: '[data-test=calculator-page]' })
  const f = page.locator('[data-test=power-form]')
  await f.locator('[data-test=p-mean]').fill('10')
  await f.locator('[data-test=p-mde]').fill('5')
  await f.locator('[data-test=p-daily]').fill('2000')
  const answered = page.waitForResponse((r) => r.url().endsWith('/api/v1/experiments/power'))
  await f.locator('[data-test=estimate]').click()
  await answered
  const want = await api(s.server, 'POST', '/api/v1/experiments/power',
    { metric: 'proportion', mean: 0.1, mde: 0.05, daily_persons: 2000, variants: 2, power: 0.8 }, { expect: 200 })
  const int = (v) => new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 }).format(v)
  assert.equal(await f.locator('[data-test=per-variant]').innerText(), int(want.persons_per_variant))
  assert.equal(await f.locator('[data-test=total]').innerText(), int(want.total_persons))
  assert.equal(await f.locator('[data-test=days]').innerText(), int(want.days))
  assert.equal(await f.locator('[data-test=week-1] [data-test=week-power]').innerText(), `${(want.weeks[0].power * 100).toFixed(1)}%`)
  await s.shoot(page, 'calculator-power')

  await s.setLang(page, 'zh-CN')
  assert.equal(await page.locator('h1').innerText(), '实验计算器')
  assert.match(await page.locator('[data-test=nav-calculator]').innerText(), /实验计算器/)
  assert.match(await f.innerText(), /每个版本所需人数/)
  await fillRow(page, 0, CONTROL)
  await fillRow(page, 1, NEW)
  await analyze(page)
  assert.match(await page.locator('[data-test=srm-warning]').innerText(), /样本比例失衡/)
  await s.shoot(page, 'calculator')
  await s.shoot(page, 'calculator-power')
  s.clean(w)
  await context.close()
})

test('phone: the calculator fits 390 px without sideways scrolling', async () => {
  const { context, page, w } = await s.open({ lang: 'zh-CN', width: 390, height: 844 })
  await s.logIn(page, s.server.admin)
  await s.visit(page, { path: '/calculator', ready: '[data-test=calculator-page]' })
  await fillRow(page, 0, CONTROL)
  await fillRow(page, 1, NEW)
  await analyze(page)
  await page.locator('[data-test=interval-chart]').waitFor()
  const wide = await page.evaluate(() => document.documentElement.scrollWidth)
  assert.ok(wide <= 390, `no sideways scrolling at 390 px, the page is ${wide} px wide`)
  await s.shoot(page, 'calculator-phone')
  s.clean(w)
  await context.close()
})

test('viewer: the calculator answers a viewer too (nothing is stored, no edit control)', async () => {
  const { context, page, w } = await s.open()
  await s.logIn(page, s.fx.viewer)
  await s.visit(page, { path: '/calculator', ready: '[data-test=calculator-page]' })
  await fillRow(page, 0, CONTROL)
  await fillRow(page, 1, NEW)
  await analyze(page)
  await page.locator('[data-test=result-1] [data-test=expected]').waitFor()
  // The page has no control that changes stored data: only analyze, estimate and the form's own rows.
  const buttons = await page.locator('[data-test=calculator-page] button').evaluateAll((bs) => bs.map((b) => b.getAttribute('data-test')))
  for (const b of buttons) assert.ok(['analyze', 'add-variant', 'estimate', null].includes(b) || /^remove-/.test(b), `unexpected control ${b}`)
  s.clean(w)
  await context.close()
})
