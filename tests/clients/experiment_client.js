// The seed "new checkout flag at 10% -> experiment on pay conversion with SRM check", its events
// sent by the real posthog-node SDK (used by tests/integration/experiments_sdk_test.py, which
// computes the expected figures on its own).
//
//   node experiment_client.js PORT WRITE_KEY PERSONS START_DAY
//
// Person i (anonymous id ph-anon-i) is exposed on day START_DAY + (i % 10) at 03:00Z with
// `$feature_flag_called` {$feature_flag: 'new-checkout', $feature_flag_response: true when
// i % 10 == 3 (the 10% rollout) else false}, as posthog-node's getFeatureFlag reports it. Every
// fourth person then logs in (alias ph-user-i -> ph-anon-i) and pays as ph-user-i; the others pay
// anonymously. Converters: in the rollout floor(i / 10) % 100 < 13 (13%), outside it
// floor(i / 10) % 10 == 0 (10%); they pay at 05:00Z. Persons with i % 7 == 0 also paid at 01:00Z,
// before their exposure (never counted). Prints {"sent"} and exits 0, or exits 1 on a delivery
// error.
'use strict';

const [portText, writeKey, personsText, startDay] = process.argv.slice(2);
if (!startDay) {
  console.error('usage: node experiment_client.js PORT WRITE_KEY PERSONS START_DAY');
  process.exit(2);
}
const persons = parseInt(personsText, 10);
const dayOf = (n) => {
  const d = new Date(`${startDay}T00:00:00.000Z`);
  d.setUTCDate(d.getUTCDate() + n);
  return d.toISOString().slice(0, 10);
};
const at = (day, hhmm) => new Date(`${day}T${hhmm}:00.000Z`);

async function main() {
  const { PostHog } = require('posthog-node');
  const errors = [];
  const ph = new PostHog(writeKey, { host: `http://127.0.0.1:${portText}`, flushAt: 100, flushInterval: 200,
                                     disableGeoip: true, fetchRetryCount: 3 });
  ph.on('error', (err) => errors.push(String(err && err.stack ? err.stack : err)));
  let sent = 0;
  const capture = (msg) => {
    sent++;
    ph.capture(msg);
  };
  for (let i = 0; i < persons; i++) {
    const anon = `ph-anon-${i}`;
    const user = `ph-user-${i}`;
    const day = dayOf(i % 10);
    const rollout = i % 10 === 3;
    if (i % 7 === 0) capture({ distinctId: anon, event: 'pay', timestamp: at(day, '01:00'), properties: { amount: 999 } });
    capture({ distinctId: anon, event: '$feature_flag_called', timestamp: at(day, '03:00'),
              properties: { $feature_flag: 'new-checkout', $feature_flag_response: rollout } });
    let payer = anon;
    if (i % 4 === 0) {
      sent++;
      ph.alias({ distinctId: user, alias: anon });
      payer = user;
    }
    const k = Math.floor(i / 10);
    if (rollout ? k % 100 < 13 : k % 10 === 0)
      capture({ distinctId: payer, event: 'pay', timestamp: at(day, '05:00'), properties: { amount: 100 } });
  }
  await ph.shutdown(60000);
  if (errors.length) {
    console.error(errors.join('\n'));
    process.exit(1);
  }
  console.log(JSON.stringify({ sent }));
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : e);
  process.exit(1);
});
