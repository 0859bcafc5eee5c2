// Numbers and dates per the UI's language, in the project's time zone (a day is a local day
// of the project, as in every query answer).
import { i18n } from './i18n'
import { session } from './session'

const loc = () => (i18n.global.locale.value === 'zh-CN' ? 'zh-CN' : 'en-US')

export function fmtNumber(v: number | null | undefined, digits = 2): string {
  if (v === null || v === undefined || Number.isNaN(v)) return '–'
  return new Intl.NumberFormat(loc(), { maximumFractionDigits: Math.abs(v) >= 1000 ? 0 : digits }).format(v)
}

export function fmtCompact(v: number | null | undefined): string {
  if (v === null || v === undefined || Number.isNaN(v)) return '–'
  return new Intl.NumberFormat(loc(), { notation: 'compact', maximumFractionDigits: 1 }).format(v)
}

export function fmtPercent(v: number | null | undefined, digits = 1): string {
  if (v === null || v === undefined || Number.isNaN(v)) return '–'
  return new Intl.NumberFormat(loc(), { style: 'percent', maximumFractionDigits: digits }).format(v)
}

/** A KPI value: ratios (funnel, retention) as percentages, counts as numbers. */
export function fmtKpiValue(v: number | null | undefined, isRatio: boolean): string {
  return isRatio ? fmtPercent(v) : fmtNumber(v)
}

/** An instant (Unix ms) as date and time in the project's zone. */
export function fmtInstant(ms: number | null | undefined): string {
  if (!ms) return '–'
  return new Intl.DateTimeFormat(loc(), {
    timeZone: session.timezone,
    year: 'numeric',
    month: 'short',
    day: 'numeric',
    hour: '2-digit',
    minute: '2-digit',
  }).format(new Date(ms))
}

/** A local day 'YYYY-MM-DD' (already in the project's zone) in the UI's style. */
export function fmtDay(day: string | null | undefined): string {
  if (!day) return '–'
  const [y, m, d] = day.split('-').map(Number)
  if (!y || !m || !d) return day
  return new Intl.DateTimeFormat(loc(), { timeZone: 'UTC', month: 'short', day: 'numeric', year: 'numeric' }).format(
    new Date(Date.UTC(y, m - 1, d)),
  )
}

/** Today as 'YYYY-MM-DD' in the project's time zone. */
export function todayInProject(): string {
  return new Intl.DateTimeFormat('en-CA', { timeZone: session.timezone, year: 'numeric', month: '2-digit', day: '2-digit' }).format(
    new Date(),
  )
}

export function addDays(day: string, n: number): string {
  const [y, m, d] = day.split('-').map(Number)
  const t = new Date(Date.UTC(y, m - 1, d + n))
  return t.toISOString().slice(0, 10)
}

export function daysBetween(a: string, b: string): number {
  const [y1, m1, d1] = a.split('-').map(Number)
  const [y2, m2, d2] = b.split('-').map(Number)
  return Math.round((Date.UTC(y2, m2 - 1, d2) - Date.UTC(y1, m1 - 1, d1)) / 86400000)
}
