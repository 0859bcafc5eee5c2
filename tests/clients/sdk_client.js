// Drives one real analytics SDK against a running `northstar serve` (used by
// tests/integration/sdk_clients_test.py, which computes the expected counts on its own).
//
//   node sdk_client.js segment|posthog|sensors PORT WRITE_KEY PERSONS DAY_A DAY_B DAY_C
//
// Workload per person i (ids prefixed by the SDK name):
//   DAY_A 10:00Z  3 page views as the anonymous device id
//   DAY_B 11:00Z  5 product_view (sku, price) as the anonymous id
//   DAY_C         identify anonymous -> user with person properties (plan, email),
//                 4 add_to_cart (14:00Z), 2 pay with amount (15:30Z), 2 screen views (16:00Z)
//   and SDK-specific extras (aliases of an old id, groups, profile_* records).
// After the SDK has flushed, the first request the SDK sent is sent again twice the way the
// SDK itself would on a retry; Northstar must count those events as duplicates.
// Prints one JSON line {"sdk","sent","replayed","requests"} and exits 0, or exits 1 on any
// delivery error.
'use strict';

const [sdk, portText, writeKey, personsText, dayA, dayB, dayC] = process.argv.slice(2);
if (!sdk || !dayC) {
  console.error('usage: node sdk_client.js segment|posthog|sensors PORT WRITE_KEY PERSONS DAY_A DAY_B DAY_C');
  process.exit(2);
}
const host = `http://127.0.0.1:${portText}`;
const persons = parseInt(personsText, 10);
const at = (day, hhmm) => new Date(`${day}T${hhmm}:00.000Z`);
const plan = (i) => (i % 2 === 0 ? 'pro' : 'free');
const amount = (i) => 10 * ((i % 5) + 1);
const errors = [];
let sent = 0;

function fail(what, err) {
  errors.push(`${what}: ${err && err.stack ? err.stack : err}`);
}

async function runSegment() {
  const { Analytics } = require('@segment/analytics-node');
  const analytics = new Analytics({ writeKey, host, flushAt: 50, flushInterval: 200, maxRetries: 3 });
  let first = null;
  let requests = 0;
  analytics.on('http_request', (req) => {
    requests++;
    if (first === null) first = req;
  });
  analytics.on('error', (err) => fail('segment', err));
  const track = (msg) => {
    sent++;
    analytics.track(msg);
  };
  for (let i = 0; i < persons; i++) {
    const anon = `seg-anon-${i}`;
    const user = `seg-user-${i}`;
    const context = { campaign: { source: 'kol', medium: 'social', name: 'spring' }, locale: 'zh-CN', ip: '203.0.113.9' };
    for (let k = 0; k < 3; k++) {
      sent++;
      analytics.page({ anonymousId: anon, name: 'Landing', category: 'Marketing', timestamp: at(dayA, `10:0${k}`),
                       properties: { url: `https://shop.example/p${k}` }, context });
    }
    for (let k = 0; k < 5; k++)
      track({ anonymousId: anon, event: 'product_view', timestamp: at(dayB, `11:0${k}`),
              properties: { sku: `sku-${k}`, price: 5 + k }, context });
    sent++;
    analytics.identify({ anonymousId: anon, userId: user, timestamp: at(dayC, '09:00'),
                         traits: { plan: plan(i), email: `${user}@example.com` } });
    for (let k = 0; k < 4; k++)
      track({ userId: user, event: 'add_to_cart', timestamp: at(dayC, `14:0${k}`), properties: { sku: `sku-${k}` } });
    for (let k = 0; k < 2; k++)
      track({ userId: user, event: 'pay', timestamp: at(dayC, `15:3${k}`), properties: { amount: amount(i) } });
    for (let k = 0; k < 2; k++) {
      sent++;
      analytics.screen({ userId: user, name: 'Home', timestamp: at(dayC, `16:0${k}`) });
    }
    if (i % 3 === 0) {
      sent++;
      analytics.alias({ previousId: `seg-old-${i}`, userId: user, timestamp: at(dayC, '09:10') });
      track({ userId: `seg-old-${i}`, event: 'legacy_login', timestamp: at(dayC, '09:20') });
    }
    if (i % 10 === 0) {
      sent++;
      analytics.group({ userId: user, groupId: `company-${i}`, traits: { name: `Company ${i}` }, timestamp: at(dayC, '09:30') });
    }
  }
  await analytics.closeAndFlush({ timeout: 60000 });
  // The retry: the SDK's first request, sent again as is (same messageIds).
  let replayed = 0;
  for (let r = 0; r < 2; r++) {
    const res = await fetch(first.url, { method: 'POST', headers: first.headers, body: first.body });
    const text = await res.text();
    if (res.status !== 200 || text !== '{"success":true}') fail('segment replay', `HTTP ${res.status} ${text}`);
    replayed = JSON.parse(first.body).batch.length;
  }
  return { replayed, requests };
}

async function runPostHog() {
  const { PostHog } = require('posthog-node');
  let first = null;
  let requests = 0;
  const recordingFetch = async (url, options) => {
    if (String(url).includes('/batch')) {
      requests++;
      if (first === null) first = { url: String(url), options: { ...options } };
    }
    return fetch(url, options);
  };
  const ph = new PostHog(writeKey, { host, flushAt: 50, flushInterval: 200, fetch: recordingFetch,
                                     disableGeoip: true, fetchRetryCount: 3 });
  ph.on('error', (err) => fail('posthog', err));
  const capture = (msg) => {
    sent++;
    ph.capture(msg);
  };
  for (let i = 0; i < persons; i++) {
    const anon = `ph-anon-${i}`;
    const user = `ph-user-${i}`;
    for (let k = 0; k < 3; k++)
      capture({ distinctId: anon, event: '$pageview', timestamp: at(dayA, `10:0${k}`),
                properties: { $current_url: `https://shop.example/p${k}`, utm_source: 'kol' } });
    for (let k = 0; k < 5; k++)
      capture({ distinctId: anon, event: 'product_view', timestamp: at(dayB, `11:0${k}`),
                properties: { sku: `sku-${k}`, price: 5 + k } });
    sent++;
    ph.identify({ distinctId: user, properties: { plan: plan(i), email: `${user}@example.com` } });
    if (i % 2 === 0) {  // posthog-js style: $identify carrying the anonymous id
      capture({ distinctId: user, event: '$identify', timestamp: at(dayC, '09:00'),
                properties: { $anon_distinct_id: anon } });
    } else {
      sent++;
      ph.alias({ distinctId: user, alias: anon });
    }
    for (let k = 0; k < 4; k++)
      capture({ distinctId: user, event: 'add_to_cart', timestamp: at(dayC, `14:0${k}`), properties: { sku: `sku-${k}` } });
    for (let k = 0; k < 2; k++)
      capture({ distinctId: user, event: 'pay', timestamp: at(dayC, `15:3${k}`), properties: { amount: amount(i) } });
    for (let k = 0; k < 2; k++)
      capture({ distinctId: user, event: '$screen', timestamp: at(dayC, `16:0${k}`), properties: { $screen_name: 'Home' } });
    if (i % 3 === 0) {
      sent++;
      ph.alias({ distinctId: user, alias: `ph-old-${i}` });
      capture({ distinctId: `ph-old-${i}`, event: 'legacy_login', timestamp: at(dayC, '09:20') });
    }
  }
  await ph.shutdown(60000);
  let replayed = 0;
  for (let r = 0; r < 2; r++) {
    const res = await fetch(first.url, first.options);
    const text = await res.text();
    if (res.status !== 200 || text !== '{"status":1}') fail('posthog replay', `HTTP ${res.status} ${text}`);
  }
  // The body may be gzip (posthog-node compresses by default).
  const zlib = require('zlib');
  let body = first.options.body;
  if (typeof body !== 'string') body = zlib.gunzipSync(Buffer.from(body)).toString();
  replayed = JSON.parse(body).batch.length;
  return { replayed, requests };
}

async function runSensors() {
  const SensorsAnalytics = require('sa-sdk-node').default || require('sa-sdk-node');
  const sa = new SensorsAnalytics();
  const submitter = sa.submitTo({ url: `${host}/sa?project=default&token=${writeKey}`, gzip: true, timeout: 30000 },
                                { count: 50, timeSpan: 200 });
  submitter.catch((err) => fail('sensors', err));
  let first = null;
  let requests = 0;
  const consume = submitter.dataQueue.consumeData;
  submitter.dataQueue.consumeData = (messages) => {
    requests++;
    if (first === null) first = messages;
    return consume(messages);
  };
  const track = (id, event, props) => {
    sent++;
    sa.track(id, event, props);
  };
  for (let i = 0; i < persons; i++) {
    const anon = `sa-anon-${i}`;
    const user = `sa-user-${i}`;
    for (let k = 0; k < 3; k++)
      track(anon, '$pageview', { $time: at(dayA, `10:0${k}`), $url: `https://shop.example/p${k}` });
    for (let k = 0; k < 5; k++) track(anon, 'product_view', { $time: at(dayB, `11:0${k}`), sku: `sku-${k}`, price: 5 + k });
    sent++;
    sa.trackSignup(user, anon, { $time: at(dayC, '09:00'), channel: 'kol' });
    sent++;
    sa.profileSet(user, { plan: plan(i), email: `${user}@example.com` });
    sent++;
    sa.profileSetOnce(user, { first_channel: 'kol' });
    for (let k = 0; k < 4; k++) track(user, 'add_to_cart', { $time: at(dayC, `14:0${k}`), sku: `sku-${k}` });
    for (let k = 0; k < 2; k++) track(user, 'pay', { $time: at(dayC, `15:3${k}`), amount: amount(i) });
    for (let k = 0; k < 2; k++) track(user, '$AppViewScreen', { $time: at(dayC, `16:0${k}`), $screen_name: 'Home' });
    if (i % 3 === 0) {
      sent++;
      sa.profileIncrement(user, { orders: 2 });
    }
    if (i % 10 === 0) {
      sent += 2;
      sa.profileAppend(user, { tags: ['vip', 'early'] });
      sa.profileUnset(user, ['email']);
    }
  }
  sa.onCompleted();  // flushes the last partial batch
  const deadline = Date.now() + 60000;
  while (submitter.dataQueue.executing || submitter.dataQueue.hasData) {
    if (Date.now() > deadline) {
      fail('sensors', 'queue not drained within 60 s');
      break;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  // The retry: the SDK's own submit() of the first batch, twice (same _track_ids).
  for (let r = 0; r < 2; r++) {
    try {
      await submitter.submit(first);
    } catch (err) {
      fail('sensors replay', err);
    }
  }
  return { replayed: first.length, requests };
}

(async () => {
  const run = { segment: runSegment, posthog: runPostHog, sensors: runSensors }[sdk];
  if (!run) {
    console.error(`unknown SDK '${sdk}' (expected segment, posthog or sensors)`);
    process.exit(2);
  }
  let result;
  try {
    result = await run();
  } catch (err) {
    fail(sdk, err);
  }
  if (errors.length) {
    console.error(errors.join('\n'));
    process.exit(1);
  }
  console.log(JSON.stringify({ sdk, sent, ...result }));
  process.exit(0);
})();
