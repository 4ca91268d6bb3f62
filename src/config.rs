//! config (issue 2, in progress).
