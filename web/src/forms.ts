// Form errors from the server: a 400 names the field at fault (`period.to`, `success_criteria`,
// `depends_on`), so the message goes under that field; anything else goes at the form's foot.
import { reactive } from 'vue'
import { ApiError } from './api/client'

export function useFormErrors() {
  const errors = reactive<Record<string, string>>({})
  function clear() {
    for (const k of Object.keys(errors)) delete errors[k]
  }
  function set(e: unknown, known: string[]) {
    clear()
    if (e instanceof ApiError && e.field) {
      const top = known.find((k) => e.field === k || e.field!.startsWith(k + '.') || e.field!.startsWith(k + '['))
      errors[top ?? '_form'] = e.message
    } else {
      errors._form = (e as Error).message
    }
  }
  return { errors, clear, set }
}

export const lines = (s: string) => s.split('\n').map((x) => x.trim()).filter(Boolean)
