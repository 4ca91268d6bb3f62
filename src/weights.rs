//! weights (issue 2, in progress).
