//! model (issue 2, in progress).
