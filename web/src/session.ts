// Who is logged in, in which project, with which role: filled from GET /api/v1/auth/me.
// The chosen project's name is remembered in localStorage (a name, not a credential).
import { computed, reactive } from 'vue'
import { ApiError, csrfToken, get, post, setProject } from './api/client'
import type { LoginAnswer, Me, Membership, ProjectInfo, Role } from './api/types'

const PROJECT_KEY = 'ns.project'

export const session = reactive({
  loaded: false,
  actor: '',
  userId: 0,
  project: '',
  role: 'viewer' as Role,
  projects: [] as Membership[],
  timezone: 'Asia/Shanghai',
  eventNames: [] as string[],
})

export const canEdit = computed(() => session.role === 'operator' || session.role === 'admin')
export const isAdmin = computed(() => session.role === 'admin')

function applyProject(p: ProjectInfo | null) {
  if (!p) return // the project's details are a nicety (time zone for dates); the console works without them
  session.timezone = p.timezone || 'Asia/Shanghai'
  session.eventNames = p.event_names ?? []
}

function apply(me: Me) {
  session.actor = me.actor
  session.userId = me.user_id
  session.project = me.project
  session.role = me.role
  session.projects = me.projects
  session.loaded = true
  setProject(me.project)
  localStorage.setItem(PROJECT_KEY, me.project)
}

/** Who am I and the project's details, asked together: one step of the page's request chain. */
async function fetchMeAndProject(): Promise<void> {
  const [me, project] = await Promise.all([
    get<Me>('/api/v1/auth/me'),
    get<ProjectInfo>('/api/v1/project').catch(() => null),
  ])
  apply(me)
  applyProject(project)
}

/** Loads the session from the cookie; false when there is none (or it expired). */
export async function loadSession(): Promise<boolean> {
  // The login sets ns_csrf beside the HttpOnly session cookie and the logout clears both:
  // without it there is no session to ask about (and no 401 to show in the console).
  if (!csrfToken()) return false
  const remembered = localStorage.getItem(PROJECT_KEY) ?? ''
  setProject(remembered)
  try {
    await fetchMeAndProject()
  } catch (e) {
    // A remembered project the user lost access to: ask again without it.
    if (remembered && e instanceof ApiError && (e.status === 403 || e.status === 400)) {
      localStorage.removeItem(PROJECT_KEY)
      setProject('')
      try {
        await fetchMeAndProject()
      } catch {
        return false
      }
    } else {
      return false
    }
  }
  return true
}

export async function login(email: string, password: string): Promise<void> {
  const ans = await post<LoginAnswer>('/api/v1/auth/login', { email, password })
  const remembered = localStorage.getItem(PROJECT_KEY) ?? ''
  const pick = ans.projects.find((p) => p.project === remembered) ?? ans.projects[0]
  setProject(pick ? pick.project : '')
  await fetchMeAndProject()
}

export async function switchProject(name: string): Promise<void> {
  setProject(name)
  await fetchMeAndProject()
}

export async function logout(): Promise<void> {
  try {
    await post('/api/v1/auth/logout')
  } finally {
    clearSession()
  }
}

export function clearSession() {
  session.loaded = false
  session.actor = ''
  session.role = 'viewer'
  session.projects = []
}
