//! MLP activations, elementwise and in place.

use crate::config::Activation;

/// Defines `fn $name(x)`: the AVX-512 kernel `$fast` when the CPU has it,
/// else the portable loop `$body` compiled as widely as it can.
macro_rules! with_avx512 {
    (fn $name:ident = $fast:ident, $body:path) => {
        fn $name(x: &mut [f32]) {
            widest_simd!(fn portable(x: &mut [f32]) = $body);
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU has AVX-512F, detected just above.
                return unsafe { super::avx512::act::$fast(x) };
            }
            portable(x)
        }
    };
}

with_avx512!(fn quick_gelu_widest = quick_gelu, quick_gelu);
with_avx512!(fn gelu_erf_widest = gelu_erf, gelu_erf);
with_avx512!(fn gelu_tanh_widest = gelu_tanh, gelu_tanh);

/// The in-place function of `act` (vectorised for this CPU).
pub(crate) fn activation_fn(act: Activation) -> fn(&mut [f32]) {
    match act {
        Activation::QuickGelu => quick_gelu_widest,
        Activation::Gelu => gelu_erf_widest,
        Activation::GeluTanh => gelu_tanh_widest,
        Activation::Relu => relu,
    }
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

/// The constants of the approximations below, shared with their AVX-512
/// versions (`super::avx512::act`), which compute the same formulas.
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

/// `x * sigmoid(1.702 x)`, with the constant rounded to f32 as in PyTorch.
#[inline(always)]
fn quick_gelu(x: &mut [f32]) {
    for v in x {
        *v /= 1.0 + exp_approx(-QUICK_GELU * *v);
    }
}

/// Exact GELU: `0.5 x (1 + erf(x / sqrt 2))`.
#[inline(always)]
fn gelu_erf(x: &mut [f32]) {
    for v in x {
        *v = 0.5 * *v * (1.0 + erf_approx(*v * std::f32::consts::FRAC_1_SQRT_2));
    }
}

/// The tanh approximation: `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`,
/// with `tanh(u) = 1 - 2 / (exp(2u) + 1)`.
#[inline(always)]
fn gelu_tanh(x: &mut [f32]) {
    for v in x {
        let u = *v;
        let arg = 2.0 * GELU_TANH_K * (u + GELU_TANH_CUBIC * u * u * u);
        let t = 1.0 - 2.0 / (exp_approx(arg) + 1.0);
        *v = 0.5 * u * (1.0 + t);
    }
}

/// `e^x` without branches or calls, so loops over it vectorise: Cody-Waite
/// reduction `x = n ln2 + r` and Cephes' degree-6 polynomial for `e^r`
/// (its last coefficient, 0.500000012, rounds to 0.5 in f32; relative
/// error about 1e-7, i.e. 1-2 ulp), scaled by `2^n` through the
/// exponent bits. Inputs are clamped to [-87, 88], where `e^x` is a normal
/// f32; below, the result is ~1.6e-38 instead of smaller (no caller can tell:
/// it is added to 1 or multiplied by the input).
#[inline(always)]
pub(crate) fn exp_approx(x: f32) -> f32 {
    // 1.5 * 2^23: adding and subtracting it rounds to the nearest integer.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    // `t`'s low mantissa bits hold `n` (an integer in [-126, 127]) offset by
    // ROUND's bits; taking it from there keeps the loop vectorised (a
    // float-to-int `as` saturates, which LLVM scalarises).
    let t = x * std::f32::consts::LOG2_E + ROUND;
    let n = t - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = EXP_POLY[1..].iter().fold(EXP_POLY[0], |p, &c| p * r + c);
    let er = p * r * r + r + 1.0;
    let n_bits = t.to_bits().wrapping_sub(ROUND.to_bits());
    er * f32::from_bits(n_bits.wrapping_add(127) << 23)
}

/// `erf(x)` by Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7, 1e-6
/// after f32 rounding),
/// vectorisable.
#[inline(always)]
fn erf_approx(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + ERF_P * a);
    let poly = t * ERF_A[1..].iter().fold(ERF_A[0], |p, &c| p * t + c);
    let y = 1.0 - poly * exp_approx(-a * a);
    y.copysign(x)
}

fn relu(x: &mut [f32]) {
    for v in x {
        *v = v.max(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// Each activation (on AVX-512 by its own kernel, with refined
    /// reciprocals; elsewhere the portable loop) against f64 over
    /// [-100, 100], 400k points, in chunks of 37 (the masked tails too).
    /// QuickGELU within 5e-7 relative (a few ulp); the GELUs within 1e-6
    /// relative plus 2e-7 |x| absolute (the erf formula's 1.5e-7 absolute
    /// error, times 0.5 |x|, and 1 - erf's cancellation near 0); all plus
    /// 1e-30 where results underflow.
    #[test]
    fn activations_are_accurate() {
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
        type Reference<'a> = &'a dyn Fn(f32) -> f64;
        let cases: [(Activation, Reference, f64, f64); 3] = [
            (Activation::QuickGelu, &quick, 5e-7, 0.0),
            (Activation::Gelu, &erf, 1e-6, 2e-7),
            (Activation::GeluTanh, &tanh, 1e-6, 2e-7),
        ];
        for (act, want, rel, abs) in cases {
            let mut y = x.clone();
            for c in y.chunks_mut(37) {
                activation_fn(act)(c);
            }
            for (&x, &got) in x.iter().zip(&y) {
                let want = want(x);
                let err = (got as f64 - want).abs();
                let tol = rel * want.abs() + abs * (x as f64).abs() + 1e-30;
                assert!(err <= tol, "{act:?}({x}): {got} vs {want}");
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
