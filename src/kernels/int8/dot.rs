//! Which instructions compute a kernel's int8 products: [`Int8Dot`], one
//! per process for the selected kernel, from CPU detection or the
//! `CLIP_INT8_DOT` environment variable.

use crate::error::{Error, Result};
use crate::kernels::isa::{named, with_isa, Isa, Kernel};

/// An instruction sequence that sums products of int8 activations and
/// int8 weights in i32. Every one computes the same exact sums, so a
/// product's output is the same to the bit whichever runs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Int8Dot {
    /// `vpdpbusd`: four `u8 x i8` products a lane in one instruction
    /// (AVX-512 VNNI on the avx512 kernel, AVX-VNNI on the avx2 kernel).
    Vnni,
    /// `vpmaddubsw` + `vpmaddwd` (every AVX2 CPU), with the activations'
    /// signs moved onto the weights so that no pair sum saturates.
    Maddubs,
    /// `smmla` (aarch64 with the int8 matrix-multiply extension, i8mm:
    /// Cortex-A510/A710/X2 and later, Neoverse V1/N2, Apple M2): a 2 x 2
    /// block of sums over 8 depths in one instruction.
    I8mm,
    /// `sdot` (aarch64 with the dot-product extension: Cortex-A55, A76 and
    /// later, Neoverse, Apple M).
    Sdot,
    /// `smull` + `sadalp`: widening multiplies (any aarch64 CPU, e.g. the
    /// Cortex-A53 and A72).
    Smull,
    /// Plain Rust, vectorised by the compiler for the target's baseline:
    /// the `gemm` kernel's, and the definition the others are tested
    /// against.
    Scalar,
}

impl Int8Dot {
    /// Every variant.
    pub const ALL: [Int8Dot; 6] = [
        Int8Dot::Vnni,
        Int8Dot::Maddubs,
        Int8Dot::I8mm,
        Int8Dot::Sdot,
        Int8Dot::Smull,
        Int8Dot::Scalar,
    ];

    /// The name `CLIP_INT8_DOT` takes and reports give: `vnni`, `maddubs`,
    /// `i8mm`, `sdot`, `smull` or `scalar`.
    pub fn name(self) -> &'static str {
        match self {
            Int8Dot::Vnni => "vnni",
            Int8Dot::Maddubs => "maddubs",
            Int8Dot::I8mm => "i8mm",
            Int8Dot::Sdot => "sdot",
            Int8Dot::Smull => "smull",
            Int8Dot::Scalar => "scalar",
        }
    }

    /// The variant named `name` (case-insensitive), if there is one.
    pub fn from_name(name: &str) -> Option<Int8Dot> {
        Int8Dot::ALL.into_iter().find(|d| d.name().eq_ignore_ascii_case(name.trim()))
    }
}

impl Int8Dot {
    /// Whether the instructions multiply unsigned activation bytes (`p +
    /// 128`; VNNI's `vpdpbusd`) rather than signed ones (`p`).
    pub(crate) fn unsigned_rows(self) -> bool {
        self == Int8Dot::Vnni
    }

    /// Consecutive bytes of a row the quantised activations keep together
    /// ([`TileLayout`](super::layout::TileLayout)), where not the whole
    /// row: 8 for `smmla` (a group), whose row pairs are then one 16-byte
    /// load; `None` (rows one after another) for the others.
    pub(crate) fn chunk(self) -> Option<usize> {
        (self == Int8Dot::I8mm).then_some(8)
    }

    /// Consecutive depths of a column the weight panels keep together: 8
    /// for `smmla`, 4 for the others.
    pub(crate) fn group_depth(self) -> usize {
        if self == Int8Dot::I8mm {
            8
        } else {
            4
        }
    }
}

impl std::fmt::Display for Int8Dot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The environment variable that forces the int8 products' instructions.
pub const INT8_DOT_ENV: &str = "CLIP_INT8_DOT";

impl Kernel {
    /// The int8 instruction sequences this kernel can run on this CPU,
    /// fastest first (none: the avx512 kernel without AVX-512 VNNI, whose
    /// [`Precision::Int8`](crate::Precision) products then run on the avx2
    /// kernel).
    pub fn int8_dots(self) -> Vec<Int8Dot> {
        if !self.supported() {
            return Vec::new();
        }
        with_isa!(self, |K| K::INT8_DOTS.iter().copied().filter(|&d| K::int8(d)).collect())
    }

    /// The int8 instructions this kernel runs: the ones `CLIP_INT8_DOT`
    /// names where the kernel has them, else its fastest.
    pub fn int8_dot(self) -> Option<Int8Dot> {
        let dots = self.int8_dots();
        match forced() {
            Some(d) if dots.contains(&d) => Some(d),
            _ => dots.first().copied(),
        }
    }

    /// Whether the kernel has int8 products of its own on this CPU.
    pub fn has_int8(self) -> bool {
        self.int8_dot().is_some()
    }
}

/// The kernel and instructions that compute int8 products when `kernel`
/// is selected: its own, or for a kernel without any (avx512 on a CPU
/// without AVX-512 VNNI) the fastest other kernel of this CPU that has them
/// (avx2's `maddubs` there; the gemm kernel's `scalar` ones run anywhere),
/// so that int8 gives the same numbers on every CPU.
pub(crate) fn int8_runner(kernel: Kernel) -> (Kernel, Int8Dot) {
    let own = kernel.int8_dot().map(|d| (kernel, d));
    own.or_else(|| Kernel::supported_all().into_iter().find_map(|k| k.int8_dot().map(|d| (k, d))))
        .unwrap_or((Kernel::Gemm, Int8Dot::Scalar))
}

/// The variant `CLIP_INT8_DOT` names, if any (read once).
fn forced() -> Option<Int8Dot> {
    static FORCED: std::sync::OnceLock<Option<Int8Dot>> = std::sync::OnceLock::new();
    *FORCED.get_or_init(|| std::env::var(INT8_DOT_ENV).ok().and_then(|v| Int8Dot::from_name(&v)))
}

/// Checks a `CLIP_INT8_DOT` value (`None`: not set) against `kernel`:
/// empty and `auto` leave the choice to detection.
///
/// # Errors
/// [`ErrorKind::InvalidArgument`](crate::ErrorKind::InvalidArgument) for a
/// name that is no variant, [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported)
/// for one `kernel` cannot run on this CPU.
pub(crate) fn check_choice(kernel: Kernel, var: Option<&str>) -> Result<()> {
    let Some(name) = named(var) else { return Ok(()) };
    let (runner, _) = int8_runner(kernel);
    let dots = runner.int8_dots();
    let kernel = runner;
    let has = || {
        let names: Vec<&str> = dots.iter().map(|d| d.name()).collect();
        if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        }
    };
    match Int8Dot::from_name(name) {
        Some(d) if dots.contains(&d) => Ok(()),
        Some(d) => Err(Error::unsupported(format!(
            "{INT8_DOT_ENV}={name}: the {kernel} kernel cannot compute int8 products with {d} \
             on this CPU (it can with: {})",
            has()
        ))),
        None => Err(Error::invalid(format!(
            "{INT8_DOT_ENV}={name}: no such int8 variant (vnni, maddubs, i8mm, sdot, smull, \
             scalar or auto; the {kernel} kernel can run: {})",
            has()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn names_round_trip() {
        for d in Int8Dot::ALL {
            assert_eq!(Int8Dot::from_name(d.name()), Some(d));
            assert_eq!(Int8Dot::from_name(&d.name().to_uppercase()), Some(d));
        }
        assert_eq!(Int8Dot::from_name("avx"), None);
    }

    /// Every kernel but AVX-512 without VNNI has int8 products; the gemm
    /// kernel's are the scalar ones; the choice accepts exactly the
    /// kernel's variants.
    #[test]
    fn each_kernel_checks_its_own_variants() {
        assert_eq!(Kernel::Gemm.int8_dots(), vec![Int8Dot::Scalar]);
        for k in Kernel::supported_all() {
            let dots = k.int8_dots();
            println!("{k}: int8 with {dots:?}");
            for v in [None, Some(""), Some("auto")] {
                assert!(check_choice(k, v).is_ok());
            }
            for d in Int8Dot::ALL {
                let r = check_choice(k, Some(d.name()));
                match dots.contains(&d) {
                    true => assert!(r.is_ok(), "{k} {d}"),
                    false => assert_eq!(r.unwrap_err().kind(), ErrorKind::Unsupported, "{k} {d}"),
                }
            }
            let e = check_choice(k, Some("avx9")).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument);
            assert!(e.message().contains("avx9"), "{e}");
        }
    }
}
