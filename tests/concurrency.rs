//! One model shared by many threads gives results identical (to the bit) to
//! a serial run: text and image embeddings, zero-shot probabilities, file
//! loading, on the caller's rayon pool and on a pipeline's own pool. The
//! jobs differ in size and every thread runs them in its own order, so a
//! result that depended on what ran before (the encoder reuses its buffers
//! between passes) would differ from the serial run.

mod common;

use clip::image_processing::RgbImage8;
use clip::{CLIPModel, Pipeline, Tensor};
use std::sync::{Arc, Barrier};

const THREADS: usize = 8;
const ROUNDS: usize = 6;

#[test]
fn shared_types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Pipeline>();
    check::<CLIPModel>();
    check::<clip::CLIPTextModel>();
    check::<clip::CLIPVisionModel>();
    check::<clip::CLIPForImageClassification>();
    check::<clip::CLIPProcessor>();
    check::<clip::tokenizer::CLIPTokenizer>();
    check::<clip::image_processing::CLIPImageProcessor>();
    check::<clip::weights::WeightStore>();
}

/// One unit of work and its result, compared bit for bit.
#[derive(Clone)]
enum Job {
    Texts(Vec<String>),
    Images(Vec<RgbImage8>),
    ZeroShot(Vec<RgbImage8>, Vec<String>),
    Bytes(Vec<Vec<u8>>),
}

fn bits(t: &Tensor) -> Vec<u32> {
    t.data().iter().map(|v| v.to_bits()).collect()
}

fn run(p: &Pipeline, job: &Job) -> Vec<u32> {
    match job {
        Job::Texts(t) => {
            let refs: Vec<&str> = t.iter().map(String::as_str).collect();
            bits(&p.encode_texts(&refs).unwrap())
        }
        Job::Images(i) => bits(&p.encode_images(i).unwrap()),
        Job::ZeroShot(i, labels) => {
            let refs: Vec<&str> = labels.iter().map(String::as_str).collect();
            let emb = p.label_embeddings(&refs, clip::DEFAULT_TEMPLATES).unwrap();
            let feats = p.encode_images(i).unwrap();
            bits(&p.zero_shot(&feats, &emb).unwrap())
        }
        Job::Bytes(b) => {
            let refs: Vec<&[u8]> = b.iter().map(Vec::as_slice).collect();
            p.encode_image_bytes(&refs)
                .into_iter()
                .flat_map(|r| match r {
                    Ok(v) => v.iter().map(|x| x.to_bits()).collect(),
                    Err(e) => vec![e.kind() as u32 + 0xdead_0000],
                })
                .collect()
        }
    }
}

fn png(img: &RgbImage8) -> Vec<u8> {
    let buf =
        image::RgbImage::from_raw(img.width() as u32, img.height() as u32, img.as_raw().into())
            .unwrap();
    let mut out = std::io::Cursor::new(Vec::new());
    buf.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

fn jobs() -> Vec<Job> {
    let words = ["cat", "dog", "a red car", "two birds on a wire", "", "the sea at night"];
    let mut jobs = Vec::new();
    for k in 0..6 {
        let texts: Vec<String> =
            (0..5 + 7 * k).map(|i| format!("{} {i}", words[(i + k) % words.len()])).collect();
        jobs.push(Job::Texts(texts));
        let images: Vec<RgbImage8> =
            (0..1 + 3 * k).map(|i| common::test_image(20 + 9 * i, 30 + 5 * k, i + k)).collect();
        jobs.push(Job::Images(images.clone()));
        let labels: Vec<String> = words[..2 + k % 4].iter().map(|w| w.to_string()).collect();
        jobs.push(Job::ZeroShot(images[..1 + k % 3.min(images.len())].to_vec(), labels));
        let mut bytes: Vec<Vec<u8>> = images.iter().take(4).map(png).collect();
        bytes.push(b"not an image".to_vec());
        jobs.push(Job::Bytes(bytes));
    }
    jobs
}

fn stress(p: Arc<Pipeline>) {
    let jobs = Arc::new(jobs());
    let serial: Arc<Vec<Vec<u32>>> = Arc::new(jobs.iter().map(|j| run(&p, j)).collect());
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (p, jobs, serial, barrier) =
                (p.clone(), jobs.clone(), serial.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                for round in 0..ROUNDS {
                    // Every thread walks the jobs in its own order.
                    for k in 0..jobs.len() {
                        let j = (k * (2 * t + 1) + round + t) % jobs.len();
                        let got = run(&p, &jobs[j]);
                        assert!(got == serial[j], "thread {t}, round {round}: job {j} differs");
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("a worker thread panicked");
    }
}

#[test]
fn eight_threads_on_the_callers_pool_match_serial() {
    stress(Arc::new(common::tiny_pipeline()));
}

#[test]
fn eight_threads_on_a_shared_own_pool_match_serial() {
    let mut p = common::tiny_pipeline().with_threads(3).unwrap();
    p.text_batch_size = 4;
    p.image_batch_size = 2;
    stress(Arc::new(p));
}

#[test]
fn models_shared_without_a_pipeline() {
    // The bare model API from many threads, with per-thread random batches.
    let model = Arc::new(CLIPModel::from_pretrained(common::model_dir("tiny-quickgelu")).unwrap());
    let ids: Vec<Vec<Vec<u32>>> = (0..16)
        .map(|k| (0..1 + k % 5).map(|i| vec![998, (7 * i + k) as u32 % 990, 13, 999]).collect())
        .collect();
    let px: Vec<Tensor> = (0..8)
        .map(|k| {
            let data =
                (0..(1 + k % 3) * 3 * 32 * 32).map(|i| ((i * 7 + k) % 19) as f32 / 9.0 - 1.0);
            Tensor::new(vec![1 + k % 3, 3, 32, 32], data.collect()).unwrap()
        })
        .collect();
    let text_ref: Vec<Vec<u32>> =
        ids.iter().map(|b| bits(&model.get_text_features(b, None).unwrap())).collect();
    let image_ref: Vec<Vec<u32>> =
        px.iter().map(|p| bits(&model.get_image_features(p).unwrap())).collect();
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (model, ids, px, text_ref, image_ref) = (&model, &ids, &px, &text_ref, &image_ref);
            s.spawn(move || {
                for r in 0..ROUNDS * 4 {
                    let i = (t * 5 + r * 3) % ids.len();
                    assert!(bits(&model.get_text_features(&ids[i], None).unwrap()) == text_ref[i]);
                    let j = (t + r) % px.len();
                    assert!(bits(&model.get_image_features(&px[j]).unwrap()) == image_ref[j]);
                }
            });
        }
    });
}
