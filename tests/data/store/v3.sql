-- A kvmdesk database as schema version 3 wrote it (its schema is the one
-- kd_store_open() of schema 3 created): groups, pools, entitlements and
-- desktop sessions, but no image versions or edit sessions yet; image
-- volumes are unique per (image, host).
-- tests/unit/test-migrations.c loads this and opens it with kd_store_open()
-- to prove the upgrade to the latest version keeps every row, records
-- version 1 of every image, and puts volumes and desktops on version 1.
-- Never edit this to follow a newer schema: it is what old files look like.
PRAGMA foreign_keys = ON;
BEGIN;
CREATE TABLE meta (
  key   TEXT PRIMARY KEY NOT NULL,
  value TEXT NOT NULL);
CREATE TABLE users (
  id            INTEGER PRIMARY KEY,
  name          TEXT NOT NULL UNIQUE,
  password_hash TEXT NOT NULL,
  role          TEXT NOT NULL,
  created_at    INTEGER NOT NULL);
CREATE TABLE tokens (
  id         INTEGER PRIMARY KEY,
  token_hash TEXT NOT NULL UNIQUE,
  user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL);
CREATE TABLE hosts (
  id         INTEGER PRIMARY KEY,
  name       TEXT NOT NULL UNIQUE,
  uri        TEXT NOT NULL,
  created_at INTEGER NOT NULL);
CREATE TABLE templates (
  id         INTEGER PRIMARY KEY,
  name       TEXT NOT NULL UNIQUE,
  vcpus      INTEGER NOT NULL,
  memory_mib INTEGER NOT NULL,
  disk_gib   INTEGER NOT NULL,
  display    TEXT NOT NULL,
  network    TEXT NOT NULL,
  firmware   TEXT NOT NULL,
  created_at INTEGER NOT NULL);
CREATE TABLE desktops (
  id             INTEGER PRIMARY KEY,
  name           TEXT NOT NULL UNIQUE,
  domain         TEXT NOT NULL UNIQUE,
  uuid           TEXT,
  host_id        INTEGER REFERENCES hosts(id),
  image_id       INTEGER NOT NULL REFERENCES images(id),
  template_id    INTEGER NOT NULL REFERENCES templates(id),
  overlay_volume TEXT NOT NULL,
  overlay_path   TEXT,
  state          TEXT NOT NULL,
  state_reason   TEXT,
  created_at     INTEGER NOT NULL,
  updated_at     INTEGER NOT NULL,
  pool_id INTEGER REFERENCES pools(id),
  user_id INTEGER REFERENCES users(id) ON DELETE SET NULL,
  assigned_at INTEGER NOT NULL DEFAULT 0,
  connected_since INTEGER NOT NULL DEFAULT 0,
  last_seen INTEGER NOT NULL DEFAULT 0,
  disconnected_at INTEGER NOT NULL DEFAULT 0,
  needs_reset INTEGER NOT NULL DEFAULT 0);
CREATE TABLE image_volumes (
  id         INTEGER PRIMARY KEY,
  image_id   INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
  host_id    INTEGER NOT NULL REFERENCES hosts(id),
  volume     TEXT NOT NULL,
  path       TEXT,
  state      TEXT NOT NULL DEFAULT 'ready',
  error      TEXT,
  simulated  INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL,
  UNIQUE (image_id, host_id),
  UNIQUE (host_id, volume));
CREATE TABLE images (
  id           INTEGER PRIMARY KEY,
  name         TEXT NOT NULL UNIQUE,
  format       TEXT NOT NULL,
  virtual_size INTEGER NOT NULL DEFAULT 0,
  file_size    INTEGER NOT NULL DEFAULT 0,
  created_at   INTEGER NOT NULL);
CREATE TABLE events (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  time        INTEGER NOT NULL,
  object_type TEXT NOT NULL,
  object_name TEXT,
  actor       TEXT NOT NULL,
  action      TEXT NOT NULL,
  from_state  TEXT,
  to_state    TEXT,
  message     TEXT,
  pool TEXT,
  user TEXT);
CREATE INDEX events_object ON events (object_type, object_name, id);
CREATE INDEX image_volumes_host ON image_volumes (host_id);
CREATE INDEX desktops_host ON desktops (host_id);
CREATE INDEX desktops_image ON desktops (image_id);
CREATE INDEX desktops_template ON desktops (template_id);
CREATE INDEX tokens_user ON tokens (user_id);
CREATE INDEX tokens_expires ON tokens (expires_at);
CREATE TABLE groups (
  id         INTEGER PRIMARY KEY,
  name       TEXT NOT NULL UNIQUE,
  created_at INTEGER NOT NULL);
CREATE TABLE user_groups (
  user_id  INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  group_id INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
  PRIMARY KEY (user_id, group_id));
CREATE INDEX user_groups_group ON user_groups (group_id);
CREATE TABLE pools (
  id                 INTEGER PRIMARY KEY,
  name               TEXT NOT NULL UNIQUE,
  image_id           INTEGER NOT NULL REFERENCES images(id),
  template_id        INTEGER NOT NULL REFERENCES templates(id),
  mode               TEXT NOT NULL,
  size               INTEGER NOT NULL DEFAULT 0,
  warm               INTEGER NOT NULL DEFAULT 0,
  idle_timeout       INTEGER NOT NULL DEFAULT 0,
  disconnect_timeout INTEGER NOT NULL DEFAULT 0,
  maintenance        INTEGER NOT NULL DEFAULT 0,
  created_at         INTEGER NOT NULL,
  updated_at         INTEGER NOT NULL);
CREATE INDEX pools_image ON pools (image_id);
CREATE INDEX pools_template ON pools (template_id);
CREATE TABLE pool_users (
  pool_id INTEGER NOT NULL REFERENCES pools(id) ON DELETE CASCADE,
  user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  PRIMARY KEY (pool_id, user_id));
CREATE INDEX pool_users_user ON pool_users (user_id);
CREATE TABLE pool_groups (
  pool_id  INTEGER NOT NULL REFERENCES pools(id) ON DELETE CASCADE,
  group_id INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
  PRIMARY KEY (pool_id, group_id));
CREATE INDEX pool_groups_group ON pool_groups (group_id);
CREATE TABLE pool_hosts (
  pool_id INTEGER NOT NULL REFERENCES pools(id) ON DELETE CASCADE,
  host_id INTEGER NOT NULL REFERENCES hosts(id),
  PRIMARY KEY (pool_id, host_id));
CREATE INDEX pool_hosts_host ON pool_hosts (host_id);
CREATE INDEX desktops_pool ON desktops (pool_id);
CREATE INDEX desktops_user ON desktops (user_id);
CREATE INDEX events_pool ON events (pool, id);
CREATE INDEX events_user ON events (user, id);
CREATE INDEX events_actor ON events (actor, id);

INSERT INTO meta VALUES ('instance_id', 'abcdefabcdef0123456789abcdef0123');
INSERT INTO users VALUES (1, 'admin', '$argon2id$v=19$m=65536,t=2,p=1$c2FsdA$aGFzaA', 'admin', 1720000000000000);
INSERT INTO users VALUES (2, 'bob', '$argon2id$v=19$m=65536,t=2,p=1$c2FsdDI$aGFzaDI', 'user', 1720000000000001);
INSERT INTO groups VALUES (1, 'staff', 1720000000000002);
INSERT INTO user_groups VALUES (2, 1);
INSERT INTO hosts VALUES (1, 'hv1', 'qemu:///system', 1720000000000003);
INSERT INTO hosts VALUES (2, 'hv2', 'qemu+ssh://root@hv2/system', 1720000000000004);
INSERT INTO images VALUES (1, 'debian', 'qcow2', 10737418240, 2147483648, 1720000000000005);
INSERT INTO images VALUES (2, 'alpine', 'raw', 1073741824, 1073741824, 1720000000000006);
INSERT INTO image_volumes VALUES (1, 1, 1, 'kvmdesk-image-debian.qcow2',
                                  '/var/lib/kvmdesk/pool/kvmdesk-image-debian.qcow2', 'ready', NULL, 0,
                                  1720000000000007);
INSERT INTO image_volumes VALUES (2, 1, 2, 'kvmdesk-image-debian.qcow2', NULL, 'importing', NULL, 0,
                                  1720000000000008);
INSERT INTO image_volumes VALUES (3, 2, 1, 'kvmdesk-image-alpine.raw', NULL, 'error', 'disk full', 1,
                                  1720000000000009);
INSERT INTO templates VALUES (1, 'small', 2, 2048, 20, 'vnc', 'user', 'bios', 1720000000000010);
INSERT INTO pools VALUES (1, 'office', 1, 1, 'floating', 2, 1, 600, 300, 0, 1720000000000011, 1720000000000012);
INSERT INTO pool_groups VALUES (1, 1);
INSERT INTO pool_hosts VALUES (1, 1);
INSERT INTO desktops VALUES (1, 'office-1', 'kvmdesk-abcdefabcdef-office-1', '6f0c2c1e-8a4b-4f64-9d7e-0d3f1f6f1a03',
                             1, 1, 1, 'kvmdesk-office-1.qcow2', '/var/lib/kvmdesk/pool/kvmdesk-office-1.qcow2',
                             'running', NULL, 1720000000000013, 1720000000000014,
                             1, 2, 1720000000000015, 1720000000000016, 1720000000000017, 0, 0);
INSERT INTO desktops VALUES (2, 'd2', 'kvmdesk-abcdefabcdef-d2', NULL,
                             NULL, 2, 1, 'kvmdesk-d2.qcow2', NULL,
                             'stopped', NULL, 1720000000000018, 1720000000000019,
                             NULL, NULL, 0, 0, 0, 0, 1);
INSERT INTO events VALUES (1, 1720000000000020, 'image', 'debian', 'bob', 'import', 'importing', 'ready',
                           'image ''debian'' imported', NULL, NULL);
INSERT INTO events VALUES (2, 1720000000000021, 'image', 'debian', 'admin', 'import', 'importing', 'ready',
                           'image ''debian'' imported', NULL, NULL);
INSERT INTO events VALUES (3, 1720000000000022, 'desktop', 'office-1', 'system', 'assign', NULL, NULL,
                           'desktop ''office-1'' assigned to ''bob''', 'office', 'bob');
INSERT INTO sqlite_sequence VALUES ('events', 3);
PRAGMA user_version = 3;
COMMIT;
