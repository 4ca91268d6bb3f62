//! MLP activations, elementwise and in place.

use crate::config::Activation;

/// Applies `act` to every element of `x`, in parallel for large inputs.
pub fn apply_activation(act: Activation, x: &mut [f32]) {
    use rayon::prelude::*;
    const CHUNK: usize = 16 * 1024;
    let f: fn(&mut [f32]) = match act {
        Activation::QuickGelu => quick_gelu,
        Activation::Gelu => gelu_erf,
        Activation::GeluTanh => gelu_tanh,
        Activation::Relu => relu,
    };
    if x.len() <= CHUNK {
        f(x)
    } else {
        x.par_chunks_mut(CHUNK).for_each(f)
    }
}

/// `x * sigmoid(1.702 x)`, with the constant rounded to f32 as in PyTorch.
fn quick_gelu(x: &mut [f32]) {
    for v in x {
        *v *= 1.0 / (1.0 + (-1.702f32 * *v).exp());
    }
}

/// Exact GELU: `0.5 x (1 + erf(x / sqrt 2))`.
fn gelu_erf(x: &mut [f32]) {
    for v in x {
        *v = 0.5 * *v * (1.0 + libm::erff(*v * std::f32::consts::FRAC_1_SQRT_2));
    }
}

/// The tanh approximation: `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`.
fn gelu_tanh(x: &mut [f32]) {
    const K: f32 = 0.797_884_6; // sqrt(2 / pi)
    for v in x {
        let u = *v;
        *v = 0.5 * u * (1.0 + (K * (u + 0.044715 * u * u * u)).tanh());
    }
}

fn relu(x: &mut [f32]) {
    for v in x {
        *v = v.max(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            let mut v = x.to_vec();
            apply_activation(act, &mut v);
            for (got, want) in v.iter().zip(expected) {
                assert!((got - want).abs() < 1e-6, "{act:?}: {got} vs {want}");
            }
        }
    }
}
