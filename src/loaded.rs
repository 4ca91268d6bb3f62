//! What every model class holds beside its modules: the summary of the
//! weights they keep resident and the precision their linear layers share;
//! how they are loaded; and the accessors the classes share.

use crate::error::Result;
use crate::layers::{LayerBuilder, PrecisionHandle};
use crate::weights::{Loader, WeightStore, WeightsSummary};

/// A model class's modules, loaded from one checkpoint.
pub(crate) struct Loaded<M> {
    pub(crate) modules: M,
    weights: WeightsSummary,
    precision: PrecisionHandle,
}

impl<M> Loaded<M> {
    /// Builds the modules from `store` with `build`, then checks that every
    /// parameter asked for was found (naming the missing ones otherwise).
    pub(crate) fn load(
        store: &WeightStore,
        build: impl FnOnce(&LayerBuilder<'_>) -> Result<M>,
    ) -> Result<Self> {
        let loader = Loader::new(store)?;
        let layers = LayerBuilder::new(&loader);
        let modules = build(&layers)?;
        let precision = layers.precision();
        if store.is_quantized() {
            // Full precision would widen the int8 matrices to f32 panels.
            precision.set(crate::Precision::Int8);
        }
        let weights = loader.finish()?;
        Ok(Loaded { modules, weights, precision })
    }

    /// What the modules keep resident.
    pub(crate) fn weights(&self) -> &WeightsSummary {
        &self.weights
    }

    /// The precision handle the linear layers share.
    pub(crate) fn precision(&self) -> &PrecisionHandle {
        &self.precision
    }
}

/// `weights_summary`, `precision` and `set_precision` for model classes
/// whose field `0` is a [`Loaded`].
macro_rules! model_class_accessors {
    ($($t:ty),*) => {$(
        impl $t {
            /// What the model keeps resident: bytes used in place from the
            /// mapping vs copied.
            pub fn weights_summary(&self) -> &$crate::weights::WeightsSummary {
                self.0.weights()
            }

            /// How the linear layers compute (default
            /// [`Precision::Full`](crate::Precision::Full);
            /// [`Precision::Int8`](crate::Precision::Int8) for a quantized
            /// checkpoint).
            pub fn precision(&self) -> $crate::Precision {
                self.0.precision().get()
            }

            /// Switches every linear layer of the transformer layers and
            /// projections to `precision` (the patch embedding stays full
            /// precision). Int8 weights are quantised on their first use and
            /// kept beside the full-precision panels, so switching back and
            /// forth costs nothing after the first pass. On a quantized
            /// checkpoint `Full` computes in f32 with the int8 weights'
            /// values, widened to f32 panels on first use (4x their memory).
            pub fn set_precision(&mut self, precision: $crate::Precision) {
                self.0.precision().set(precision)
            }
        }
    )*};
}
pub(crate) use model_class_accessors;
