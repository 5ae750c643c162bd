-- A kvmdesk database as schema version 2 wrote it: image volumes per host,
-- the events table, no groups, pools or desktop sessions yet.
-- tests/unit/test-migrations.c loads this and opens it with kd_store_open()
-- to prove the upgrade to the latest version keeps every row and gives the
-- new desktop columns their defaults. Never edit this to follow a newer
-- schema: it is what old files look like.
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
  updated_at     INTEGER NOT NULL);
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
  message     TEXT);
CREATE INDEX events_object ON events (object_type, object_name, id);
CREATE INDEX image_volumes_host ON image_volumes (host_id);
CREATE INDEX desktops_host ON desktops (host_id);
CREATE INDEX desktops_image ON desktops (image_id);
CREATE INDEX desktops_template ON desktops (template_id);
CREATE INDEX tokens_user ON tokens (user_id);
CREATE INDEX tokens_expires ON tokens (expires_at);

INSERT INTO meta VALUES ('instance_id', 'fedcba9876543210fedcba9876543210');
INSERT INTO users VALUES (1, 'admin', '$argon2id$v=19$m=65536,t=2,p=1$c2FsdA$aGFzaA', 'admin', 1710000000000000);
INSERT INTO users VALUES (2, 'bob', '$argon2id$v=19$m=65536,t=2,p=1$c2FsdDI$aGFzaDI', 'user', 1710000000000001);
INSERT INTO tokens VALUES (1, 'bb22', 2, 1710000000000002, 1900000000000000);
INSERT INTO hosts VALUES (1, 'hv1', 'qemu:///system', 1710000000000003);
INSERT INTO images VALUES (1, 'debian', 'qcow2', 10737418240, 2147483648, 1710000000000004);
INSERT INTO image_volumes VALUES (1, 1, 1, 'kvmdesk-image-debian.qcow2',
                                  '/var/lib/kvmdesk/pool/kvmdesk-image-debian.qcow2', 'ready', NULL, 0,
                                  1710000000000005);
INSERT INTO templates VALUES (1, 'small', 2, 2048, 20, 'vnc', 'user', 'bios', 1710000000000006);
INSERT INTO desktops VALUES (1, 'd1', 'kvmdesk-fedcba987654-d1', '6f0c2c1e-8a4b-4f64-9d7e-0d3f1f6f1a02',
                             1, 1, 1, 'kvmdesk-d1.qcow2', '/var/lib/kvmdesk/pool/kvmdesk-d1.qcow2',
                             'running', NULL, 1710000000000007, 1710000000000008);
INSERT INTO desktops VALUES (2, 'd2', 'kvmdesk-fedcba987654-d2', NULL,
                             NULL, 1, 1, 'kvmdesk-d2.qcow2', NULL,
                             'error', 'no host has room', 1710000000000009, 1710000000000010);
INSERT INTO events VALUES (1, 1710000000000011, 'desktop', 'd1', 'admin', 'create', NULL, 'provisioning',
                           'desktop ''d1'' created');
INSERT INTO events VALUES (2, 1710000000000012, 'desktop', 'd1', 'system', 'state', 'stopped', 'running',
                           'desktop ''d1'' is running');
INSERT INTO events VALUES (7, 1710000000000013, 'desktop', 'd2', 'bob', 'start', 'stopped', 'error',
                           'no host has room');
COMMIT;
PRAGMA user_version = 2;
