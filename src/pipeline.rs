//! The application-level handle: a model with its processor, giving
//! embeddings, similarities and zero-shot labels for texts and images.
//!
//! Batches of any size are processed in chunks (`text_batch_size` texts,
//! `image_batch_size` images at a time), so peak memory does not grow with
//! the number of inputs. A pipeline may own a thread pool of a fixed size
//! ([`Pipeline::with_threads`]); otherwise it runs on the caller's rayon pool.

use crate::error::{Error, Result};
use crate::image_processing::RgbImage8;
use crate::kernels::{l2_normalize_rows, softmax_rows};
use crate::model::CLIPModel;
use crate::processor::CLIPProcessor;
use crate::tensor::Tensor;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// The prompt templates `clip tag` and the C ABI use by default: a small
/// ensemble in the style of the CLIP paper's (also the demo model's training
/// templates).
pub const DEFAULT_TEMPLATES: &[&str] =
    &["a photo of a {}.", "a picture of a {}.", "an image of a {}.", "a drawing of a {}."];

/// A rayon pool whose threads are joined when it is dropped (rayon's own
/// pools let their threads exit on their own, later).
struct OwnPool {
    pool: Option<rayon::ThreadPool>,
    threads: Arc<Mutex<Vec<std::thread::JoinHandle<()>>>>,
}

impl OwnPool {
    fn new(threads: usize) -> Result<Self> {
        let handles = Arc::new(Mutex::new(Vec::new()));
        let spawned = handles.clone();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("clip-{i}"))
            .spawn_handler(move |thread| {
                let mut b = std::thread::Builder::new();
                if let Some(name) = thread.name() {
                    b = b.name(name.to_owned());
                }
                if let Some(size) = thread.stack_size() {
                    b = b.stack_size(size);
                }
                let handle = b.spawn(|| thread.run())?;
                spawned.lock().unwrap_or_else(|e| e.into_inner()).push(handle);
                Ok(())
            })
            .build()
            .map_err(|e| Error::internal(format!("cannot start {threads} threads: {e}")))?;
        Ok(OwnPool { pool: Some(pool), threads: handles })
    }

    fn get(&self) -> &rayon::ThreadPool {
        self.pool.as_ref().expect("the pool lives until the drop")
    }
}

impl Drop for OwnPool {
    fn drop(&mut self) {
        let Some(pool) = self.pool.take() else { return };
        // Dropped from one of its own threads (a job owning the pipeline):
        // that thread cannot join itself; let them all exit on their own.
        let inside = pool.current_thread_index().is_some();
        drop(pool); // tells the threads to exit once idle
        if inside {
            return;
        }
        let handles = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for h in handles {
            let _ = h.join();
        }
    }
}

/// A model and its processor, with chunked batch entry points.
pub struct Pipeline {
    model: CLIPModel,
    processor: CLIPProcessor,
    pool: Option<OwnPool>,
    /// Texts encoded per forward pass (bounds memory); default 256.
    pub text_batch_size: usize,
    /// Images encoded per forward pass (bounds memory); default 16.
    pub image_batch_size: usize,
}

impl Pipeline {
    /// A pipeline over a loaded model and processor.
    pub fn new(model: CLIPModel, processor: CLIPProcessor) -> Self {
        Pipeline { model, processor, pool: None, text_batch_size: 256, image_batch_size: 16 }
    }

    /// Loads a Hugging Face model directory: weights, config, tokenizer
    /// (built-in vocabulary if none) and preprocessing config.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        Ok(Self::new(CLIPModel::from_pretrained(dir)?, CLIPProcessor::from_dir(dir)?))
    }

    /// Runs every call on an own pool of `threads` threads (0 = one per core).
    ///
    /// Dropping the pipeline joins these threads: when the drop returns, none
    /// of them runs (a C host may unload the library right after
    /// `clip_model_free`).
    pub fn with_threads(mut self, threads: usize) -> Result<Self> {
        self.pool = Some(OwnPool::new(threads)?);
        Ok(self)
    }

    /// Threads a call uses.
    pub fn num_threads(&self) -> usize {
        self.pool
            .as_ref()
            .map_or_else(rayon::current_num_threads, |p| p.get().current_num_threads())
    }

    fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        match &self.pool {
            Some(pool) => pool.get().install(f),
            None => f(),
        }
    }

    /// Runs `f` where the pipeline's own calls run: on its thread pool (see
    /// [`Pipeline::with_threads`]) if it has one, else on the caller's. For
    /// calls to [`Pipeline::model`] that should honour the thread count, e.g.
    /// `get_text_features` on token ids (the C ABI's `clip_encode_token_ids`).
    pub fn install<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        self.run(f)
    }

    /// The model.
    pub fn model(&self) -> &CLIPModel {
        &self.model
    }

    /// Sets how the model's linear layers compute (see [`crate::Precision`]).
    pub fn set_precision(&mut self, precision: crate::Precision) {
        self.model.set_precision(precision)
    }

    /// The processor.
    pub fn processor(&self) -> &CLIPProcessor {
        &self.processor
    }

    /// Width of the embeddings.
    pub fn embedding_dim(&self) -> usize {
        self.model.config().projection_dim
    }

    /// Texts longer than this many tokens (BOS and EOS included) are truncated.
    pub fn context_length(&self) -> usize {
        self.model.config().text_config.max_position_embeddings
    }

    /// `get_text_features` for any number of texts: `[texts, dim]`, not
    /// normalised. Over-long texts are truncated as transformers does.
    pub fn encode_texts(&self, texts: &[&str]) -> Result<Tensor> {
        self.run(|| {
            let mut parts = vec![Tensor::zeros(vec![0, self.embedding_dim()])?];
            for chunk in texts.chunks(self.text_batch_size.max(1)) {
                let enc = self.processor.tokenize(chunk, self.context_length())?;
                parts
                    .push(self.model.get_text_features(&enc.input_ids, Some(&enc.attention_mask))?);
            }
            Tensor::concat(&parts)
        })
    }

    /// `get_image_features` for decoded images: `[images, dim]`, not normalised.
    pub fn encode_images(&self, images: &[RgbImage8]) -> Result<Tensor> {
        self.run(|| {
            let mut parts = vec![Tensor::zeros(vec![0, self.embedding_dim()])?];
            for chunk in images.chunks(self.image_batch_size.max(1)) {
                let px = self.processor.process_images(chunk)?;
                parts.push(self.model.get_image_features(&px)?);
            }
            Tensor::concat(&parts)
        })
    }

    /// Embeds preprocessed images `[3, H, W]` given one by one (errors kept
    /// per item), a chunk at a time.
    fn encode_each(&self, items: Vec<Result<Tensor>>) -> Vec<Result<Vec<f32>>> {
        let mut out: Vec<Result<Vec<f32>>> = Vec::with_capacity(items.len());
        let mut ok_idx = Vec::new();
        let mut ok = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            match item {
                Ok(t) => {
                    ok_idx.push(i);
                    ok.push(t);
                    out.push(Ok(Vec::new()));
                }
                Err(e) => out.push(Err(e)),
            }
        }
        if ok.is_empty() {
            return out;
        }
        let features = Tensor::stack(&ok).and_then(|px| self.model.get_image_features(&px));
        match features {
            Ok(f) => {
                for (row, i) in f.rows().zip(ok_idx) {
                    out[i] = Ok(row.to_vec());
                }
            }
            Err(e) => {
                let msg = e.to_string();
                for i in ok_idx {
                    out[i] = Err(Error::new(e.kind(), msg.clone()));
                }
            }
        }
        out
    }

    /// Decodes, preprocesses and embeds image files, one result per path in
    /// input order: a file that cannot be read or decoded gets its own error
    /// (naming it) and does not stop the others. `on_progress` is called
    /// with the number of files done after each chunk.
    pub fn encode_image_files<P: AsRef<Path> + Sync>(
        &self,
        paths: &[P],
        mut on_progress: impl FnMut(usize) + Send,
    ) -> Vec<Result<Vec<f32>>> {
        self.run(|| {
            let mut out = Vec::with_capacity(paths.len());
            for chunk in paths.chunks(self.image_batch_size.max(1)) {
                let items = self.processor.image_processor.load_and_preprocess(chunk);
                out.extend(self.encode_each(items));
                on_progress(out.len());
            }
            out
        })
    }

    /// As [`Pipeline::encode_image_files`] for encoded images in memory.
    pub fn encode_image_bytes(&self, images: &[&[u8]]) -> Vec<Result<Vec<f32>>> {
        use rayon::prelude::*;
        self.run(|| {
            let mut out = Vec::with_capacity(images.len());
            for chunk in images.chunks(self.image_batch_size.max(1)) {
                let items: Vec<Result<Tensor>> = chunk
                    .par_iter()
                    .map(|b| self.processor.image_processor.preprocess_bytes(b))
                    .collect();
                out.extend(self.encode_each(items));
            }
            out
        })
    }

    /// One L2-normalised embedding per label, `[labels, dim]`: each template
    /// (with `{}` replaced by the label) is encoded and normalised, the
    /// results are averaged and normalised again (the CLIP paper's prompt
    /// ensembling).
    pub fn label_embeddings(&self, labels: &[&str], templates: &[&str]) -> Result<Tensor> {
        if labels.is_empty() {
            return Err(Error::invalid("no labels given"));
        }
        if templates.is_empty() {
            return Err(Error::invalid("no prompt templates given"));
        }
        if let Some(t) = templates.iter().find(|t| !t.contains("{}")) {
            return Err(Error::invalid(format!("template \"{t}\" has no {{}} for the label")));
        }
        let d = self.embedding_dim();
        let prompts: Vec<String> = labels
            .iter()
            .flat_map(|l| templates.iter().map(move |t| t.replacen("{}", l, 1)))
            .collect();
        let refs: Vec<&str> = prompts.iter().map(String::as_str).collect();
        let mut feats = self.encode_texts(&refs)?;
        l2_normalize_rows(feats.data_mut(), d);
        let k = templates.len();
        let mut out = vec![0.0f32; labels.len() * d];
        for (l, o) in out.chunks_mut(d).enumerate() {
            for row in feats.data()[l * k * d..(l + 1) * k * d].chunks(d) {
                for (a, v) in o.iter_mut().zip(row) {
                    *a += v / k as f32;
                }
            }
        }
        l2_normalize_rows(&mut out, d);
        Tensor::new(vec![labels.len(), d], out)
    }

    /// Zero-shot probabilities `[images, labels]`: the softmax over labels of
    /// `exp(logit_scale) * cos(image, label)`, for image features from the
    /// `encode_*` calls and label embeddings from [`Pipeline::label_embeddings`].
    pub fn zero_shot(&self, image_features: &Tensor, label_embeddings: &Tensor) -> Result<Tensor> {
        let mut logits = self.model.logits_from_features(image_features, label_embeddings)?;
        let n = label_embeddings.shape()[0];
        softmax_rows(logits.data_mut(), n);
        Ok(logits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_runs_on_the_own_pool() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/models/tiny-quickgelu");
        let p = Pipeline::from_dir(dir).unwrap().with_threads(3).unwrap();
        assert_eq!(p.install(rayon::current_num_threads), 3);
        assert_eq!(p.num_threads(), 3);
    }

    /// The pool's threads are gone when the drop returns: joined, not left
    /// to exit later (each thread's name is seen by the OS until it exits).
    #[test]
    fn drop_joins_the_own_pool() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/models/tiny-quickgelu");
        let count = || {
            let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return None };
            let names =
                tasks.filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok());
            Some(names.filter(|n| n.trim() == "clip-joined-7").count())
        };
        let mut p = Pipeline::from_dir(dir).unwrap();
        p.pool = Some(OwnPool::new(1).unwrap());
        // Renamed so that other tests' pools running meanwhile do not count.
        p.install(|| {
            let _ = std::fs::write("/proc/thread-self/comm", "clip-joined-7");
        });
        if count() != Some(1) {
            return; // no /proc (not Linux): nothing to observe
        }
        drop(p);
        // Natively one read. Under qemu-user the join returns while qemu's
        // host thread is still exiting; scripts/cross-aarch64.sh sets
        // CLIP_TEST_THREAD_GRACE_MS so that the count may catch up.
        let grace_ms: u32 = std::env::var("CLIP_TEST_THREAD_GRACE_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut waited = 0;
        while count() != Some(0) && waited < grace_ms {
            std::thread::sleep(std::time::Duration::from_millis(1));
            waited += 1;
        }
        assert_eq!(count(), Some(0), "a pool thread outlived the pipeline");
    }
}
