// Scenario fields that may be text or structured (docs/ops-api.md, "Scenarios"), as one line.
import { fmtNumber } from './format'

export function goalText(g: unknown): string {
  if (g === null || g === undefined) return ''
  if (typeof g === 'string') return g
  if (typeof g === 'object') {
    const o = g as { metric?: string; target?: number; description?: string }
    const parts = [o.metric ?? o.description ?? '']
    if (typeof o.target === 'number') parts.push(o.target > 0 && o.target < 1 ? `≥ ${fmtNumber(o.target * 100, 1)}%` : `≥ ${fmtNumber(o.target)}`)
    return parts.filter(Boolean).join(' ')
  }
  return String(g)
}

export function listText(v: unknown): string {
  if (v === null || v === undefined) return ''
  if (Array.isArray(v)) return v.map((x) => (typeof x === 'string' ? x : goalText(x))).join('; ')
  if (typeof v === 'object') {
    const o = v as { description?: string; cohort_id?: number }
    if (o.description) return o.description
    if (o.cohort_id !== undefined) return `cohort #${o.cohort_id}`
    return JSON.stringify(v)
  }
  return String(v)
}
