// Shared by the journeys pages: how a trigger and a lift read.
import type { Journey, Lift } from './types'

type T = (key: string, args?: Record<string, unknown>) => string

export function triggerText(t: T, tr: Journey['trigger']): string {
  if (tr.type === 'event') return t('journeys.triggerText.event', { name: tr.event })
  if (tr.type === 'cohort') return t('journeys.triggerText.cohort', { id: tr.cohort })
  return t('journeys.triggerText.schedule', { at: tr.at, id: tr.cohort })
}

export function pct(x: number | null | undefined, digits = 1): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return '–'
  return `${(x * 100).toFixed(digits)}%`
}

export function signedPct(x: number, digits = 1): string {
  return `${x >= 0 ? '+' : '−'}${Math.abs(x * 100).toFixed(digits)}%`
}

export function liftText(l: Lift | null): string {
  if (!l) return ''
  return `${signedPct(l.expected)} [${signedPct(l.ci[0])}, ${signedPct(l.ci[1])}]`
}

export const STATUS_TAG: Record<string, 'success' | 'warning' | 'info' | 'danger'> = {
  active: 'success',
  paused: 'warning',
  draft: 'info',
  ended: 'info',
}
