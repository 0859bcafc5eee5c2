// The seed "new checkout flag at 10% -> experiment on pay conversion with SRM check", driven by
// the real posthog-node SDK against Northstar's own flag evaluation (used by
// tests/integration/experiments_sdk_test.py, which computes the expected figures on its own).
//
//   node experiment_client.js PORT WRITE_KEY PERSONS
//
// Person i (anonymous id ph-anon-i) asks getFeatureFlag('new-checkout') — the server answers
// (POST /flags) and posthog-node sends the `$feature_flag_called` exposure itself. Persons with
// i % 7 == 0 paid one hour before (never counted). Every fourth person then logs in (alias
// ph-user-i -> ph-anon-i) and pays as ph-user-i; the others pay anonymously. Converters: the
// j-th person (from 0) the flag let in converts when j % 100 < 13 (13%), the j-th left out when
// j % 10 == 0 (10%). Prints {"sent", "answers": {id: true|false}} and exits 0, or exits 1 on any
// SDK error.
'use strict';

const [portText, writeKey, personsText] = process.argv.slice(2);
if (!personsText) {
  console.error('usage: node experiment_client.js PORT WRITE_KEY PERSONS');
  process.exit(2);
}
const persons = parseInt(personsText, 10);

async function main() {
  const { PostHog } = require('posthog-node');
  const errors = [];
  const ph = new PostHog(writeKey, { host: `http://127.0.0.1:${portText}`, flushAt: 100, flushInterval: 200,
                                     disableGeoip: true, fetchRetryCount: 3, featureFlagsRequestTimeoutMs: 10000 });
  ph.on('error', (err) => errors.push(String(err && err.stack ? err.stack : err)));
  let sent = 0;
  const capture = (msg) => {
    sent++;
    ph.capture(msg);
  };
  const answers = {};
  const seen = { true: 0, false: 0 };
  for (let i = 0; i < persons; i++) {
    const anon = `ph-anon-${i}`;
    const user = `ph-user-${i}`;
    if (i % 7 === 0) capture({ distinctId: anon, event: 'pay', timestamp: new Date(Date.now() - 3600e3), properties: { amount: 999 } });
    const inRollout = (await ph.getFeatureFlag('new-checkout', anon)) === true;
    answers[anon] = inRollout;
    sent++; // the SDK's own $feature_flag_called
    let payer = anon;
    if (i % 4 === 0) {
      sent++;
      ph.alias({ distinctId: user, alias: anon });
      payer = user;
    }
    const j = seen[inRollout]++;
    // Five seconds after the exposure: each batch's timestamps are corrected by its own clock
    // skew (sent_at), so two events a millisecond apart in different batches may swap.
    if (inRollout ? j % 100 < 13 : j % 10 === 0)
      capture({ distinctId: payer, event: 'pay', timestamp: new Date(Date.now() + 5000), properties: { amount: 100 } });
  }
  await ph.shutdown(60000);
  if (errors.length) {
    console.error(errors.join('\n'));
    process.exit(1);
  }
  console.log(JSON.stringify({ sent, answers }));
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : e);
  process.exit(1);
});
