// The experiments area (docs/experiments.md): the list, the create/edit form and the results
// page with each treatment's interval drawn.
import { defineArea } from '../area'

export default defineArea({
  routes: [
    { path: 'experiments', name: 'experiments', component: () => import('./ExperimentsPage.vue') },
    { path: 'experiments/new', name: 'experiment-new', component: () => import('./ExperimentEditPage.vue') },
    {
      path: 'experiments/:id(\\d+)/edit',
      name: 'experiment-edit',
      component: () => import('./ExperimentEditPage.vue'),
      props: true,
    },
    {
      path: 'experiments/:id(\\d+)',
      name: 'experiment',
      component: () => import('./ExperimentResultsPage.vue'),
      props: true,
    },
  ],
  nav: [{ name: 'experiments', path: '/experiments', icon: '⚗', order: 75 }],
})
