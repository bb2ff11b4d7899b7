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
