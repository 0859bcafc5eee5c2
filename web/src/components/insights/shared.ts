// What the insight builders share: the date range, event names, CSV export of a table.
import { ref } from 'vue'
import { addDays, todayInProject } from '../../format'
import { session } from '../../session'

export function useRange(days = 14) {
  const today = todayInProject()
  return ref<[string, string]>([addDays(today, -(days - 1)), today])
}

export function eventOptions(): string[] {
  return ['$any', ...session.eventNames.filter((e) => e !== '$any')]
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
