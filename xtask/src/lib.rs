//! The Slipway builder library.
