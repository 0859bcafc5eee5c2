// The models area (docs/models.md): the churn-risk model's page.
import { defineArea } from '../area'

export default defineArea({
  routes: [{ path: 'models/churn', name: 'churn', component: () => import('./ChurnPage.vue') }],
  nav: [{ name: 'models', path: '/models/churn', icon: '◔', order: 65 }],
})
