//! kernels (issue 2, in progress).
