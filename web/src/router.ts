import { createRouter, createWebHistory, type RouteRecordRaw } from 'vue-router'
import { loadSession, session } from './session'
import { areas } from './areas/area'

// Every page is its own chunk, loaded when first visited: the first load carries only the
// shell (docs/console.md, "Size").
const routes: RouteRecordRaw[] = [
  { path: '/login', name: 'login', component: () => import('./pages/LoginPage.vue'), meta: { public: true } },
  {
    path: '/',
    component: () => import('./components/AppLayout.vue'),
    children: [
      { path: '', name: 'cockpit', component: () => import('./pages/CockpitPage.vue') },
      { path: 'scenarios', name: 'scenarios', component: () => import('./pages/ScenariosPage.vue') },
      { path: 'scenarios/:id(\\d+)', name: 'scenario', component: () => import('./pages/ScenarioPage.vue'), props: true },
      { path: 'alerts', name: 'alerts', component: () => import('./pages/AlertsPage.vue') },
      { path: 'people', name: 'people', component: () => import('./pages/PeoplePage.vue') },
      { path: 'people/:id', name: 'person', component: () => import('./pages/PersonPage.vue'), props: true },
      { path: 'insights', name: 'insights', component: () => import('./pages/InsightsPage.vue') },
      { path: 'dashboards', name: 'dashboards', component: () => import('./pages/DashboardsPage.vue') },
      { path: 'settings', name: 'settings', component: () => import('./pages/SettingsPage.vue') },
      // Every area's pages (web/src/areas/*/index.ts).
      ...areas.flatMap((a) => a.routes),
      { path: ':rest(.*)*', name: 'not-found', component: () => import('./pages/NotFoundPage.vue') },
    ],
  },
]

export const router = createRouter({ history: createWebHistory(), routes })

router.beforeEach(async (to) => {
  if (to.meta.public) return true
  if (!session.loaded && !(await loadSession())) return { name: 'login', query: { next: to.fullPath } }
  return true
})
