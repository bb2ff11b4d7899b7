/** In a stored-program body: blocks closed by `END [IF|LOOP|…]`, opened by these words where a statement starts. */
const BLOCK_STATEMENTS = new Set(['if', 'loop', 'while', 'repeat', 'case'])
/** Tokens after which a statement of a stored-program body starts (`FOR EACH ROW IF …`, `THEN …`, `label: LOOP`). */
const STATEMENT_START = new Set([';', ':', 'begin', 'then', 'else', 'do', 'row', 'loop', 'repeat'])
/** A statement with a body of its own statements (`BEGIN … END`), whose `;` do not end it. */
const STORED_PROGRAM =
  /^create\s+(?:or\s+replace\s+)?(?:definer\s*=\s*\S+\s+)?(?:aggregate\s+)?(?:trigger|procedure|function|event)\b/i

/** Leading white space and comments (`-- `, `#`, slash-star) of a statement. */
const LEADING_NOISE = /^(?:\s+|--(?:[ \t][^\n]*)?(?:\n|$)|#[^\n]*(?:\n|$)|\/\*(?!!)[\s\S]*?\*\/)*/

/**
 * Splits a `.sql` migration into its statements, at top-level `;` (not inside quotes, back
 * ticks or comments, nor inside the `BEGIN … END` body of a trigger, procedure, function or
 * event). Each statement comes without its leading comments and trailing `;`; empty ones
 * are dropped. Used where a migration runs one statement at a time (MariaDB, whose DDL
 * commits as it runs, so a resumed migration must know which statements are done).
 *
 * @example
 * splitSqlScript("CREATE TABLE a (x INT); -- note\nCREATE INDEX i ON a (x);")
 * // ['CREATE TABLE a (x INT)', 'CREATE INDEX i ON a (x)']
 */
export function splitSqlScript(script: string): string[] {
  const statements: string[] = []
  let start = 0
  let depth = 0
  let program: boolean | undefined
  let lastWord = ''
  const push = (end: number) => {
    const text = script.slice(start, end).replace(LEADING_NOISE, '').trim()
    if (text) statements.push(text)
    start = end + 1
    depth = 0
    program = undefined
    lastWord = ''
  }
  for (let i = 0; i < script.length;) {
    const c = script[i]!
    const next = script[i + 1]
    if (c === "'" || c === '"' || c === '`') {
      // Quotes end at an unescaped, undoubled quote; back ticks have no backslash escapes.
      let j = i + 1
      for (; j < script.length; j++) {
        if (script[j] === '\\' && c !== '`') j++
        else if (script[j] === c) {
          if (script[j + 1] === c) j++
          else break
        }
      }
      i = j + 1
    } else if ((c === '-' && next === '-' && /[\s]/.test(script[i + 2] ?? '\n')) || c === '#') {
      const end = script.indexOf('\n', i)
      i = end === -1 ? script.length : end + 1
    } else if (c === '/' && next === '*') {
      const end = script.indexOf('*/', i + 2)
      i = end === -1 ? script.length : end + 2
    } else if (/[A-Za-z_]/.test(c)) {
      let j = i + 1
      while (j < script.length && /[A-Za-z0-9_$]/.test(script[j]!)) j++
      const word = script.slice(i, j).toLowerCase()
      program ??= STORED_PROGRAM.test(script.slice(start).replace(LEADING_NOISE, ''))
      if (program) {
        if (word === 'end') depth--
        // BEGIN always opens a block, CASE too (an expression's CASE also ends with END);
        // IF, LOOP, WHILE, REPEAT only as a statement (not IF() or IF NOT EXISTS); after END they close.
        else if (
          lastWord !== 'end' &&
          (word === 'begin' || word === 'case' || (BLOCK_STATEMENTS.has(word) && STATEMENT_START.has(lastWord)))
        )
          depth++
      }
      lastWord = word
      i = j
    } else if (c === ';') {
      if (depth <= 0) push(i)
      else lastWord = ';'
      i++
    } else {
      if (!/\s/.test(c)) lastWord = c
      i++
    }
  }
  push(script.length)
  return statements
}

/** Whether a statement only reads (safe to run again as it is when a migration resumes). */
export function isReadStatement(text: string): boolean {
  return /^(select|show|describe|desc|explain|with)\b/i.test(text.replace(LEADING_NOISE, ''))
}

/** Whether a statement changes the schema (on MariaDB: commits on its own as it runs). */
export function isSchemaStatement(text: string): boolean {
  return /^(create|alter|drop|rename|truncate)\b/i.test(text.replace(LEADING_NOISE, ''))
}
