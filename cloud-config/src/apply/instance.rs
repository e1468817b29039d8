//! Per-instance bookkeeping: `/var/lib/slipway/cloud-config/instance`
//! holds the instance ID of the last completed apply. The caller checks
//! [`already_applied`] before per-instance work and calls
//! [`record_applied`] after it.

use super::fsops::{self, Owner};
use super::ApplyOptions;

pub const INSTANCE_FILE: &str = "/var/lib/slipway/cloud-config/instance";

/// Whether the recorded instance ID is `opts.instance_id`.
pub fn already_applied(opts: &ApplyOptions) -> bool {
    let path = fsops::under_root(&opts.root, INSTANCE_FILE);
    matches!(fsops::read_optional(&path), Ok(Some(id)) if id.trim() == opts.instance_id)
}

/// Records `opts.instance_id`; errors are reported, not returned (see
/// [`try_record_applied`]).
pub fn record_applied(opts: &ApplyOptions) {
    if let Err(e) = try_record_applied(opts) {
        eprintln!("cloud-config: cannot record the applied instance: {e}");
    }
}

/// Records `opts.instance_id` atomically.
pub fn try_record_applied(opts: &ApplyOptions) -> Result<(), String> {
    if opts.instance_id.contains(['\n', '\r']) {
        return Err(format!("invalid instance ID {:?}", opts.instance_id));
    }
    fsops::write_atomic(
        &opts.root,
        &fsops::under_root(&opts.root, INSTANCE_FILE),
        format!("{}\n", opts.instance_id).as_bytes(),
        0o644,
        Owner::default(),
    )
}
