// Prints the console's initial JavaScript (what index.html loads before any page chunk),
// gzipped at level 9 as `northstar serve` sends it, and fails above the budget of issue 12
// (400 KB). Usage: node scripts/size.mjs [dist]   (npm run size)
import { readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'

const dist = process.argv[2] ?? new URL('../dist', import.meta.url).pathname
const BUDGET = 400 * 1024
const html = readFileSync(join(dist, 'index.html'), 'utf8')
const initial = [...html.matchAll(/<(?:script[^>]*\ssrc|link[^>]*rel="modulepreload"[^>]*\shref)="([^"]+\.js)"/g)].map((m) => m[1])
if (/<script(?![^>]*\ssrc=)[^>]*>/.test(html)) {
  console.error('index.html has an inline script: the Content-Security-Policy forbids it')
  process.exit(1)
}
const gz = (f) => gzipSync(readFileSync(join(dist, f)), { level: 9 }).length
// A static import of the entry is loaded at once too, preloaded or not.
const seen = new Set()
const queue = initial.map((p) => p.replace(/^\//, ''))
while (queue.length) {
  const f = queue.shift()
  if (seen.has(f)) continue
  seen.add(f)
  const src = readFileSync(join(dist, f), 'utf8')
  for (const m of src.matchAll(/(?:^|[;\n}])\s*import\s*(?:[\w${},\s*]+from\s*)?["']\.\/([^"']+\.js)["']/g)) queue.push('assets/' + m[1])
}
let initialGz = 0
for (const f of seen) initialGz += gz(f)
let allGz = 0
let css = 0
for (const f of readdirSync(join(dist, 'assets'))) {
  if (f.endsWith('.js')) allGz += gz(join('assets', f))
  if (f.endsWith('.css')) css += gz(join('assets', f))
}
const kb = (n) => (n / 1024).toFixed(1) + ' KB'
console.log(`initial JS (gzip -9): ${kb(initialGz)} in ${seen.size} file(s): ${[...seen].join(', ')}`)
console.log(`all JS (gzip -9): ${kb(allGz)}; all CSS (gzip -9): ${kb(css)}; budget for initial JS: ${kb(BUDGET)}`)
if (initialGz > BUDGET) {
  console.error(`initial JS ${kb(initialGz)} is over the budget of ${kb(BUDGET)}`)
  process.exit(1)
}
