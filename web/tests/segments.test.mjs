// The segments area in a real browser (issue 12, People): the cohort builder with a live
// size, cohorts (members, static ids, export, delete refused while a scenario names one),
// the RFM matrix one click from a cohort, the lifecycle / tier / tag distributions, Chinese,
// the viewer's view and screenshots in both languages. Every page is watched (harness.mjs).
//
// Usage: node web/tests/segments.test.mjs /path/to/northstar      (exit 77: no Chromium)
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { XSS, addDays, api, consoleSuite } from './harness.mjs'

const s = await consoleSuite(import.meta.url)
const PAGES = [
  { name: 'segments-cohorts', path: '/segments', ready: '[data-test=cohort-table]' },
  { name: 'segments-builder', path: '/segments/builder', ready: '[data-test=segments-builder]' },
  { name: 'segments-rfm', path: '/segments/rfm', ready: '[data-test=rfm-champions]' },
  { name: 'segments-distributions', path: '/segments/distributions', ready: '[data-test=dist-lifecycle-active][data-count]' },
]

/** The live size once the builder has counted the current definition. */
async function liveSize(page) {
  const el = page.locator('[data-test=live-size][data-busy="0"]')
  await el.waitFor()
  await page.__nsWatch.idle()
  return Number(await page.locator('[data-test=live-size]').getAttribute('data-size'))
}
async function cohortPageSize(page) {
  const el = page.locator('[data-test=cohort-size]')
  await el.waitFor()
  return Number(await el.getAttribute('data-size'))
}

test('cohort builder: an AND of two rules and an OR group, live size = saved size = the API', async () => {
  const { context, page, w } = await s.open()
  await s.logIn(page, s.fx.operator)
  await page.locator('[data-test=nav-segments]').click()
  await page.locator('[data-test=cohort-table]').waitFor()
  await page.locator('[data-test=new-cohort]').click()
  await page.locator('[data-test=segments-builder]').waitFor()
  // Rule 1: did add_to_cart at least once in the last 30 days.
  const c0 = page.locator('[data-test=cond-root-0]')
  await c0.locator('[data-test=cond-event]').fill('add_to_cart')
  await c0.locator('[data-test=cond-days]').fill('30')
  // Rule 2: person property city_tier is tier1 or tier2.
  await page.locator('[data-test=group-root] > .adds [data-test=add-condition]').click()
  const c1 = page.locator('[data-test=cond-root-1]')
  await c1.locator('[data-test=cond-type]').selectOption('property')
  await c1.locator('[data-test=cond-property]').fill('city_tier')
  await c1.locator('[data-test=cond-op]').selectOption('in')
  await c1.locator('[data-test=cond-value]').fill('tier1, tier2')
  // An OR group: paid at least twice, or the value tier is high.
  await page.locator('[data-test=group-root] > .adds [data-test=add-group]').click()
  const g = page.locator('[data-test=group-root-2]')
  assert.equal(await g.locator('[data-test=group-op]').inputValue(), 'or')
  const g0 = page.locator('[data-test=cond-root-2-0]')
  await g0.locator('[data-test=cond-event]').fill('pay')
  await g0.locator('[data-test=cond-count]').fill('2')
  await g0.locator('[data-test=cond-range]').selectOption('all')
  await g.locator('[data-test=add-condition]').last().click()
  const g1 = page.locator('[data-test=cond-root-2-1]')
  await g1.locator('[data-test=cond-type]').selectOption('tier')
  await g1.locator('[data-test=cond-dimension]').selectOption('value')
  await g1.locator('[data-test=cond-level]').selectOption('high')
  const live = await liveSize(page)
  assert.ok(live > 0, `the live size counts someone (${live})`)
  await s.shoot(page, 'segments-builder')
  await page.locator('[data-test=cohort-name]').fill('Carting tier-1/2 buyers')
  await page.locator('[data-test=save-cohort]').click()
  await page.waitForURL(/\/segments\/cohorts\/\d+$/)
  const id = Number(/cohorts\/(\d+)$/.exec(page.url())[1])
  const saved = await api(s.server, 'GET', `/api/v1/cohorts/${id}`)
  assert.equal(await cohortPageSize(page), saved.size, 'the cohort page shows the API size')
  assert.equal(live, saved.size, 'the live size was the saved size')
  const def = saved.definition
  assert.equal(def.op, 'and')
  assert.deepEqual(def.conditions.map((c) => c.type ?? c.op), ['performed', 'property', 'or'])
  assert.deepEqual(def.conditions[0], { type: 'performed', event: 'add_to_cart', count: { op: 'gte', value: 1 }, last_days: 30 })
  assert.deepEqual(def.conditions[1], { type: 'property', property: 'city_tier', op: 'in', value: ['tier1', 'tier2'] })
  assert.deepEqual(def.conditions[2].conditions, [
    { type: 'performed', event: 'pay', count: { op: 'gte', value: 2 } },
    { type: 'tier', dimension: 'value', level: 'high' },
  ])
  // Members: the persons list of the cohort, paged.
  await page.locator('[data-test=members-total]').waitFor()
  assert.equal(Number(await page.locator('[data-test=members-total]').getAttribute('data-total')), saved.size)
  assert.equal(await page.locator('[data-test=member-link]').count(), Math.min(50, saved.size))
  // Changed in the builder: the saved cohort's definition and size follow (PATCH, same id).
  await s.settle(page)
  await page.locator('[data-test=cohort-edit]').click()
  await page.locator('[data-test=editing]').waitFor()
  await page.locator('[data-test=cond-root-0] [data-test=cond-days]').fill('14')
  const live14 = await liveSize(page)
  await page.locator('[data-test=save-cohort]').click()
  await page.waitForURL(new RegExp(`/segments/cohorts/${id}$`))
  const changed = await api(s.server, 'GET', `/api/v1/cohorts/${id}`)
  assert.equal(changed.definition.conditions[0].last_days, 14)
  assert.equal(changed.size, live14)
  assert.equal(await cohortPageSize(page), live14)
  // The list shows it with its size.
  await s.visit(page, { path: '/segments', ready: `[data-test=cohort-size-${id}]` })
  assert.equal((await page.locator(`[data-test=cohort-size-${id}]`).innerText()).replace(/\D/g, ''), String(changed.size))
  await s.shoot(page, 'segments-cohorts')
  s.clean(w)
  await context.close()
})

test('static cohort: pasted ids (unknown shown back), export CSV, delete refused while a scenario uses it', async () => {
  const { context, page, w } = await s.open()
  await s.logIn(page, s.server.admin)
  await s.visit(page, { path: '/segments', ready: '[data-test=static-name]' })
  await page.locator('[data-test=static-name]').fill('Hand-picked VIPs')
  await page.locator('[data-test=create-static]').click()
  await page.waitForURL(/\/segments\/cohorts\/\d+$/)
  const id = Number(/cohorts\/(\d+)$/.exec(page.url())[1])
  const known = (await api(s.server, 'GET', '/api/v1/persons?limit=3')).persons.map((p) => p.distinct_id)
  await page.locator('[data-test=paste-ids]').fill([...known, 'no-such-person-42'].join('\n'))
  await page.locator('[data-test=add-members]').click()
  await page.locator('[data-test=unknown-ids]').waitFor()
  assert.equal((await page.locator('[data-test=unknown-ids] li').allInnerTexts()).join(','), 'no-such-person-42')
  await page.locator(`[data-test=cohort-size][data-size="${known.length}"]`).waitFor()
  assert.equal((await api(s.server, 'GET', `/api/v1/cohorts/${id}`)).size, known.length)
  await s.settle(page)
  const [download] = await Promise.all([page.waitForEvent('download'), page.locator('[data-test=cohort-export]').click()])
  const csv = readFileSync(await download.path(), 'utf8')
  for (const k of known) assert.ok(csv.includes(k), `the export holds ${k}`)
  await s.shoot(page, 'segments-cohort')
  // A scenario names it as its key user group: deleting is refused (409) and the page says why.
  const sc = await api(s.server, 'POST', '/api/v1/scenarios', {
    name: 'VIP care', business_module: 'retention', goal: { metric: 'repurchase', target: 0.3 }, key_user_group: { cohort_id: id },
    owner: 'ops', period: { from: s.fx.today, to: addDays(s.fx.today, 30) },
  })
  w.allowed.push((url, status) => status === 409 && url.endsWith(`/api/v1/cohorts/${id}`)) // asked for
  await page.locator('[data-test=cohort-delete]').click()
  await page.locator('[data-test=cohort-delete]').click()
  await page.locator('[data-test=delete-error]').waitFor()
  assert.match(await page.locator('[data-test=delete-error]').innerText(), new RegExp(`scenario ${sc.id}`))
  await api(s.server, 'GET', `/api/v1/cohorts/${id}`) // still there
  s.clean(w)
  await context.close()
})

test('RFM matrix: the eight segments as the API answers, one click to a cohort of the segment', async () => {
  const { context, page, w } = await s.open()
  await s.logIn(page, s.fx.operator)
  await s.visit(page, { path: '/segments/rfm', ready: '[data-test=rfm-champions]' })
  const rfm = await api(s.server, 'POST', '/api/v1/query', { kind: 'rfm', limit: 0 }, { expect: 200 })
  assert.equal(rfm.segments.length, 8)
  for (const seg of rfm.segments)
    assert.equal(Number(await page.locator(`[data-test=rfm-${seg.segment}] [data-persons]`).getAttribute('data-persons')), seg.persons, seg.segment)
  await s.shoot(page, 'segments-rfm')
  const pick = rfm.segments.reduce((a, b) => (b.persons > a.persons ? b : a))
  await page.locator(`[data-test=rfm-cohort-${pick.segment}]`).click()
  await page.waitForURL(/\/segments\/cohorts\/\d+$/)
  const id = Number(/cohorts\/(\d+)$/.exec(page.url())[1])
  assert.equal(await cohortPageSize(page), pick.persons, 'the cohort has the segment count')
  assert.equal((await api(s.server, 'GET', `/api/v1/cohorts/${id}`)).size, pick.persons)
  await s.settle(page)
  // Again: the same cohort opens (no second one).
  await s.visit(page, { path: '/segments/rfm', ready: `[data-test=rfm-cohort-${pick.segment}]` })
  await page.locator(`[data-test=rfm-cohort-${pick.segment}]`).click()
  await page.waitForURL(new RegExp(`/segments/cohorts/${id}$`))
  await s.settle(page)
  s.clean(w)
  await context.close()
})

test('distributions: lifecycle, tiers and tags as the API counts them; a bar opens its rule; every page in Chinese', async () => {
  const { context, page, w } = await s.open()
  await s.logIn(page, s.server.admin)
  await s.visit(page, PAGES[3])
  const today = s.fx.today
  const lc = await api(s.server, 'POST', '/api/v1/query', { kind: 'lifecycle', mode: 'stages', date_from: today, date_to: today, interval: 'day' }, { expect: 200 })
  for (const ser of lc.series) {
    const shown = Number(await page.locator(`[data-test=dist-lifecycle-${ser.stage}]`).getAttribute('data-count'))
    assert.equal(shown, ser.values.at(-1), `lifecycle ${ser.stage}`)
  }
  const tiers = { value: ['high', 'medium', 'potential'], activity: ['core', 'ordinary', 'silent'], need: ['loyal', 'impulse', 'demand'], social: ['spreader', 'sharer', 'onlooker'] }
  const conds = Object.entries(tiers).flatMap(([dimension, levels]) => levels.map((level) => ({ dimension, level })))
  const { sizes } = await api(s.server, 'POST', '/api/v1/cohorts/preview', {
    definitions: conds.map((c) => ({ op: 'and', conditions: [{ type: 'tier', ...c }] })),
  }, { expect: 200 })
  for (const [i, c] of conds.entries())
    assert.equal(Number(await page.locator(`[data-test=dist-tier-${c.dimension}-${c.level}]`).getAttribute('data-count')), sizes[i], `${c.dimension} ${c.level}`)
  const tags = (await api(s.server, 'GET', '/api/v1/tags')).rule_tags.map((t) => t.key)
  const tagSizes = (await api(s.server, 'POST', '/api/v1/cohorts/preview', {
    definitions: tags.map((tag) => ({ op: 'and', conditions: [{ type: 'tag', tag }] })),
  }, { expect: 200 })).sizes
  for (const [i, tag] of tags.entries())
    assert.equal(Number(await page.locator(`[data-test=dist-tag-${tag}]`).getAttribute('data-count')), tagSizes[i], `tag ${tag}`)
  await s.shoot(page, 'segments-distributions')
  // A bar opens the builder on its rule, whose live size is the bar's number.
  const want = Number(await page.locator('[data-test=dist-tier-activity-core]').getAttribute('data-count'))
  await page.locator('[data-test=dist-tier-activity-core]').click()
  await page.waitForURL(/\/segments\/builder\?/)
  assert.equal(await page.locator('[data-test=cond-root-0] [data-test=cond-type]').inputValue(), 'tier')
  assert.equal(await liveSize(page), want)
  s.clean(w)

  // Chinese (same session, one login less): every segment page, screenshots in zh-CN.
  await s.visit(page, PAGES[0])
  await s.setLang(page, 'zh-CN')
  assert.ok((await page.locator('[data-test=nav-segments]').innerText()).includes('用户分群'))
  const expect = { 'segments-cohorts': '分群列表', 'segments-builder': '分群构建器', 'segments-rfm': '重要价值客户', 'segments-distributions': '生命周期' }
  for (const p of PAGES) {
    await s.visit(page, p)
    assert.ok((await page.locator('main, body').first().innerText()).includes(expect[p.name]), `${p.name} in Chinese`)
    await s.shoot(page, p.name)
  }
  const { cohorts } = await api(s.server, 'GET', '/api/v1/cohorts')
  await s.visit(page, { path: `/segments/cohorts/${cohorts[0].id}`, ready: '[data-test=cohort-size]' })
  assert.ok((await page.locator('body').innerText()).includes('导出 CSV'))
  await s.shoot(page, 'segments-cohort')
  await s.setLang(page, 'en')
  s.clean(w)
  await context.close()
})

test('viewer: counts and reads, but no save, create, add or delete control; names are text', async () => {
  const { context, page, w } = await s.open()
  // A cohort whose name and description are an HTML payload is shown as text.
  await api(s.server, 'POST', '/api/v1/cohorts', { name: XSS, description: XSS, kind: 'static' })
  await s.logIn(page, s.fx.viewer)
  await s.visit(page, PAGES[0])
  assert.ok((await page.locator('[data-test=cohort-table]').innerText()).includes(XSS))
  assert.equal(await page.locator('img[src=x]').count(), 0)
  for (const sel of ['new-cohort', 'create-static', 'static-name']) assert.equal(await page.locator(`[data-test=${sel}]`).count(), 0, sel)
  await s.visit(page, PAGES[1])
  await page.locator('[data-test=cond-root-0] [data-test=cond-event]').fill('pay')
  assert.ok((await liveSize(page)) >= 0, 'a viewer still sees the live size')
  assert.equal(await page.locator('[data-test=save-cohort]').count(), 0)
  await s.visit(page, PAGES[2])
  assert.equal(await page.locator('[data-test^=rfm-cohort-]').count(), 0)
  const { cohorts } = await api(s.server, 'GET', '/api/v1/cohorts')
  const stat = cohorts.find((c) => c.kind === 'static')
  await s.visit(page, { path: `/segments/cohorts/${stat.id}`, ready: '[data-test=cohort-size]' })
  for (const sel of ['cohort-delete', 'paste-ids', 'add-members']) assert.equal(await page.locator(`[data-test=${sel}]`).count(), 0, sel)
  s.clean(w)
  await context.close()
})
