//! The small demo model built into the library (see `assets/demo-model/`).

use crate::error::{Error, Result};
use crate::pipeline::Pipeline;

/// The embedded demo model with its processor.
pub fn pipeline() -> Result<Pipeline> {
    Err(Error::unsupported("this build has no embedded default model yet; pass --model DIR"))
}
