// The cohort definition grammar of docs/people.md ("Definitions") as the builder edits it,
// and the calls the segment pages share.
import { post } from '../../api/client'

export const RFM_SEGMENTS = ['champions', 'potential', 'at_risk_loyal', 'cant_lose', 'loyal', 'promising', 'need_attention', 'hibernating'] as const
export const LIFECYCLE_STAGES = ['new', 'active', 'silent', 'churned'] as const
export const TIERS: Record<string, string[]> = {
  value: ['high', 'medium', 'potential'],
  activity: ['core', 'ordinary', 'silent'],
  need: ['loyal', 'impulse', 'demand'],
  social: ['spreader', 'sharer', 'onlooker'],
}
export const CONDITION_TYPES = ['performed', 'not_performed', 'first_performed', 'sequence', 'property', 'cohort', 'rfm_segment', 'lifecycle', 'tier', 'tag'] as const
export type ConditionType = (typeof CONDITION_TYPES)[number]
export const FILTER_OPS = ['eq', 'neq', 'in', 'not_in', 'gt', 'gte', 'lt', 'lte', 'contains', 'not_contains', 'is_set', 'is_not_set'] as const

export interface UiFilter {
  property: string
  op: string
  value: string
}
export interface UiCondition {
  kind: 'condition'
  key: number
  type: ConditionType
  event: string
  filters: UiFilter[]
  countOp: 'gte' | 'lte' | 'eq'
  count: number
  range: 'all' | 'last' | 'between'
  lastDays: number
  from: string
  to: string
  steps: string[]
  windowHours: number
  property: string
  op: string
  value: string
  cohort: number | null
  negate: boolean
  segment: string
  stage: string
  dimension: string
  level: string
  tag: string
  tagValues: string
}
export interface UiGroup {
  kind: 'group'
  key: number
  op: 'and' | 'or'
  items: (UiGroup | UiCondition)[]
}
export type Json = Record<string, unknown>

let nextKey = 1
export function newCondition(type: ConditionType = 'performed'): UiCondition {
  return {
    kind: 'condition', key: nextKey++, type, event: '', filters: [], countOp: 'gte', count: 1, range: 'last', lastDays: 30, from: '', to: '',
    steps: ['', ''], windowHours: 24 * 14, property: '', op: 'eq', value: '', cohort: null, negate: false,
    segment: 'champions', stage: 'active', dimension: 'value', level: 'high', tag: '', tagValues: '',
  }
}
export function newGroup(op: 'and' | 'or' = 'and', items: (UiGroup | UiCondition)[] = []): UiGroup {
  return { kind: 'group', key: nextKey++, op, items }
}

const list = (s: string) => s.split(/[,，\n]/).map((x) => x.trim()).filter(Boolean)
function filterValue(op: string, v: string): unknown {
  if (op === 'is_set' || op === 'is_not_set') return undefined
  if (op === 'in' || op === 'not_in') return list(v)
  if (['gt', 'gte', 'lt', 'lte'].includes(op)) return v.trim() === '' ? v : Number(v)
  return v
}
function filterJson(f: UiFilter): Json {
  const o: Json = { property: f.property, op: f.op }
  const v = filterValue(f.op, f.value)
  if (v !== undefined) o.value = v
  return o
}
function rangeJson(c: UiCondition, o: Json) {
  if (c.range === 'last') o.last_days = c.lastDays
  else if (c.range === 'between') {
    if (c.from) o.date_from = c.from
    if (c.to) o.date_to = c.to
  }
}

/** The API's JSON for a condition or a group (docs/people.md "Definitions"). */
export function toDefinition(n: UiGroup | UiCondition): Json {
  if (n.kind === 'group') return { op: n.op, conditions: n.items.map(toDefinition) }
  const c = n
  const o: Json = { type: c.type }
  switch (c.type) {
    case 'performed':
      o.event = c.event
      if (c.filters.length) o.filters = c.filters.map(filterJson)
      o.count = { op: c.countOp, value: c.count }
      rangeJson(c, o)
      break
    case 'not_performed':
    case 'first_performed':
      o.event = c.event
      if (c.filters.length) o.filters = c.filters.map(filterJson)
      rangeJson(c, o)
      break
    case 'sequence':
      o.steps = c.steps.map((e) => ({ event: e }))
      o.window_seconds = Math.round(c.windowHours * 3600)
      rangeJson(c, o)
      break
    case 'property': {
      o.property = c.property
      o.op = c.op
      const v = filterValue(c.op, c.value)
      if (v !== undefined) o.value = v
      break
    }
    case 'cohort':
      o.id = c.cohort
      if (c.negate) o.negate = true
      break
    case 'rfm_segment':
      o.segment = c.segment
      break
    case 'lifecycle':
      o.stage = c.stage
      break
    case 'tier':
      o.dimension = c.dimension
      o.level = c.level
      break
    case 'tag': {
      o.tag = c.tag
      const vs = list(c.tagValues)
      if (vs.length) o.values = vs
      break
    }
  }
  return o
}

const str = (v: unknown, d = '') => (typeof v === 'string' ? v : typeof v === 'number' ? String(v) : d)
/** The builder's model of a definition (the rule a distribution's bar opens, a cohort copied). */
export function fromDefinition(j: Json): UiGroup | UiCondition {
  if (Array.isArray(j.conditions)) return newGroup(j.op === 'or' ? 'or' : 'and', (j.conditions as Json[]).map(fromDefinition))
  const type = (CONDITION_TYPES as readonly string[]).includes(str(j.type)) ? (j.type as ConditionType) : 'performed'
  const c = newCondition(type)
  c.event = str(j.event)
  if (Array.isArray(j.filters))
    c.filters = (j.filters as Json[]).map((f) => ({ property: str(f.property), op: str(f.op, 'eq'), value: Array.isArray(f.value) ? f.value.join(', ') : str(f.value) }))
  const count = j.count as Json | undefined
  if (count) {
    c.countOp = (['gte', 'lte', 'eq'].includes(str(count.op)) ? count.op : 'gte') as UiCondition['countOp']
    c.count = Number(count.value ?? 1)
  }
  if (typeof j.last_days === 'number') {
    c.range = 'last'
    c.lastDays = j.last_days
  } else if (j.date_from || j.date_to) {
    c.range = 'between'
    c.from = str(j.date_from)
    c.to = str(j.date_to)
  } else c.range = 'all'
  if (Array.isArray(j.steps)) c.steps = (j.steps as Json[]).map((s) => str(s.event))
  if (typeof j.window_seconds === 'number') c.windowHours = j.window_seconds / 3600
  c.property = str(j.property)
  if (type === 'property') {
    c.op = str(j.op, 'eq')
    c.value = Array.isArray(j.value) ? j.value.join(', ') : str(j.value)
  }
  if (typeof j.id === 'number') c.cohort = j.id
  c.negate = j.negate === true
  if (j.segment) c.segment = str(j.segment)
  if (j.stage) c.stage = str(j.stage)
  if (j.dimension) c.dimension = str(j.dimension)
  if (j.level) c.level = str(j.level)
  c.tag = str(j.tag)
  c.tagValues = Array.isArray(j.values) ? j.values.join(', ') : str(j.value)
  return c
}

export interface Cohort {
  id: number
  name: string
  description: string
  kind: 'static' | 'behavioral'
  definition: Json | null
  tag: boolean
  size: number | null
  as_of: string
  error?: string
  created_by: string
  updated_at: string
}

/** Sizes of definitions evaluated now without saving (POST /api/v1/cohorts/preview, one request). */
export async function previewSizes(definitions: Json[], signal?: AbortSignal): Promise<number[]> {
  const r = await post<{ sizes: number[] }>('/api/v1/cohorts/preview', { definitions }, { signal })
  return r.sizes
}
/** One condition as a whole definition. */
export const single = (condition: Json): Json => ({ op: 'and', conditions: [condition] })
