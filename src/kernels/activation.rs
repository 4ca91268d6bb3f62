//! MLP activations, elementwise and in place, written once over
//! [`F32Vec`] and compiled for each instruction set (see
//! [`isa`](super::isa)): divisions are [`F32Vec::recip`] (an estimate and
//! a Newton step where the instruction set has one; `vdivps` holds the
//! multiply-add port for many cycles), `e^x` is [`exp`].

use super::isa::{selected, with_isa, Isa, Kernel, SimdOp};
use super::simd::{map_in_place, F32Vec, VecMap};
use crate::config::Activation;

/// The in-place function of `act` on `kernel` (its instruction set's
/// vectors).
pub(crate) fn activation_fn_on(kernel: Kernel, act: Activation) -> fn(&mut [f32]) {
    with_isa!(kernel, |K| match act {
        Activation::QuickGelu => run::<K, QuickGelu>,
        Activation::Gelu => run::<K, GeluErf>,
        Activation::GeluTanh => run::<K, GeluTanh>,
        Activation::Relu => run::<K, Relu>,
    })
}

/// The in-place function of `act` on the selected kernel.
pub(crate) fn activation_fn(act: Activation) -> fn(&mut [f32]) {
    activation_fn_on(selected(), act)
}

/// Applies `act` to every element of `x`, in parallel for large inputs.
pub fn apply_activation(act: Activation, x: &mut [f32]) {
    const CHUNK: usize = 16 * 1024;
    let f = activation_fn(act);
    if x.len() <= CHUNK {
        f(x)
    } else {
        super::team::for_each_chunk(x, CHUNK, |_, c| f(c))
    }
}

/// Activation `M` over `x` on `K`.
fn run<K: Isa, M: VecMap>(x: &mut [f32]) {
    debug_assert!(K::detected());
    // SAFETY: `activation_fn_on` hands out `run::<K, _>` only for kernels
    // that are selected or tested, which requires `K::detected()`.
    unsafe { K::run(Apply::<M>(x, std::marker::PhantomData)) }
}

/// Activation `M` over the slice, as a [`SimdOp`].
struct Apply<'a, M>(&'a mut [f32], std::marker::PhantomData<M>);

impl<M: VecMap> SimdOp for Apply<'_, M> {
    type Output = ();

    #[inline(always)]
    unsafe fn eval<K: Isa>(self) {
        map_in_place::<K::F32, M>(self.0)
    }
}

/// The activations as [`VecMap`]s.
struct QuickGelu;
struct GeluErf;
struct GeluTanh;
struct Relu;

impl VecMap for QuickGelu {
    #[inline(always)]
    unsafe fn map<V: F32Vec>(v: V) -> V {
        quick_gelu(v)
    }
}

impl VecMap for GeluErf {
    #[inline(always)]
    unsafe fn map<V: F32Vec>(v: V) -> V {
        gelu_erf(v)
    }
}

impl VecMap for GeluTanh {
    #[inline(always)]
    unsafe fn map<V: F32Vec>(v: V) -> V {
        gelu_tanh(v)
    }
}

impl VecMap for Relu {
    #[inline(always)]
    unsafe fn map<V: F32Vec>(v: V) -> V {
        v.max(V::splat(0.0))
    }
}

/// The constants of the approximations, in one place.
pub(crate) mod consts {
    /// QuickGELU's sigmoid scale, rounded to f32 as in PyTorch.
    pub(crate) const QUICK_GELU: f32 = 1.702;
    /// `sqrt(2 / pi)` and the cubic coefficient of the tanh GELU.
    pub(crate) const GELU_TANH_K: f32 = 0.797_884_6;
    pub(crate) const GELU_TANH_CUBIC: f32 = 0.044715;
    /// `ln 2` in two parts (Cody-Waite): `n ln2 = n HI + n LO` with `n HI` exact.
    pub(crate) const LN2_HI: f32 = 0.693_359_4;
    pub(crate) const LN2_LO: f32 = -2.121_944_4e-4;
    /// Cephes' polynomial for `(e^r - 1 - r) / r^2`, highest degree first.
    pub(crate) const EXP_POLY: [f32; 6] =
        [1.987_569_1e-4, 1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 1.666_666_5e-1, 0.5];
    /// Abramowitz & Stegun 7.1.26: `t = 1 / (1 + P |x|)` and the
    /// coefficients of `t (a1 + t (a2 + ...))`, highest degree first.
    pub(crate) const ERF_P: f32 = 0.327_591_1;
    pub(crate) const ERF_A: [f32; 5] =
        [1.061_405_4, -1.453_152, 1.421_413_7, -0.284_496_74, 0.254_829_6];
}
use consts::*;

/// `e^x` without branches or calls: Cody-Waite reduction `x = n ln2 + r`
/// and Cephes' degree-6 polynomial for `e^r` (its last coefficient,
/// 0.500000012, rounds to 0.5 in f32; relative error about 1e-7, i.e. 1-2
/// ulp), scaled by `2^n`. Inputs are clamped to [-87, 88], where `e^x` is a
/// normal f32; below, the result is ~1.6e-38 instead of smaller (no caller
/// can tell: it is added to 1 or multiplied by the input).
///
/// # Safety
/// The CPU has `V`'s instruction set.
#[inline(always)]
pub(crate) unsafe fn exp<V: F32Vec>(x: V) -> V {
    let c = |v| V::splat(v);
    let x = x.max(c(-87.0)).min(c(88.0));
    let n = x.mul(c(std::f32::consts::LOG2_E)).round();
    let r = n.neg_mul_add(c(LN2_HI), x);
    let r = n.neg_mul_add(c(LN2_LO), r);
    let mut p = c(EXP_POLY[0]);
    for &k in &EXP_POLY[1..] {
        p = p.mul_add(r, c(k));
    }
    let er = p.mul(r).mul_add(r, r.add(c(1.0)));
    er.scale_pow2(n)
}

/// [`exp`] of one float, for loops left to the compiler's vectoriser.
#[inline(always)]
pub(crate) fn exp_approx(x: f32) -> f32 {
    // SAFETY: the f32 "vector" needs no CPU feature.
    unsafe { exp::<f32>(x) }
}

/// QuickGELU: `x sigmoid(1.702 x) = x / (1 + e^(-1.702 x))`, the constant
/// rounded to f32 as in PyTorch.
///
/// # Safety
/// The CPU has `V`'s instruction set.
#[inline(always)]
unsafe fn quick_gelu<V: F32Vec>(v: V) -> V {
    let e = exp(v.mul(V::splat(-QUICK_GELU)));
    v.mul(V::splat(1.0).add(e).recip())
}

/// Exact GELU, `0.5 x (1 + erf(x / sqrt 2))`, with Abramowitz & Stegun's
/// erf (absolute error below 1.5e-7).
///
/// # Safety
/// The CPU has `V`'s instruction set.
#[inline(always)]
unsafe fn gelu_erf<V: F32Vec>(v: V) -> V {
    let c = |v| V::splat(v);
    let z = v.mul(c(std::f32::consts::FRAC_1_SQRT_2));
    let a = z.abs();
    let t = c(ERF_P).mul_add(a, c(1.0)).recip();
    let mut poly = c(ERF_A[0]);
    for &k in &ERF_A[1..] {
        poly = poly.mul_add(t, c(k));
    }
    poly = poly.mul(t);
    let e = exp(c(0.0).sub(a).mul(a));
    // erf is odd: |erf| (at least 0) with the sign of z.
    let erf = poly.neg_mul_add(e, c(1.0)).with_sign_of(z);
    c(0.5).mul(v).mul(c(1.0).add(erf))
}

/// The tanh GELU, `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`, with
/// `tanh(u) = 1 - 2 / (e^(2u) + 1)`.
///
/// # Safety
/// The CPU has `V`'s instruction set.
#[inline(always)]
unsafe fn gelu_tanh<V: F32Vec>(v: V) -> V {
    let c = |v| V::splat(v);
    let cube = v.mul(v).mul(v);
    let u = c(GELU_TANH_CUBIC).mul_add(cube, v);
    let e = exp(c(2.0 * GELU_TANH_K).mul(u));
    let t = c(2.0).neg_mul_add(e.add(c(1.0)).recip(), c(1.0));
    c(0.5).mul(v).mul(c(1.0).add(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `erf(x)` of the kernels' formula, for the accuracy test.
    fn erf_approx(x: f32) -> f32 {
        let t = 1.0 / (1.0 + ERF_P * x.abs());
        let poly = t * ERF_A[1..].iter().fold(ERF_A[0], |p, &c| p * t + c);
        (1.0 - poly * exp_approx(-x * x)).copysign(x)
    }

    /// The approximations against the standard library over the range the
    /// activations meet: exp within 2e-7 relative on [-87, 88]; erf within
    /// 1e-6 absolute (1.5e-7 of the formula plus f32 cancellation in `1 - ...`
    /// near 0), so GELU is off by at most `0.5 |x| 1e-6`; 200k points each.
    #[test]
    fn approximations_are_accurate() {
        for i in 0..200_000 {
            let x = -87.0 + 175.0 * i as f32 / 200_000.0;
            let (got, want) = (exp_approx(x) as f64, (x as f64).exp());
            assert!(((got - want) / want).abs() < 2e-7, "exp({x}): {got} vs {want}");
            let y = -6.0 + 12.0 * i as f32 / 200_000.0;
            let (got, want) = (erf_approx(y), libm::erff(y));
            assert!((got - want).abs() < 1e-6, "erf({y}): {got} vs {want}");
        }
        assert_eq!(exp_approx(-1000.0), exp_approx(-87.0));
        assert!(exp_approx(1000.0).is_finite());
    }

    /// Each activation on every kernel this CPU runs (each instruction
    /// set's vectors, with its reciprocal; `gemm`: scalar f32) against f64
    /// over [-100, 100], 400k points, in chunks of 37 (partial vectors
    /// too). QuickGELU within 5e-7 relative (a few ulp); the GELUs within
    /// 1e-6 relative plus 2e-7 |x| absolute (the erf formula's 1.5e-7
    /// absolute error, times 0.5 |x|, and 1 - erf's cancellation near 0);
    /// all plus 1e-30 where results underflow. ReLU exactly.
    #[test]
    fn activations_are_accurate_on_every_kernel() {
        let x: Vec<f32> = (0..400_001).map(|i| -100.0 + i as f32 / 2000.0).collect();
        let quick = |x: f32| {
            // The exponent rounded to f32 as PyTorch (and the kernels)
            // compute it: an f64 one would differ by its rounding, up to
            // 4e-6 relative in the result at |1.702 x| near 60.
            x as f64 / (1.0 + ((-1.702f32 * x) as f64).exp())
        };
        let erf = |x: f32| {
            let x = x as f64;
            0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2))
        };
        let tanh = |x: f32| {
            let u = (0.797_884_6f32 * (x + 0.044715 * x * x * x)) as f64;
            0.5 * x as f64 * (1.0 + u.tanh())
        };
        let relu = |x: f32| x.max(0.0) as f64;
        type Reference<'a> = &'a dyn Fn(f32) -> f64;
        let cases: [(Activation, Reference, f64, f64); 4] = [
            (Activation::QuickGelu, &quick, 5e-7, 0.0),
            (Activation::Gelu, &erf, 1e-6, 2e-7),
            (Activation::GeluTanh, &tanh, 1e-6, 2e-7),
            (Activation::Relu, &relu, 0.0, 0.0),
        ];
        for kernel in Kernel::supported_all() {
            for (act, want, rel, abs) in cases {
                let mut y = x.clone();
                for c in y.chunks_mut(37) {
                    activation_fn_on(kernel, act)(c);
                }
                for (&x, &got) in x.iter().zip(&y) {
                    let want = want(x);
                    let err = (got as f64 - want).abs();
                    let tol = rel * want.abs() + abs * (x as f64).abs() + 1e-30;
                    assert!(err <= tol, "{kernel} {act:?}({x}): {got} vs {want}");
                }
            }
        }
    }

    /// Expected values computed by PyTorch in float64:
    /// `x * sigmoid(1.702 x)`, `F.gelu(x)`, `F.gelu(x, approximate="tanh")`
    /// at x = -1, 0, 1, 3. Tolerance 1e-6: f32 evaluation of O(1) values.
    #[test]
    fn known_values() {
        let x = [-1.0f32, 0.0, 1.0, 3.0];
        let cases = [
            (Activation::QuickGelu, [-0.154_204_23, 0.0, 0.845_795_8, 2.981_928_7]),
            (Activation::Gelu, [-0.158_655_25, 0.0, 0.841_344_7, 2.995_950_3]),
            (Activation::GeluTanh, [-0.158_808, 0.0, 0.841_192, 2.996_362_6]),
        ];
        for (act, expected) in cases {
            // 1e-6 absolute also bounds the approximations of exp and erf.
            let mut v = x.to_vec();
            apply_activation(act, &mut v);
            for (got, want) in v.iter().zip(expected) {
                assert!((got - want).abs() < 1e-6, "{act:?}: {got} vs {want}");
            }
        }
    }
}
