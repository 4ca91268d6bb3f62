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

    #[test]
    fn known_values() {
        // Reference values from torch.nn.functional (f64, rounded).
        let mut q = vec![-1.0, 0.0, 1.0];
        apply_activation(Activation::QuickGelu, &mut q);
        assert!(
            (q[0] - -0.154_465_6).abs() < 1e-6 && q[1] == 0.0 && (q[2] - 0.845_534_4).abs() < 1e-6
        );
        let mut g = vec![-1.0, 1.0, 3.0];
        apply_activation(Activation::Gelu, &mut g);
        assert!((g[0] - -0.158_655_25).abs() < 1e-6 && (g[1] - 0.841_344_75).abs() < 1e-6);
        assert!((g[2] - 2.995_950_2).abs() < 1e-6);
        let mut t = vec![1.0];
        apply_activation(Activation::GeluTanh, &mut t);
        assert!((t[0] - 0.841_192).abs() < 1e-6);
    }
}
