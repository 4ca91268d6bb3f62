//! encoder (issue 2, in progress).
