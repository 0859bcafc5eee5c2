// The experiment calculator: an A/B test's numbers in, its statistics out (POST
// /api/v1/experiments/analyze), and the persons and days a test needs (POST
// /api/v1/experiments/power). Nothing is stored, so every role may use it.
import { defineArea } from '../area'

export default defineArea({
  routes: [{ path: 'calculator', name: 'calculator', component: () => import('./CalculatorPage.vue') }],
  nav: [{ name: 'calculator', path: '/calculator', icon: '±', order: 75 }],
})
