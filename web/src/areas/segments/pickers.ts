// What the builder's pickers offer, given once by the builder page to every nested editor.
import type { InjectionKey } from 'vue'
import type { Cohort } from './model'

export interface TagOption {
  key: string
  label: string
  base: boolean
}
export interface Pickers {
  events: { readonly value: string[] }
  properties: { readonly value: string[] }
  cohorts: { readonly value: Cohort[] }
  tags: { readonly value: TagOption[] }
}
export const PICKERS: InjectionKey<Pickers> = Symbol('segment-pickers')
