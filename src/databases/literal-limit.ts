import {
  ValueNode,
  type KyselyPlugin,
  type PluginTransformQueryArgs,
  type PluginTransformResultArgs,
  type QueryResult,
  type RootOperationNode,
  type UnknownRow,
} from 'kysely'

/**
 * Writes a select's `LIMIT n` into the SQL instead of binding it (`LIMIT ?`), on SQLite: with a
 * bound limit SQLite plans the query without knowing it, and a pull's "oldest ready pending
 * tenant, LIMIT 1" took 50–90 µs where the literal takes 13 (measured on better-sqlite3 12,
 * SQLite 3.53, the same plan). Only the outermost select's limit, and only a safe integer (so
 * nothing but an integer's digits reaches the SQL); it looks at one node, so a query costs nothing more.
 */
export class LiteralLimitPlugin implements KyselyPlugin {
  transformQuery({ node }: PluginTransformQueryArgs): RootOperationNode {
    if (node.kind !== 'SelectQueryNode' || node.limit?.limit.kind !== 'ValueNode') return node
    const limit = node.limit.limit as ValueNode
    if (limit.immediate || !Number.isSafeInteger(limit.value)) return node
    return { ...node, limit: { kind: 'LimitNode', limit: ValueNode.createImmediate(limit.value) } }
  }

  async transformResult(args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
    return args.result
  }
}
