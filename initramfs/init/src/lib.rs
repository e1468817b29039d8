//! The Slipway init.
