//! The aarch64 instruction sets: [`Neon`] (Advanced SIMD, in every
//! aarch64 CPU).

mod neon;

pub(crate) use neon::Neon;
