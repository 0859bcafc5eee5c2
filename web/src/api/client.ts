// The one way the console talks to the server: same-origin fetch with the session cookie.
// Every change (non-GET) carries the session's CSRF token, read from the script-readable
// `ns_csrf` cookie the login set (docs/ops-api.md, "Login sessions"). Nothing secret is kept
// in the browser's storage: the session token lives only in the HttpOnly `ns_session` cookie.

export class ApiError extends Error {
  readonly status: number
  readonly code: string
  readonly field?: string
  constructor(status: number, code: string, message: string, field?: string) {
    super(message)
    this.status = status
    this.code = code
    this.field = field
  }
}

let currentProject = ''
let onUnauthenticated: (() => void) | null = null

/** The project every request is made in (X-Northstar-Project); '' lets the server choose. */
export function setProject(p: string) {
  currentProject = p
}
export function getProject(): string {
  return currentProject
}
/** Called on any 401 outside the login itself: the session ended, the console goes to the login page. */
export function setUnauthenticatedHandler(f: () => void) {
  onUnauthenticated = f
}

export function csrfToken(): string {
  for (const part of document.cookie.split(';')) {
    const [k, ...v] = part.trim().split('=')
    if (k === 'ns_csrf') return decodeURIComponent(v.join('='))
  }
  return ''
}

export interface RequestOptions {
  query?: Record<string, string | number | undefined>
  /** The body is sent as is (text/csv for the actions import); otherwise JSON. */
  rawBody?: string
  signal?: AbortSignal
}

export function apiUrl(path: string, query?: RequestOptions['query']): string {
  const q = new URLSearchParams()
  for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined && v !== '') q.set(k, String(v))
  const s = q.toString()
  return s ? `${path}?${s}` : path
}

/** A link to a download route (exports): the cookie authenticates it, the project goes in the query. */
export function downloadUrl(path: string, query: RequestOptions['query'] = {}): string {
  return apiUrl(path, { ...query, project: currentProject || undefined })
}

export async function api<T>(method: string, path: string, body?: unknown, opts: RequestOptions = {}): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json' }
  if (currentProject) headers['X-Northstar-Project'] = currentProject
  let payload: string | undefined
  if (opts.rawBody !== undefined) {
    payload = opts.rawBody
    headers['Content-Type'] = 'text/plain; charset=utf-8'
  } else if (body !== undefined) {
    payload = JSON.stringify(body)
    headers['Content-Type'] = 'application/json'
  }
  if (method !== 'GET' && method !== 'HEAD') headers['X-CSRF-Token'] = csrfToken()
  const res = await fetch(apiUrl(path, opts.query), {
    method,
    headers,
    body: payload,
    credentials: 'same-origin',
    signal: opts.signal,
  })
  const text = await res.text()
  let data: unknown = null
  if (text) {
    try {
      data = JSON.parse(text)
    } catch {
      data = text
    }
  }
  if (!res.ok) {
    const e = (data as { error?: { code?: string; message?: string; field?: string } } | null)?.error
    const err = new ApiError(res.status, e?.code ?? 'http_' + res.status, e?.message ?? res.statusText, e?.field)
    if (res.status === 401 && path !== '/api/v1/auth/login' && onUnauthenticated) onUnauthenticated()
    throw err
  }
  return data as T
}

export const get = <T>(path: string, query?: RequestOptions['query']) => api<T>('GET', path, undefined, { query })
export const post = <T>(path: string, body?: unknown, opts?: RequestOptions) => api<T>('POST', path, body ?? {}, opts)
export const patch = <T>(path: string, body: unknown) => api<T>('PATCH', path, body)
export const del = <T>(path: string) => api<T>('DELETE', path)
