import { defineArea } from '../area'

// People → segments: cohorts (list, builder with a live size, one cohort's members), the RFM
// matrix and the lifecycle / tiers / tags distributions (docs/console.md, docs/people.md).
export default defineArea({
  routes: [
    { path: 'segments', name: 'segments', component: () => import('./CohortsPage.vue') },
    { path: 'segments/builder', name: 'segments-builder', component: () => import('./CohortBuilderPage.vue') },
    { path: 'segments/cohorts/:id(\\d+)', name: 'segments-cohort', component: () => import('./CohortPage.vue'), props: true },
    { path: 'segments/rfm', name: 'segments-rfm', component: () => import('./RfmPage.vue') },
    { path: 'segments/distributions', name: 'segments-distributions', component: () => import('./DistributionsPage.vue') },
  ],
  nav: [{ name: 'segments', path: '/segments', icon: '◑', order: 65 }],
})
