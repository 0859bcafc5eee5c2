// Journeys (docs/automation.md): the list, the step-list editor and the results page with the
// treated-vs-holdout comparison and the dead letters.
import { defineArea } from '../area'

export default defineArea({
  routes: [
    { path: 'journeys', name: 'journeys', component: () => import('./JourneysPage.vue') },
    { path: 'journeys/new', name: 'journey-new', component: () => import('./JourneyEditPage.vue') },
    { path: 'journeys/:id(\\d+)/edit', name: 'journey-edit', component: () => import('./JourneyEditPage.vue'), props: true },
    { path: 'journeys/:id(\\d+)', name: 'journey', component: () => import('./JourneyResultsPage.vue'), props: true },
  ],
  nav: [{ name: 'journeys', path: '/journeys', icon: '↯', order: 75 }],
})
