// The form's model of a metric (every type's fields at once, so switching type keeps what was
// typed) and its conversion to and from the API's metric (docs/experiments.md, "Metrics").
import type { Metric, MetricType, ValueSpec } from './types'

export interface EditMetric {
  name: string
  type: MetricType
  steps: string[]
  value: ValueSpec
  numerator: ValueSpec
  denominator: ValueSpec
  event: string
  day: number
  window_hours: number
}

export function newMetric(type: MetricType = 'funnel'): EditMetric {
  return {
    name: '',
    type,
    steps: [],
    value: { event: '', math: 'count', property: '' },
    numerator: { event: '', math: 'sum', property: 'amount' },
    denominator: { event: '', math: 'count', property: '' },
    event: '',
    day: 1,
    window_hours: 0,
  }
}

function value(v: ValueSpec): ValueSpec {
  return v.math === 'sum' ? { event: v.event, math: 'sum', property: v.property ?? '' } : { event: v.event, math: 'count' }
}

export function toApi(m: EditMetric): Metric {
  const base = { name: m.name.trim(), type: m.type } as Metric
  switch (m.type) {
    case 'funnel':
      return { ...base, steps: m.steps, window_hours: m.window_hours }
    case 'mean':
      return { ...base, ...value(m.value), window_hours: m.window_hours }
    case 'ratio':
      return { ...base, numerator: value(m.numerator), denominator: value(m.denominator), window_hours: m.window_hours }
    default:
      return { ...base, event: m.event, day: m.day }
  }
}

export function fromApi(a: Metric): EditMetric {
  const m = newMetric(a.type)
  m.name = a.name
  m.window_hours = a.window_hours ?? 0
  if (a.type === 'funnel') m.steps = [...(a.steps ?? [])]
  if (a.type === 'mean') m.value = { event: a.event ?? '', math: a.math ?? 'count', property: a.property ?? '' }
  if (a.type === 'ratio') {
    m.numerator = { property: '', ...a.numerator! }
    m.denominator = { property: '', ...a.denominator! }
  }
  if (a.type === 'retention') {
    m.event = a.event ?? ''
    m.day = a.day ?? 1
  }
  return m
}
