//! vision_model (issue 2, in progress).
