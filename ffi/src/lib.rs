//! C ABI of the clip runtime (see issue 5).
