//! The aarch64 instruction sets: [`Neon`] (Advanced SIMD, in every
//! aarch64 CPU).

mod neon;
mod neon_int8;

pub(crate) use neon::Neon;
