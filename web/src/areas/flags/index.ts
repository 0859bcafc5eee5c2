import { defineArea } from '../area'

// Feature flags (docs/flags.md). The page lives at /feature-flags: /flags is PostHog's
// evaluation endpoint, which the server never answers with the console's index.html.
export default defineArea({
  routes: [{ path: 'feature-flags', name: 'flags', component: () => import('./FlagsPage.vue') }],
  nav: [{ name: 'flags', path: '/feature-flags', icon: '⚑', order: 70 }],
})
