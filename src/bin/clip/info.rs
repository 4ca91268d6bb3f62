//! `clip info`: what a model is and how it will run.

use crate::common::ModelArg;
use clip::kernels::Kernel;
use clip::Result;

/// Show the architecture, sizes, weight dtypes and memory, preprocessing
/// settings and tokenizer source of a model, and which kernel computes
/// (CLIP_KERNEL=avx512|avx2|neon|gemm forces one this CPU supports).
#[derive(clap::Args, Debug)]
pub struct InfoArgs {
    #[command(flatten)]
    model: ModelArg,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs `clip info`.
pub fn run(args: &InfoArgs) -> Result<()> {
    let pipeline = args.model.load()?;
    let model = pipeline.model();
    let c = model.config();
    let (t, v) = (&c.text_config, &c.vision_config);
    let w = model.weights_summary();
    let pp = &pipeline.processor().image_processor.config;
    let tok = &pipeline.processor().tokenizer;
    // Loading succeeded, so the kernel choice is valid.
    let kernel = clip::kernels::active_kernel()?;
    let supported: Vec<&str> = Kernel::supported_all().iter().map(|k| k.name()).collect();
    let int8 = clip::Precision::int8_dot();
    let quantized = w.dtypes.contains_key("I8");
    let precision = match model.precision() {
        clip::Precision::Int8 => "int8",
        _ => "full",
    };
    let out = serde_json::json!({
        "model": args.model.describe(),
        "architecture": "CLIPModel",
        "weight_naming": model.naming().describe(),
        "projection_dim": c.projection_dim,
        "logit_scale": model.logit_scale().exp(),
        "text": {
            "hidden_size": t.hidden_size, "layers": t.num_hidden_layers, "heads": t.num_attention_heads,
            "intermediate_size": t.intermediate_size, "context_length": t.max_position_embeddings,
            "vocab_size": t.vocab_size, "hidden_act": t.hidden_act,
            "pooling": t.pooling.name(), "layer_scale": t.layer_scale,
            "projection": t.text_projection,
        },
        "vision": {
            "hidden_size": v.hidden_size, "layers": v.num_hidden_layers, "heads": v.num_attention_heads,
            "intermediate_size": v.intermediate_size, "image_size": v.image_size, "patch_size": v.patch_size,
            "hidden_act": v.hidden_act, "pre_layer_norm": v.pre_layer_norm,
            "layer_scale": v.layer_scale,
        },
        "weights": {
            "tensors": w.tensors, "dtypes": w.dtypes,
            "mapped_bytes": w.in_place_bytes, "copied_bytes": w.copied_bytes,
        },
        "preprocessing": serde_json::to_value(pp).unwrap_or(serde_json::Value::Null),
        "tokenizer": { "source": tok.source(), "vocab_size": tok.vocab_size() },
        "threads": pipeline.num_threads(),
        "precision": precision,
        "kernel": {
            "active": kernel.name(), "supported": supported,
            "int8": int8.is_some(), "int8_dot": int8.map(|d| d.name()),
        },
    });
    if args.json {
        println!("{out}");
        return Ok(());
    }
    let mb = |b: usize| b as f64 / (1024.0 * 1024.0);
    println!("model:          {}", args.model.describe());
    println!("architecture:   CLIPModel ({} weight names)", model.naming().describe());
    println!(
        "embedding:      {} dims, logit scale {:.2}",
        c.projection_dim,
        model.logit_scale().exp()
    );
    println!(
        "text tower:     {} layers, width {}, {} heads, MLP {} ({}), context {}, vocab {}",
        t.num_hidden_layers,
        t.hidden_size,
        t.num_attention_heads,
        t.intermediate_size,
        t.hidden_act,
        t.max_position_embeddings,
        t.vocab_size
    );
    println!(
        "vision tower:   {} layers, width {}, {} heads, MLP {} ({}), {}px images, {}px patches",
        v.num_hidden_layers,
        v.hidden_size,
        v.num_attention_heads,
        v.intermediate_size,
        v.hidden_act,
        v.image_size,
        v.patch_size
    );
    let mut variants = Vec::new();
    match (t.layer_scale, v.layer_scale) {
        (true, true) => variants.push("LayerScale in both towers".to_string()),
        (true, false) => variants.push("LayerScale in the text tower".into()),
        (false, true) => variants.push("LayerScale in the vision tower".into()),
        (false, false) => {}
    }
    if !v.pre_layer_norm {
        variants.push("no ln_pre".into());
    }
    if t.pooling != clip::config::TextPooling::Eos {
        variants.push(format!("text pooled by {}", t.pooling.name()));
    }
    if !t.text_projection {
        variants.push("no text projection".into());
    }
    if !variants.is_empty() {
        println!("variants:       {}", variants.join(", "));
    }
    let dtypes: Vec<String> = w.dtypes.iter().map(|(k, n)| format!("{n} {k}")).collect();
    println!(
        "weights:        {} tensors ({}); {:.1} MiB used in place (mapped, not copied), {:.2} MiB copied",
        w.tensors,
        dtypes.join(", "),
        mb(w.in_place_bytes),
        mb(w.copied_bytes)
    );
    println!("preprocessing:  {}", serde_json::to_string(pp).unwrap_or_default());
    println!("tokenizer:      {} ({} tokens)", tok.source(), tok.vocab_size());
    println!("threads:        {}", pipeline.num_threads());
    println!(
        "precision:      {precision}{}",
        if quantized { " (a quantized checkpoint: int8 matrices)" } else { "" }
    );
    let forced = std::env::var_os(clip::kernels::KERNEL_ENV).is_some_and(|v| !v.is_empty());
    println!(
        "kernel:         {kernel} ({}; int8 products: {}; this CPU runs: {})",
        if forced { "forced by CLIP_KERNEL" } else { "detected" },
        int8.map_or("scalar", |d| d.name()),
        supported.join(", ")
    );
    Ok(())
}
