-- A kvmdesk database as schema version 1 wrote it (images carried their one
-- volume: host_id, volume, path). tests/unit/test-migrations.c loads this
-- and opens it with kd_store_open() to prove the upgrade to the latest
-- version keeps every row. Never edit this to follow a newer schema: it is
-- what old files look like.
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
CREATE TABLE images (
  id           INTEGER PRIMARY KEY,
  name         TEXT NOT NULL UNIQUE,
  format       TEXT NOT NULL,
  virtual_size INTEGER NOT NULL DEFAULT 0,
  file_size    INTEGER NOT NULL DEFAULT 0,
  host_id      INTEGER REFERENCES hosts(id),
  volume       TEXT,
  path         TEXT,
  created_at   INTEGER NOT NULL);
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

INSERT INTO meta VALUES ('instance_id', '0123456789abcdef0123456789abcdef');
INSERT INTO users VALUES (1, 'admin', '$argon2id$v=19$m=65536,t=2,p=1$c2FsdA$aGFzaA', 'admin', 1700000000000000);
INSERT INTO tokens VALUES (1, 'aa11', 1, 1700000000000001, 1900000000000000);
INSERT INTO hosts VALUES (1, 'hv1', 'qemu:///system', 1700000000000002);
INSERT INTO hosts VALUES (2, 'hv2', 'qemu+ssh://root@hv2/system', 1700000000000003);
INSERT INTO images VALUES (1, 'debian', 'qcow2', 10737418240, 2147483648, 1, 'kvmdesk-image-debian.qcow2',
                           '/var/lib/kvmdesk/pool/kvmdesk-image-debian.qcow2', 1700000000000004);
INSERT INTO images VALUES (2, 'importing', 'raw', 1048576, 1048576, 2, 'kvmdesk-image-importing.raw', NULL,
                           1700000000000005);
INSERT INTO images VALUES (3, 'unplaced', 'qcow2', 0, 0, NULL, NULL, NULL, 1700000000000006);
INSERT INTO templates VALUES (1, 'small', 2, 2048, 20, 'vnc', 'user', 'bios', 1700000000000007);
INSERT INTO desktops VALUES (1, 'd1', 'kvmdesk-0123456789ab-d1', '6f0c2c1e-8a4b-4f64-9d7e-0d3f1f6f1a01',
                             1, 1, 1, 'kvmdesk-d1.qcow2', '/var/lib/kvmdesk/pool/kvmdesk-d1.qcow2',
                             'running', NULL, 1700000000000008, 1700000000000009);
COMMIT;
PRAGMA user_version = 1;
