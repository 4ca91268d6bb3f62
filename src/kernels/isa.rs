//! Which instruction set the kernels use: the [`Kernel`] a process runs,
//! chosen once from CPU detection or the `CLIP_KERNEL` environment
//! variable, and the [`Isa`] interface every instruction set implements.
//!
//! An instruction set is one file (`x86_64/avx512.rs`, `x86_64/avx2.rs`,
//! `aarch64/neon.rs`, and [`Portable`] here for CPUs without one) that
//! implements [`Isa`]: its f32 vector type (for the bodies written once over
//! [`F32Vec`]: activations, attention's head products, the x86 GEMM
//! micro-kernel), the shape of its GEMM tile, its micro-kernel, and `run`,
//! which compiles a generic body with the instruction set's target features.
//! Everything else (packing weights and activations, row blocks, tasks, the
//! thread team, epilogues, attention's driver) is written once and made
//! generic over [`Isa`] or dispatched by [`with_isa!`].

use super::int8::tile::TileI8;
use super::int8::{check_choice, Int8Dot, INT8_DOT_ENV};
use super::packed::{PanelType, Tile};
use super::simd::F32Vec;
use crate::error::{Error, Result};
use std::sync::OnceLock;

/// A set of kernels for one instruction set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kernel {
    /// x86-64 with AVX-512F: a 12 x 32 GEMM tile, 16-lane loops; int8
    /// products where the CPU also has AVX-512 VNNI.
    Avx512,
    /// x86-64 with AVX2, FMA and F16C: a 6 x 16 GEMM tile, 8-lane loops;
    /// int8 products on AVX-VNNI or AVX2's `vpmaddubsw`.
    Avx2,
    /// aarch64 with NEON (Advanced SIMD): a GEMM tile of its own, 4-lane
    /// loops; int8 products on `smmla` (i8mm), `sdot` (the dot-product
    /// extension) or widening multiplies.
    Neon,
    /// None of this crate's own kernels: products on the `gemm` crate
    /// (which picks its own SIMD code at run time), element-wise loops
    /// compiled for the target's baseline (SSE2 on x86-64, NEON on aarch64),
    /// int8 products in plain Rust.
    Gemm,
}

impl Kernel {
    /// Every kernel, fastest first: the order of automatic selection.
    pub const ALL: [Kernel; 4] = [Kernel::Avx512, Kernel::Avx2, Kernel::Neon, Kernel::Gemm];

    /// The name `CLIP_KERNEL` takes and reports give: `avx512`, `avx2`,
    /// `neon` or `gemm`.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Avx512 => "avx512",
            Kernel::Avx2 => "avx2",
            Kernel::Neon => "neon",
            Kernel::Gemm => "gemm",
        }
    }

    /// The kernel named `name` (case-insensitive), if there is one.
    pub fn from_name(name: &str) -> Option<Kernel> {
        Kernel::ALL.into_iter().find(|k| k.name().eq_ignore_ascii_case(name.trim()))
    }

    /// Whether this CPU can run the kernel (`Gemm` runs everywhere).
    pub fn supported(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => super::x86_64::Avx512::detected(),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => super::x86_64::Avx2::detected(),
            #[cfg(target_arch = "aarch64")]
            Kernel::Neon => super::aarch64::Neon::detected(),
            Kernel::Gemm => true,
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// The kernels this CPU can run, fastest first (`Gemm` last).
    pub fn supported_all() -> Vec<Kernel> {
        Kernel::ALL.into_iter().filter(|k| k.supported()).collect()
    }

    /// The fastest kernel this CPU supports.
    pub fn detected() -> Kernel {
        Kernel::ALL.into_iter().find(|k| k.supported()).unwrap_or(Kernel::Gemm)
    }
}

impl std::fmt::Display for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The environment variable that forces a kernel.
pub const KERNEL_ENV: &str = "CLIP_KERNEL";

/// The kernel this process runs: the one `CLIP_KERNEL` names, else the
/// fastest this CPU supports ([`Kernel::detected`]). Read once, at the
/// first call; an empty `CLIP_KERNEL` or `auto` means "detect". The
/// kernel's int8 products run the instructions `CLIP_INT8_DOT` names
/// ([`Kernel::int8_dot`]), checked here too.
///
/// # Errors
/// [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported) when
/// `CLIP_KERNEL` names a kernel this CPU cannot run (or `CLIP_INT8_DOT`
/// int8 instructions the kernel cannot run), and
/// [`ErrorKind::InvalidArgument`](crate::ErrorKind::InvalidArgument) when it
/// names none. Loading a model returns this error; the kernels themselves,
/// called directly, then run the detected kernel.
pub fn active_kernel() -> Result<Kernel> {
    // (An `Error` is not `Clone`: its kind and message are kept.)
    static CHOICE: OnceLock<Result<Kernel, (crate::ErrorKind, String)>> = OnceLock::new();
    let choice = CHOICE.get_or_init(|| {
        let var = std::env::var(KERNEL_ENV).ok();
        let dot = std::env::var(INT8_DOT_ENV).ok();
        choose(var.as_deref())
            .and_then(|k| check_choice(k, dot.as_deref()).map(|()| k))
            .map_err(|e| (e.kind(), e.message().to_string()))
    });
    choice.clone().map_err(|(kind, message)| Error::new(kind, message))
}

/// The name a switch's environment value gives (trimmed), `None` when it
/// leaves the choice to detection: not set, empty or `auto`.
pub(crate) fn named(var: Option<&str>) -> Option<&str> {
    var.map(str::trim).filter(|v| !v.is_empty() && !v.eq_ignore_ascii_case("auto"))
}

/// The kernel for a `CLIP_KERNEL` value (`None`: not set).
pub(crate) fn choose(var: Option<&str>) -> Result<Kernel> {
    let Some(name) = named(var) else { return Ok(Kernel::detected()) };
    let names = || Kernel::supported_all().iter().map(|k| k.name()).collect::<Vec<_>>().join(", ");
    match Kernel::from_name(name) {
        Some(k) if k.supported() => Ok(k),
        Some(k) => Err(Error::unsupported(format!(
            "{KERNEL_ENV}={name}: this CPU cannot run the {k} kernel (it can run: {})",
            names()
        ))),
        None => Err(Error::invalid(format!(
            "{KERNEL_ENV}={name}: no such kernel (avx512, avx2, neon, gemm or auto; this CPU \
             can run: {})",
            names()
        ))),
    }
}

/// The kernel the kernels use: [`active_kernel`], or the detected one when
/// `CLIP_KERNEL` is invalid (loading a model reports that).
#[inline]
pub(crate) fn selected() -> Kernel {
    static KERNEL: OnceLock<Kernel> = OnceLock::new();
    *KERNEL.get_or_init(|| active_kernel().unwrap_or_else(|_| Kernel::detected()))
}

/// Evaluates `$body` with the type `$K` set to the [`Isa`] of the
/// [`Kernel`] `$kernel` ([`Portable`] for `Gemm` and for kernels of another
/// architecture, which are never selected there).
macro_rules! with_isa {
    ($kernel:expr, |$K:ident| $body:expr) => {
        match $kernel {
            #[cfg(target_arch = "x86_64")]
            $crate::kernels::Kernel::Avx512 => {
                type $K = $crate::kernels::x86_64::Avx512;
                $body
            }
            #[cfg(target_arch = "x86_64")]
            $crate::kernels::Kernel::Avx2 => {
                type $K = $crate::kernels::x86_64::Avx2;
                $body
            }
            #[cfg(target_arch = "aarch64")]
            $crate::kernels::Kernel::Neon => {
                type $K = $crate::kernels::aarch64::Neon;
                $body
            }
            #[allow(unreachable_patterns)]
            _ => {
                type $K = $crate::kernels::isa::Portable;
                $body
            }
        }
    };
}
pub(crate) use with_isa;

/// A computation written once over [`Isa`] (typically over its
/// [`Isa::F32`] vectors), run by [`Isa::run`] with the instruction set's
/// target features enabled. Implementations mark `eval` `#[inline(always)]`
/// so that the body, and the intrinsics it calls, are compiled inside
/// `run`, for that instruction set.
pub(crate) trait SimdOp {
    /// What the computation returns.
    type Output;

    /// Runs the computation.
    ///
    /// # Safety
    /// The CPU has `K`'s instruction set (called from `K::run`).
    unsafe fn eval<K: Isa>(self) -> Self::Output;
}

/// A closure as a [`SimdOp`]: its loops, written to vectorise, are
/// compiled for the instruction set that runs them.
pub(crate) struct Vectorize<F>(pub F);

impl<R, F: FnOnce() -> R> SimdOp for Vectorize<F> {
    type Output = R;

    #[inline(always)]
    unsafe fn eval<K: Isa>(self) -> R {
        (self.0)()
    }
}

/// Runs `f` compiled with the target features of `kernel` (its loops
/// vectorise to that width).
#[inline(always)]
pub(crate) fn vectorize_on<R>(kernel: Kernel, f: impl FnOnce() -> R) -> R {
    with_isa!(kernel, |K| {
        debug_assert!(K::detected());
        // SAFETY: a kernel reaches here only when selected or tested, both
        // only when `supported()`, i.e. `K::detected()`.
        unsafe { K::run(Vectorize(f)) }
    })
}

/// [`vectorize_on`] the selected kernel.
#[inline(always)]
pub(crate) fn vectorize<R>(f: impl FnOnce() -> R) -> R {
    vectorize_on(selected(), f)
}

/// Defines `fn $name(args) -> ret` running `$body(args)` compiled for the
/// selected kernel's instruction set (the body's loops are written to
/// vectorise; the baseline x86-64 target has only 4 lanes).
macro_rules! vectorized {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($p:ident: $t:ty),*) $(-> $r:ty)? = $body:path) => {
        $(#[$m])*
        $vis fn $name($($p: $t),*) $(-> $r)? {
            $crate::kernels::isa::vectorize(move || $body($($p),*))
        }
    };
}
pub(crate) use vectorized;

/// What one instruction set implements (see the module doc).
///
/// # Safety
/// Implementations return `true` from [`Isa::detected`] only when the CPU
/// has every feature their functions are compiled for; their other
/// functions may assume it, and callers only call them when it holds.
pub(crate) unsafe trait Isa: 'static {
    /// Which kernel this is.
    const KERNEL: Kernel;
    /// The f32 vector of the generic bodies.
    type F32: F32Vec;
    /// Most rows of a GEMM micro-kernel tile (at most
    /// [`MR_MAX`](super::packed::MR_MAX)).
    const MR: usize;
    /// Output features per weight panel, a multiple of `F32::LANES` that
    /// divides [`KC`](super::packed::KC); 0 when there is no packed
    /// micro-kernel (products then run on the `gemm` crate).
    const NR: usize;
    /// Vectors of columns per row of an attention head tile (1 to 4; see
    /// `attention_heads`), 0 when a head's products run on the `gemm`
    /// crate.
    const HEAD_VECS: usize;

    /// Whether this CPU has the instruction set (cached by callers that
    /// ask often: [`Kernel::supported`]).
    fn detected() -> bool;

    /// The int8 instruction sequences this instruction set has a
    /// micro-kernel for, fastest first.
    const INT8_DOTS: &'static [Int8Dot] = &[];
    /// Output features per int8 weight panel.
    const NR_I8: usize = Self::NR;

    /// Whether this CPU runs `dot`, one of [`Isa::INT8_DOTS`] (cached by
    /// implementations).
    fn int8(dot: Int8Dot) -> bool {
        let _ = dot;
        false
    }

    /// Runs `op` with this instruction set's target features.
    ///
    /// # Safety
    /// [`Isa::detected`] is true.
    unsafe fn run<O: SimdOp>(op: O) -> O::Output;

    /// Computes one tile of a packed product (see [`Tile`]): `rows` (1 to
    /// `MR`) rows times `NR` columns over a depth of `kc`, from `b`, a
    /// slice of a panel of `dtype` elements (`kc * NR` of them).
    ///
    /// # Safety
    /// [`Isa::detected`] is true, `NR > 0`, and `t` and `b` address what
    /// [`Tile`] describes.
    unsafe fn tile(dtype: PanelType, rows: usize, kc: usize, b: *const u8, t: &Tile);

    /// Computes one tile of an int8 product with `dot` (see [`TileI8`]):
    /// `rows` (1 to `MR`) rows of `NR_I8` columns over `groups` groups of
    /// `G = dot.group_depth()` depths, from `b`, a panel of
    /// `groups * G * NR_I8` bytes.
    ///
    /// # Safety
    /// [`Isa::int8`] is true for `dot`, and `t` and `b` address what
    /// [`TileI8`] describes.
    unsafe fn tile_i8(dot: Int8Dot, rows: usize, groups: usize, b: *const u8, t: &TileI8) {
        let _ = (rows, groups, b, t);
        unreachable!("{}: no int8 micro-kernel for {dot}", Self::KERNEL)
    }
}

/// CPUs without an instruction set of this crate's (and the `gemm`
/// kernel): no packed micro-kernel, scalar "vectors" whose loops the
/// compiler vectorises for the target's baseline, and the int8
/// micro-kernel in plain Rust (one row a tile).
pub(crate) struct Portable;

// SAFETY: needs no CPU feature beyond the compilation target's.
unsafe impl Isa for Portable {
    const KERNEL: Kernel = Kernel::Gemm;
    type F32 = f32;
    const MR: usize = 1;
    const NR: usize = 0;
    const HEAD_VECS: usize = 0;

    fn detected() -> bool {
        true
    }

    #[inline(always)]
    unsafe fn run<O: SimdOp>(op: O) -> O::Output {
        op.eval::<Portable>()
    }

    unsafe fn tile(_: PanelType, _: usize, _: usize, _: *const u8, _: &Tile) {
        unreachable!("the gemm kernel has no packed micro-kernel")
    }

    const INT8_DOTS: &'static [Int8Dot] = &[Int8Dot::Scalar];
    const NR_I8: usize = 8;

    fn int8(dot: Int8Dot) -> bool {
        dot == Int8Dot::Scalar
    }

    unsafe fn tile_i8(_: Int8Dot, rows: usize, groups: usize, b: *const u8, t: &TileI8) {
        debug_assert_eq!(rows, 1);
        super::int8::tile::scalar::<1, 8>(groups, b, t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_gemm_always_runs() {
        for k in Kernel::ALL {
            assert_eq!(Kernel::from_name(k.name()), Some(k));
            assert_eq!(Kernel::from_name(&k.name().to_uppercase()), Some(k));
        }
        assert!(Kernel::Gemm.supported());
        assert_eq!(Kernel::supported_all().last(), Some(&Kernel::Gemm));
        assert_eq!(Kernel::supported_all()[0], Kernel::detected());
    }

    /// `CLIP_KERNEL` values: unset, empty and `auto` detect; a supported
    /// name is taken; an unknown name is an invalid argument and a kernel
    /// the CPU lacks is unsupported, each naming what the CPU can run.
    #[test]
    fn choice_from_the_environment_value() {
        use crate::ErrorKind;
        for v in [None, Some(""), Some("auto"), Some(" AUTO ")] {
            assert_eq!(choose(v).unwrap(), Kernel::detected(), "{v:?}");
        }
        for k in Kernel::supported_all() {
            assert_eq!(choose(Some(k.name())).unwrap(), k);
        }
        let e = choose(Some("sse9")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert!(e.message().contains("sse9") && e.message().contains("gemm"), "{e}");
        let missing: Vec<Kernel> = Kernel::ALL.into_iter().filter(|k| !k.supported()).collect();
        // Every machine lacks the other architecture's kernel.
        assert!(!missing.is_empty());
        for k in missing {
            let e = choose(Some(k.name())).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Unsupported, "{k}");
            assert!(e.message().contains(k.name()), "{e}");
        }
    }
}
