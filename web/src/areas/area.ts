// What an area of the console declares. An area is one folder web/src/areas/<name>/ with
//   index.ts  — `export default defineArea({...})`: its routes (children of the layout, pages
//               loaded lazily) and, optionally, its menu item;
//   i18n.ts   — `export default defineMessages({...en}, {...zh-CN})`: its strings, merged into
//               the console's messages (put them under a key named after the area, and the menu
//               label under nav.<name>);
//   its pages and components.
// router.ts, the menu (components/AppLayout.vue) and i18n/index.ts find every area by
// import.meta.glob, so adding an area edits no shared file (docs/console.md, "Adding an area").
import type { RouteRecordRaw } from 'vue-router'

export interface AreaNavItem {
  name: string // the menu label is t(`nav.${name}`); the link's data-test is nav-<name>
  path: string
  icon: string // one character
  order: number // position in the menu: the built-in items are 10, 20, … 70 (settings 90)
}

export interface Area {
  routes: RouteRecordRaw[]
  nav?: AreaNavItem[]
}

export function defineArea(a: Area): Area {
  return a
}

// Widens literal string types so the Chinese messages are checked against the English keys.
type Shape<T> = { [K in keyof T]: T[K] extends string ? string : Shape<T[K]> }

/** An area's strings: the Chinese must have exactly the English keys (the build fails otherwise). */
export function defineMessages<T extends object>(en: T, zhCN: Shape<T>): { en: T; 'zh-CN': Shape<T> } {
  return { en, 'zh-CN': zhCN }
}

type Messages = Record<string, unknown>
function isObject(v: unknown): v is Messages {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}
/** Deep-merges `extra` into `base` (areas add keys, e.g. nav.<name>; a clash keeps the later). */
export function mergeMessages(base: Messages, extra: Messages): Messages {
  const out: Messages = { ...base }
  for (const [k, v] of Object.entries(extra)) out[k] = isObject(v) && isObject(out[k]) ? mergeMessages(out[k] as Messages, v) : v
  return out
}

const areaModules = import.meta.glob<{ default: Area }>('./*/index.ts', { eager: true })
/** Every area, in the folders' alphabetical order. */
export const areas: Area[] = Object.keys(areaModules)
  .sort()
  .map((k) => areaModules[k].default)

const messageModules = import.meta.glob<{ default: { en: Messages; 'zh-CN': Messages } }>('./*/i18n.ts', { eager: true })
/** Every area's strings per language. */
export const areaMessages: { en: Messages; 'zh-CN': Messages }[] = Object.keys(messageModules)
  .sort()
  .map((k) => messageModules[k].default)
