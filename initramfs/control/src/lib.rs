//! The control protocol of the Slipway service manager, shared by the
//! server (the PID 1, `slipway-init`) and the client (`slipctl`).
//!
//! # Transport
//!
//! - The PID 1 listens on the unix stream socket [`SOCKET_PATH`]
//!   (`/run/slipway/control.sock`). Clients honour the environment variable
//!   [`SOCKET_ENV`] (`SLIPWAY_CONTROL_SOCKET`) to use another path (tests);
//!   see [`socket_path`].
//! - One request per connection: the client writes one JSON object (a
//!   [`Request`]) followed by `\n`; the server answers with one JSON object
//!   (a [`Response`]) followed by `\n`, then closes the connection.
//! - Messages are written compactly ([`write_message`]): JSON escapes
//!   newlines inside strings, so a message is exactly one line.
//! - A line longer than [`MAX_MESSAGE`] (64 KiB, not counting the `\n`) is
//!   refused by [`read_message`] without reading further
//!   ([`ProtoError::TooLong`]); a reader never allocates more than the
//!   limit. The client reads responses with the larger limit
//!   [`MAX_RESPONSE`], since a status of a few hundred units exceeds 64 KiB
//!   ([`read_message_with_limit`]).
//! - A connection closed before any byte is [`ProtoError::Eof`]; a last line
//!   without its `\n` is accepted (and parsed); an empty line or invalid
//!   JSON is [`ProtoError::Json`].
//!
//! # Messages
//!
//! Requests are internally tagged by `"command"` (lowercase):
//!
//! ```json
//! {"command":"status","unit":null}          // whole system; "unit":"x.service" for one
//! {"command":"start","unit":"sshd.service"}
//! {"command":"stop","unit":"sshd.service"}
//! {"command":"restart","unit":"sshd.service"}
//! {"command":"enable","unit":"sshd.service","now":true}
//! {"command":"disable","unit":"sshd.service","now":false}
//! {"command":"reboot"}
//! {"command":"poweroff"}
//! ```
//!
//! A response:
//!
//! ```json
//! {"ok":true,"message":"started sshd.service","error":null,"status":null}
//! {"ok":false,"message":null,"error":"unit x.service not found","status":null}
//! {"ok":true,"message":null,"error":null,"status":{
//!   "health":"healthy","health_detail":null,"uptime_ms":81234,"units":[
//!     {"name":"sshd.service","description":"OpenSSH server","load":"loaded",
//!      "enabled":true,"active":"active","sub":"running","main_pid":312,
//!      "since_ms":2100,"restarts":0,"result":null,"memory_bytes":4612096,
//!      "tasks":1,"log":"/var/log/services/sshd.service.log"}]}}
//! ```
//!
//! - Optional fields are written as `null` when absent, and read as absent
//!   when missing; `now` reads as `false` when missing. Unknown fields are
//!   ignored (newer peers may add some); an unknown `command` is an error.
//! - `health`: `starting | healthy | unhealthy` ([`Health`]); `active`:
//!   `inactive | activating | active | deactivating | failed`
//!   ([`ActiveState`]). `load` is `loaded | masked | not-found | error |
//!   unsupported`; `sub` is free text (`running`, `exited`, `dead`,
//!   `auto-restart`, `start-pre`, …).
//! - `since_ms` is the boot clock (CLOCK_BOOTTIME, ms) of the unit's last
//!   active-state change, on the same clock as `uptime_ms`: the change
//!   happened `uptime_ms - since_ms` ms before the answer.
//! - `result` is the last failure cause (`exit status 1`, `killed by
//!   SIGKILL`, `start timeout`, `start limit hit`, `dependency failed:
//!   x.service`, …).
//!
//! # Logs
//!
//! The server writes each unit's output to `<LOG_DIR>/<unit>.log`
//! ([`LOG_DIR`] = `/var/log/services`, [`log_path`]); on rotation it becomes
//! `<unit>.log.1` ([`previous_log_path`]) and a new `<unit>.log` is begun.
//! Clients read these files directly (not through the socket); they honour
//! [`LOG_DIR_ENV`] (`SLIPWAY_LOG_DIR`), see [`log_dir`].
//!
//! This library never panics on any input, and depends on serde and
//! serde_json only.

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod client;
mod framing;
mod message;
mod paths;

pub use client::{call, serve_connection};
pub use framing::{
    read_message, read_message_with_limit, write_message, ProtoError, MAX_MESSAGE, MAX_RESPONSE,
};
pub use message::{ActiveState, Health, Request, Response, SystemStatus, UnitStatus};
pub use paths::{
    log_dir, log_path, previous_log_path, socket_path, unit_name, LOG_DIR, LOG_DIR_ENV, SOCKET_ENV,
    SOCKET_PATH, UNIT_TYPES,
};
