import type { DbType } from '../config/config.js'

/** Where new server databases go, and who creates them. Never written to a site's config. */
export interface ServerAdmin {
  host: string
  port: number
  socket?: string
  /** MariaDB: the host part of new site users (`db.user_host`, default `%`). */
  userHost?: string
  user: string
  password: string
}

/** Default port and admin user of each server kind. */
export const SERVER_DEFAULTS: Record<Exclude<DbType, 'sqlite'>, { port: number; user: string }> = {
  postgres: { port: 5432, user: 'postgres' },
  mariadb: { port: 3306, user: 'root' },
}
