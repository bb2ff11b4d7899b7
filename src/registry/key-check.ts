import { EXIT_USAGE, TenancyError } from '../errors.js'
import type { Registry } from './registry.js'
import { WrongKeyError, createSecretBox, keySource, readSecretBox, type SecretBox } from '../secrets/secret-box.js'

/** The `meta` row holding a value sealed with the bench's key on its first use. */
const KEY_CHECK = 'key_check'

/**
 * The bench's key is refused: not the one the registry's secrets were written with, or its
 * file is gone while secrets remain (exit 2). Nothing may change under it; a worker that meets
 * it puts the job back as it was instead of counting an attempt.
 */
export class KeyRefusedError extends TenancyError {
  constructor(message: string, cause?: unknown) {
    super(message, { exitCode: EXIT_USAGE, cause })
    this.name = 'KeyRefusedError'
  }
}

async function checkValue(registry: Registry): Promise<string | undefined> {
  return (await registry.db.selectFrom('meta').select('value').where('key', '=', KEY_CHECK).executeTakeFirst())?.value
}

/** A stored secret, for registries whose secrets predate the check value (or lost it). */
async function storedSecret(registry: Registry): Promise<string | undefined> {
  const row = await registry.db
    .selectFrom('tenants')
    .select(['api_secret_enc', 'admin_password_enc'])
    .where((eb) => eb.or([eb('api_secret_enc', 'is not', null), eb('admin_password_enc', 'is not', null)]))
    .limit(1)
    .executeTakeFirst()
  return row?.api_secret_enc ?? row?.admin_password_enc ?? undefined
}

function assertOpens(box: SecretBox, sealed: string, source: string): void {
  try {
    box.decrypt(sealed)
  } catch (error) {
    if (!(error instanceof WrongKeyError)) throw error
    throw new KeyRefusedError(
      `wrong encryption key: ${source} is not the key this registry's secrets were encrypted with; ` +
        `nothing was changed. Use the bench's original .tenancy/secret.key` +
        `${
          source === 'TENANCY_ENCRYPTION_KEY'
            ? ', or unset TENANCY_ENCRYPTION_KEY'
            : ' (or set TENANCY_ENCRYPTION_KEY to that key)'
        }`,
      error,
    )
  }
}

/**
 * The bench's secret box, checked against the registry before anyone may use it: a wrong
 * `TENANCY_ENCRYPTION_KEY` or key file is exit 2, and a missing key file next to a registry
 * that holds secrets is exit 2 instead of a new key. On first use the registry records a
 * check value sealed with the key, so every later key is held to it.
 */
export async function verifiedSecretBox(
  registry: Registry,
  keyFile: string,
  env: NodeJS.ProcessEnv,
): Promise<SecretBox> {
  const source = keySource(keyFile, env)
  const check = await checkValue(registry)
  // A sealed value the key must open: the check value, else any secret already stored.
  const sealed = check ?? (await storedSecret(registry))
  let box = readSecretBox(keyFile, env)
  if (!box) {
    if (sealed !== undefined) {
      throw new KeyRefusedError(
        `${keyFile} is missing, and the registry holds secrets encrypted with it; ` +
          `restore the file from a backup, or copy it from a machine that shares this registry ` +
          `(or set TENANCY_ENCRYPTION_KEY to that key): a new key could not read them`,
      )
    }
    box = createSecretBox(keyFile)
  }
  if (sealed !== undefined) assertOpens(box, sealed, source)
  if (check !== undefined) return box
  await registry.db
    .insertInto('meta')
    .values({ key: KEY_CHECK, value: box.encrypt('tenancy') })
    .onConflict((oc) => oc.column('key').doNothing())
    .execute()
  // Two first uses with different keys: the check value that won decides.
  assertOpens(box, (await checkValue(registry))!, source)
  return box
}
