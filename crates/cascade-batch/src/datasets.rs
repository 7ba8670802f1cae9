//! Dataset fetchers.
