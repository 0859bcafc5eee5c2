import { createApp } from 'vue'
import App from './App.vue'
import { i18n } from './i18n'
import { router } from './router'
import { setUnauthenticatedHandler } from './api/client'
import { clearSession } from './session'
import './styles.css'

setUnauthenticatedHandler(() => {
  clearSession()
  const here = router.currentRoute.value
  if (here.name !== 'login') void router.push({ name: 'login', query: { next: here.fullPath } })
})

createApp(App).use(i18n).use(router).mount('#app')
