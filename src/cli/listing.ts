import type { Output } from '../output/output.js'
import type { Listing } from '../util/listing.js'
import { tableLines, type ListingForm } from './render.js'

/** How one listing reads (SPEC §11): its JSON key, what its rows are, and its human form. */
export interface ListingView<T> {
  /** The array's key in the JSON document: `tenants`. */
  key: string
  /** What the rows are, plural, for the line that says how many more there are (default: `key`). */
  what?: string
  /** The page for humans. */
  form: ListingForm<T>
  /** What humans read when nothing matches. */
  empty: string
}

/** `100000` as `100,000`. Not toLocaleString: loading ICU's number formats costs 20 ms a process. */
const count = (n: number) => String(n).replace(/\B(?=(\d{3})+$)/g, ',')

/** Rows a long page is laid out in at once (a terminal's page of 100 is one chunk). */
const CHUNK = 1000

/**
 * The page as humans read it, in chunks of text made as the rows are read, so that a page of
 * 100,000 is never held at once: entries as they come; a table `CHUNK` rows at a time, its
 * columns as wide as the rows so far need (one chunk for a terminal's page; in a longer one a
 * column widens where a later row needs it). `counted` learns how many rows there were.
 */
async function* pageText<T>(rows: AsyncIterable<T>, form: ListingForm<T>, counted: { shown: number }) {
  if ('entry' in form) {
    let entries: string[] = []
    for await (const row of rows) {
      counted.shown++
      entries.push(form.entry(row))
      if (entries.length < CHUNK) continue
      yield entries.join('\n')
      entries = []
    }
    if (entries.length > 0) yield entries.join('\n')
    return
  }
  const widths: number[] = []
  let cells: string[][] = [form.header]
  let below: string[][] = [[]]
  const laidOut = () => tableLines(cells, widths, (i) => below[i]!).join('\n')
  for await (const row of rows) {
    counted.shown++
    cells.push(form.cells(row))
    below.push(form.below?.(row) ?? [])
    if (cells.length < CHUNK) continue
    yield laidOut()
    cells = []
    below = []
  }
  if (counted.shown > 0 && cells.length > 0) yield laidOut()
}

/**
 * Prints a listing's page: with --json one document, `{"<key>": [...], "total": N}`,
 * written as the rows are read; for humans the page on stdout and, when rows were left out,
 * one line on stderr naming the flag that shows the next ones
 * (`showing 101–200 of 100,000 tenants; --offset 200 for more`).
 */
export async function printListing<T>(out: Output, listing: Listing<T>, view: ListingView<T>): Promise<void> {
  const { total, offset } = listing
  const what = view.what ?? view.key
  if (out.json) return out.resultStream(view.key, listing.rows, { total })
  const counted = { shown: 0 }
  await out.textStream(pageText(listing.rows, view.form, counted))
  const { shown } = counted
  if (shown === 0)
    out.result(undefined, () =>
      total === 0 ? view.empty : `No ${what} at --offset ${offset}: there are ${count(total)}; give a smaller --offset`,
    )
  if (shown === 0 || shown === total) return
  const last = offset + shown
  // One row is `row 2 of 2`: a bare "showing 2 of 2" reads as a count.
  const range = shown === 1 ? `row ${count(last)}` : `${count(offset + 1)}–${count(last)}`
  const more = last < total ? `; --offset ${last} for more` : ''
  out.info(`showing ${range} of ${count(total)} ${what}${more}`)
}
