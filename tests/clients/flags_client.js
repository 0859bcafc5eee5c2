// Asks a running `northstar serve` for feature flags through the real posthog-node SDK (used by
// tests/integration/flags_test.py, which computes the expected answers on its own).
//
//   node flags_client.js PORT WRITE_KEY IDS_JSON
//
// IDS_JSON: [{"id": "...", "person_properties": {...}}, ...]. For each id: getFeatureFlag,
// isFeatureEnabled and getFeatureFlagPayload of 'new-checkout', getFeatureFlag of 'vip-only'
// (a condition on person properties, sent as personProperties when given) and of 'plain'
// (boolean, with a payload). The SDK sends its $feature_flag_called events through /batch.
// Prints one JSON line {"answers": {id: {...}}} and exits 0, or exits 1 on any SDK error.
'use strict';

const [portText, writeKey, idsJson] = process.argv.slice(2);
if (!idsJson) {
  console.error('usage: node flags_client.js PORT WRITE_KEY IDS_JSON');
  process.exit(2);
}
const { PostHog } = require('posthog-node');

async function main() {
  const errors = [];
  const ph = new PostHog(writeKey, { host: `http://127.0.0.1:${portText}`, flushAt: 20, flushInterval: 100,
                                     disableGeoip: true, featureFlagsRequestTimeoutMs: 10000 });
  ph.on('error', (err) => errors.push(String(err && err.stack ? err.stack : err)));
  const answers = {};
  for (const { id, person_properties: props } of JSON.parse(idsJson)) {
    const options = props ? { personProperties: props } : {};
    answers[id] = {
      checkout: await ph.getFeatureFlag('new-checkout', id),
      enabled: await ph.isFeatureEnabled('new-checkout', id),
      payload: await ph.getFeatureFlagPayload('new-checkout', id),
      vip: await ph.getFeatureFlag('vip-only', id, options),
      plain: await ph.getFeatureFlag('plain', id),
      plain_payload: await ph.getFeatureFlagPayload('plain', id),
      missing: (await ph.getFeatureFlag('no-such-flag', id)) ?? null,
    };
  }
  await ph.shutdown();
  if (errors.length > 0) {
    console.error(errors.join('\n'));
    process.exit(1);
  }
  console.log(JSON.stringify({ answers }));
}

main().catch((err) => {
  console.error(err && err.stack ? err.stack : err);
  process.exit(1);
});
