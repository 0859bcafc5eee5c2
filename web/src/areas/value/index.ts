// Value and growth models (issue 13): commerce figures, the LTV cohort table, acquisition
// channels with their spend, predicted CLV — each one query kind of POST /api/v1/query
// (docs/queries.md), spend through /api/v1/spend (docs/api.md "Spend").
import { defineArea } from '../area'

export default defineArea({
  routes: [{ path: 'value', name: 'value', component: () => import('./ValuePage.vue') }],
  nav: [{ name: 'value', path: '/value', icon: '¥', order: 45 }],
})
