import { createI18n } from 'vue-i18n'
import en from './en'
import zhCN from './zh-CN'
import { areaMessages, mergeMessages } from '../areas/area'

export type Lang = 'zh-CN' | 'en'
const STORAGE_KEY = 'ns.lang'

/** The remembered choice, else the browser's language (any zh-* is Chinese), else English. */
export function initialLang(): Lang {
  const saved = localStorage.getItem(STORAGE_KEY)
  if (saved === 'zh-CN' || saved === 'en') return saved
  const langs = navigator.languages?.length ? navigator.languages : [navigator.language]
  for (const l of langs) {
    if (l.toLowerCase().startsWith('zh')) return 'zh-CN'
    if (l.toLowerCase().startsWith('en')) return 'en'
  }
  return 'en'
}

/** The built-in strings plus every area's (web/src/areas/<name>/i18n.ts). */
function withAreas(base: typeof en, lang: Lang): typeof en {
  return areaMessages.reduce((m, a) => mergeMessages(m, a[lang]), base as Record<string, unknown>) as unknown as typeof en
}

export const i18n = createI18n({
  legacy: false,
  locale: initialLang(),
  fallbackLocale: 'en',
  messages: { en: withAreas(en, 'en'), 'zh-CN': withAreas(zhCN, 'zh-CN') },
  // Messages never hold HTML; values are escaped by Vue's text interpolation anyway.
  escapeParameter: true,
  missingWarn: false,
  fallbackWarn: false,
})

export function setLang(l: Lang) {
  i18n.global.locale.value = l
  localStorage.setItem(STORAGE_KEY, l)
  document.documentElement.lang = l
}
document.documentElement.lang = i18n.global.locale.value
