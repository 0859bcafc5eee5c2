// The models area (web/src/areas/models, docs/models.md): the churn-risk page against the
// API. The demo is 1,500 users over 100 days (the model needs 60 days after its training
// day). An operator trains the model with the page's button and the page follows the job to
// "ready"; the AUC, precision at 10 %, sizes and training day shown are the API's; the
// riskiest persons are the API's, in its order, and link to the person's profile; the page
// in Chinese; a viewer sees the figures but no train button; a person's profile shows the
// churn card (risk, decile, top features, P(alive), CLV) with the person API's numbers, also
// to a viewer. Screenshots in both languages.
//
// Usage: node web/tests/models.test.mjs /path/to/northstar      (exit 77: no Chromium)
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { api, consoleSuite } from './harness.mjs'

const s = await consoleSuite(import.meta.url, { users: 1500, days: 100 })

const en = (v, opts) => new Intl.NumberFormat('en-US', opts).format(v)

test('an operator trains the churn model and reads its evaluation', async () => {
  const { context, page, w } = await s.open()
  await s.logIn(page, s.fx.operator)
  await s.visit(page, { path: '/models/churn', ready: '[data-test=churn-page] [data-test=churn-status]' })
  assert.equal(await page.locator('[data-test=churn-status]').getAttribute('data-status'), 'untrained')
  await page.locator('[data-test=churn-untrained]').waitFor()
  const started = page.waitForResponse((r) => r.url().endsWith('/api/v1/models/churn/train'))
  await page.locator('[data-test=churn-train]').click()
  assert.equal((await started).status(), 202)
  // The training runs in the background (seconds; more on a loaded machine).
  for (let i = 0; i < 240; i++) {
    const now = await api(s.server, 'GET', '/api/v1/models/churn')
    if (now.status !== 'training') break
    await new Promise((r) => setTimeout(r, 500))
  }
  await page.locator('[data-test=churn-status][data-status=ready]').waitFor({ timeout: 30000 })
  await page.locator('[data-test=churn-person-link]').first().waitFor()
  await s.settle(page)

  const st = await api(s.server, 'GET', '/api/v1/models/churn')
  assert.equal(st.status, 'ready')
  assert.ok(st.auc > 0.6, `demo AUC ${st.auc}`)
  const text = async (t) => (await page.locator(`[data-test=${t}]`).innerText()).trim()
  assert.equal(await text('churn-auc'), en(st.auc, { maximumFractionDigits: 3 }))
  assert.equal(await text('churn-precision'), en(st.precision_at_10, { style: 'percent', maximumFractionDigits: 1 }))
  assert.equal(await text('churn-base-rate'), en(st.evaluation.churn_rate, { style: 'percent', maximumFractionDigits: 1 }))
  assert.equal(await text('churn-training-size'), en(st.training_size, { maximumFractionDigits: 0 }))
  assert.equal(await text('churn-evaluation-size'), en(st.evaluation_size, { maximumFractionDigits: 0 }))
  assert.equal(await text('churn-high-risk'), en(st.scored.high_risk_persons, { maximumFractionDigits: 0 }))
  assert.ok((await text('churn-t')).length > 0)
  // The two charts are drawn.
  assert.equal(await page.locator('[data-test=churn-importance] canvas').count(), 1)
  assert.equal(await page.locator('[data-test=churn-distribution] canvas').count(), 1)

  // The riskiest persons: the API's, in its order, with their risk.
  const top = await api(s.server, 'GET', '/api/v1/models/churn/persons?limit=20')
  const ids = await page.locator('[data-test=churn-person-link]').allInnerTexts()
  assert.deepEqual(ids.map((x) => x.trim()), top.persons.map((p) => p.distinct_id))
  const risks = await page.locator('[data-test=churn-person-risk]').allInnerTexts()
  assert.equal(risks[0].trim(), en(top.persons[0].risk, { style: 'percent', maximumFractionDigits: 1 }))
  await s.shoot(page, 'churn-risk')

  // In Chinese.
  await s.setLang(page, 'zh-CN')
  await page.locator('h1', { hasText: '流失风险' }).waitFor()
  await page.locator('[data-test=churn-status]', { hasText: '就绪' }).waitFor()
  await page.locator('[data-test=nav-models]', { hasText: '流失风险' }).waitFor()
  await s.shoot(page, 'churn-risk')
  await s.setLang(page, 'en')

  // A person links to its profile, whose API answer carries the same score.
  const first = top.persons[0]
  await page.locator('[data-test=churn-person-link]').first().click()
  await page.waitForURL(new RegExp(`/people/${encodeURIComponent(first.distinct_id)}$`))
  await s.settle(page)
  const person = await api(s.server, 'GET', `/api/v1/persons/${encodeURIComponent(first.distinct_id)}`)
  assert.equal(person.churn.risk, first.risk)
  assert.deepEqual(person.churn.top_features, first.top_features)
  // The profile's churn card: the risk, decile and top features of the person API, explained.
  await checkPersonCard(page, person)
  await s.shoot(page, 'person-churn')
  await s.setLang(page, 'zh-CN')
  await page.locator('[data-test=person-models] h2', { hasText: '流失风险与预测价值' }).waitFor()
  assert.match(await page.locator('[data-test=person-churn-decile]').innerText(), /十分位 \d+\/10/)
  await s.shoot(page, 'person-churn')
  await s.setLang(page, 'en')
  s.clean(w)
  await context.close()
})

const pct = (v) => en(v, { style: 'percent', maximumFractionDigits: 1 })

async function checkPersonCard(page, person) {
  const card = page.locator('[data-test=person-models]')
  await card.waitFor()
  const row = (t) => card.locator(`[data-test=${t}]`)
  if (person.churn) {
    assert.equal(Number(await row('person-churn-risk').getAttribute('data-value')), person.churn.risk)
    assert.match(await row('person-churn-risk').innerText(), new RegExp(pct(person.churn.risk).replace('.', '\\.')))
    assert.equal(await row('person-churn-decile').innerText(), `decile ${person.churn.decile} of 10`)
    assert.match(await row('person-churn-risk').innerText(), /probability of no activity at all in the 30 days/)
    const feats = card.locator('[data-test=person-churn-features] li')
    assert.deepEqual(await feats.evaluateAll((ls) => ls.map((l) => l.dataset.feature)), person.churn.top_features.map((f) => f.feature))
    for (let i = 0; i < person.churn.top_features.length; i++)
      assert.match(await feats.nth(i).innerText(), person.churn.top_features[i].contribution >= 0 ? /raises the risk/ : /lowers the risk/)
  } else {
    await row('person-churn-none').waitFor()
  }
  const pAlive = person.properties.$p_alive
  assert.equal(await row('person-p-alive').getAttribute('data-value'), pAlive === undefined ? '' : String(pAlive))
  if (pAlive !== undefined) assert.match(await row('person-p-alive').innerText(), /still buys/)
  const clv = person.properties.$clv
  assert.equal(await row('person-clv').getAttribute('data-value'), clv === undefined ? '' : String(clv))
  if (clv === undefined) assert.match(await row('person-clv').innerText(), /No payment yet/)
}

test('a viewer sees a profile\'s churn card with the API\'s numbers', async () => {
  const top = await api(s.server, 'GET', '/api/v1/models/churn/persons?limit=5')
  const id = top.persons[top.persons.length - 1].distinct_id
  const { context, page, w } = await s.open()
  await s.logIn(page, s.fx.viewer)
  await s.visit(page, { path: `/people/${encodeURIComponent(id)}`, ready: '[data-test=person-page] [data-test=person-models]' })
  const asViewer = await api(s.server, 'GET', `/api/v1/persons/${encodeURIComponent(id)}`)
  await checkPersonCard(page, asViewer)
  s.clean(w)
  await context.close()
})

test('a viewer sees the model but cannot train it', async () => {
  const { context, page, w } = await s.open()
  await s.logIn(page, s.fx.viewer)
  await s.visit(page, { path: '/models/churn', ready: '[data-test=churn-page] [data-test=churn-status]' })
  await page.locator('[data-test=churn-metrics]').waitFor()
  assert.equal(await page.locator('[data-test=churn-train]').count(), 0, 'no train button for a viewer')
  s.clean(w)
  await context.close()
})
