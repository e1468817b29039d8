//! Delta downloads: fetch only the pieces of a new release the machine does
//! not already have, as byte ranges of the same full payload the feed
//! points to, so any static HTTP server that honours `Range` can serve
//! them. The README's "Delta updates" has the design and the formats.
//!
//! - `index`: the signed list of content-defined pieces, built at publish.
//! - `local`: the machine's active slot cut the same way, found by hash.
//! - `reader`: the new data assembled from both, chunk by chunk, checked.
//!
//! Everything here is an optimisation of the download: the writer checks
//! every chunk against the signed manifest whatever its origin, and any
//! doubt (no index, a bad one, a server without ranges) falls back to the
//! whole payload with a line saying why.

pub mod index;
#[cfg(feature = "machine")]
pub mod local;
#[cfg(feature = "machine")]
pub mod reader;

#[cfg(feature = "machine")]
mod download;
#[cfg(feature = "machine")]
pub use download::*;
