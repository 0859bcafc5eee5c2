// What the insight builders share: the date range (fixed days or the server's relative
// dates), event names, CSV export of a table, saving a file.
import { reactive, ref } from 'vue'
import { ApiError } from '../../api/client'
import { addDays, fmtNumber, todayInProject } from '../../format'
import { session } from '../../session'

/**
 * A query's date range as sent: `from`/`to` are `YYYY-MM-DD` days or relative dates of the
 * server (docs/queries.md, "Relative dates"), resolved when the query runs, so a saved
 * "last 30 days" stays the last 30 days.
 */
export interface DateRange {
  from: string
  to: string
}

/** The named ranges of the picker; each is sent as itself in both ends (`last_7_days`…). */
export const PRESETS = [
  'today',
  'yesterday',
  'last_7_days',
  'last_14_days',
  'last_30_days',
  'last_90_days',
  'this_week',
  'last_week',
  'this_month',
  'last_month',
  'this_quarter',
  'last_quarter',
  'this_year',
] as const

/** A builder's range: by default the last `days` days, as the server's relative date. */
export function useDateRange(days = 14) {
  return ref<DateRange>({ from: `last_${days}_days`, to: `last_${days}_days` })
}

/** Two fixed days ending today (the value area's pickers use it). */
export function useRange(days = 14) {
  const today = todayInProject()
  return ref<[string, string]>([addDays(today, -(days - 1)), today])
}

/** The range of a saved query (any of its forms). */
export function rangeOf(q: Record<string, unknown>, fallback: DateRange): DateRange {
  return typeof q.date_from === 'string' && typeof q.date_to === 'string' ? { from: q.date_from, to: q.date_to } : fallback
}

const DAY = /^\d{4}-\d{2}-\d{2}$/

function ymd(y: number, m: number, d: number): string {
  return new Date(Date.UTC(y, m, d)).toISOString().slice(0, 10)
}
function parts(day: string): [number, number, number] {
  const [y, m, d] = day.split('-').map(Number)
  return [y, m - 1, d]
}
/** The same day of the month `n` months earlier, clamped to that month's length. */
function monthsBefore(day: string, n: number): string {
  const [y, m, d] = parts(day)
  const last = new Date(Date.UTC(y, m - n + 1, 0)).getUTCDate()
  return ymd(y, m - n, Math.min(d, last))
}

/**
 * One end of a range as a day, as the server resolves it (query/relative_dates.h), for the
 * picker's display; the query itself carries the expression. null for a form it does not know.
 */
export function resolveEnd(expr: string, end: 'from' | 'to', today = todayInProject()): string | null {
  if (DAY.test(expr)) return expr
  const [y, m, d] = parts(today)
  const wd = (new Date(Date.UTC(y, m, d)).getUTCDay() + 6) % 7 // Monday 0
  const q0 = m - (m % 3)
  let mm: RegExpExecArray | null
  if (expr === 'today') return today
  if (expr === 'yesterday') return addDays(today, -1)
  if ((mm = /^-(\d+)([dwmy])$/.exec(expr))) {
    const n = Number(mm[1])
    if (mm[2] === 'd') return addDays(today, -n)
    if (mm[2] === 'w') return addDays(today, -7 * n)
    return monthsBefore(today, mm[2] === 'm' ? n : 12 * n)
  }
  if ((mm = /^last_(\d+)_days$/.exec(expr))) return end === 'from' ? addDays(today, 1 - Number(mm[1])) : today
  const range: Record<string, [string, string]> = {
    this_week: [addDays(today, -wd), today],
    this_month: [ymd(y, m, 1), today],
    this_quarter: [ymd(y, q0, 1), today],
    this_year: [ymd(y, 0, 1), today],
    last_week: [addDays(today, -wd - 7), addDays(today, -wd - 1)],
    last_month: [ymd(y, m - 1, 1), ymd(y, m, 0)],
    last_quarter: [ymd(y, q0 - 3, 1), ymd(y, q0, 0)],
    last_year: [ymd(y - 1, 0, 1), ymd(y - 1, 11, 31)],
  }
  const r = range[expr]
  return r ? (end === 'from' ? r[0] : r[1]) : null
}

/** The named range a range is, 'custom' for two fixed days, 'other' for another relative form. */
export function presetOf(r: DateRange): string {
  if (r.from === r.to && (PRESETS as readonly string[]).includes(r.from)) return r.from
  if (DAY.test(r.from) && DAY.test(r.to)) return 'custom'
  return 'other'
}

export function eventOptions(): string[] {
  return ['$any', ...session.eventNames.filter((e) => e !== '$any')]
}

/** The server's refusal as one line, naming its field. */
export function errorText(e: unknown): string {
  return e instanceof ApiError && e.field ? `${e.field}: ${e.message}` : (e as Error).message
}

/** A table as CSV (RFC 4180 quoting, a BOM for Excel, cells that start a formula defused). */
export function downloadCsv(name: string, header: string[], rows: (string | number | null)[][]) {
  const cell = (v: string | number | null) => {
    let s = v === null || v === undefined ? '' : String(v)
    if (/^[=+\-@]/.test(s) && typeof v === 'string') s = "'" + s
    return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s
  }
  const text = '\ufeff' + [header, ...rows].map((r) => r.map(cell).join(',')).join('\r\n') + '\r\n'
  saveBlob(name, new Blob([text], { type: 'text/csv;charset=utf-8' }))
}

export function saveBlob(name: string, blob: Blob) {
  const url = URL.createObjectURL(blob)
  const a = document.createElement('a')
  a.href = url
  a.download = name
  document.body.appendChild(a)
  a.click()
  a.remove()
  setTimeout(() => URL.revokeObjectURL(url), 1000)
}

/** Seconds as the shortest readable duration (s, min, h, d). */
export function fmtSeconds(s: number | null | undefined): string {
  if (s === null || s === undefined) return '–'
  if (s < 120) return `${fmtNumber(s, 0)} s`
  if (s < 7200) return `${fmtNumber(s / 60, 1)} min`
  if (s < 172800) return `${fmtNumber(s / 3600, 1)} h`
  return `${fmtNumber(s / 86400, 1)} d`
}

/** What the pickers offer, loaded once by the Insights page: property names and cohorts. */
export const pickers = reactive({ properties: [] as string[], cohorts: [] as { id: number; name: string }[] })

/** One row of a filter list as edited: a property (or `cohort:ID`), an operator, a value. */
export interface FilterRow {
  property: string
  op: string
  value: string
}
export const FILTER_OPS = ['eq', 'neq', 'contains', 'not_contains', 'gt', 'gte', 'lt', 'lte', 'is_set', 'is_not_set'] as const
const NUMERIC_OPS = ['gt', 'gte', 'lt', 'lte']

/** The rows as the server's filters (docs/queries.md, "Filters"); incomplete rows are left out. */
export function toFilters(rows: FilterRow[]): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = []
  for (const r of rows) {
    if (!r.property) continue
    const cohort = /^cohort:(\d+)$/.exec(r.property)
    if (cohort) {
      out.push(r.op === 'not_in' ? { cohort: Number(cohort[1]), op: 'not_in' } : { cohort: Number(cohort[1]) })
    } else if (r.op === 'is_set' || r.op === 'is_not_set') {
      out.push({ property: r.property, op: r.op })
    } else {
      const n = Number(r.value)
      const value = NUMERIC_OPS.includes(r.op) && r.value.trim() !== '' && Number.isFinite(n) ? n : r.value
      out.push({ property: r.property, op: r.op, value })
    }
  }
  return out
}

/** A saved query's filters as rows (the forms this page writes; others kept as text). */
export function fromFilters(filters: unknown): FilterRow[] {
  if (!Array.isArray(filters)) return []
  return filters.map((f: Record<string, unknown>) =>
    typeof f.cohort === 'number'
      ? { property: `cohort:${f.cohort}`, op: f.op === 'not_in' ? 'not_in' : 'in', value: '' }
      : { property: String(f.property ?? ''), op: String(f.op ?? 'eq'), value: f.value === undefined ? '' : Array.isArray(f.value) ? f.value.join(',') : String(f.value) },
  )
}
