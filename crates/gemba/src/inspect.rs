//! Visual inspection: the image-model loader the server installs in the engine (gemba-nn's conv
//! VAE behind `gemba_engine::inspection::ImageModels`), and `gemba inspect DIR`, which posts every
//! image of a folder to `POST /api/v1/inspect`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Args;
use gemba_engine::inspection::{ImageInput, ImageModel, ImageModels, ImageScore, InspectError};
use gemba_nn::{InputSpec, NnError, Vae};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

/// Loads registered conv VAEs (kind `vae` with an image input) for the engine.
pub struct NnImageModels;

struct NnImageModel {
    vae: Vae,
    input: ImageInput,
}

fn model_error(model: &str, e: NnError) -> InspectError {
    InspectError::Model(format!("{model}: {e}"))
}

impl ImageModels for NnImageModels {
    fn load(&self, model: &str, artifact_json: &str) -> Result<Arc<dyn ImageModel>, InspectError> {
        let kind = gemba_nn::artifact_kind(artifact_json).unwrap_or_default();
        if kind != "vae" {
            return Err(InspectError::WrongModelKind(format!(
                "model {model} is of kind {kind:?}; inspection needs a conv VAE (kind \"vae\") trained on images"
            )));
        }
        let vae = Vae::from_json(artifact_json).map_err(|e| model_error(model, e))?;
        let InputSpec::Image {
            channels,
            height,
            width,
        } = vae.input
        else {
            return Err(InspectError::WrongModelKind(format!(
                "model {model} is a VAE trained on a table ({} features), not on images; train one on a folder of images (gemba train --model vae --data DIR)",
                vae.dim()
            )));
        };
        Ok(Arc::new(NnImageModel {
            vae,
            input: ImageInput {
                channels,
                height,
                width,
            },
        }))
    }
}

impl ImageModel for NnImageModel {
    fn input(&self) -> ImageInput {
        self.input
    }

    fn threshold(&self) -> f64 {
        self.vae.threshold.value
    }

    fn inspect(&self, image: &[u8]) -> Result<ImageScore, InspectError> {
        let ImageInput {
            channels,
            height,
            width,
        } = self.input;
        // Decoders are hardened, but an upload must never take a worker down: a panic is a bad image.
        let decoded = std::panic::catch_unwind(|| {
            gemba_nn::images::decode_image(image, channels, height, width)
        })
        .map_err(|_| InspectError::BadImage("the decoder failed on these bytes".into()))?;
        let (chw, img) = decoded.map_err(|e| match e {
            NnError::Decode(m) => InspectError::BadImage(m),
            e => InspectError::Model(e.to_string()),
        })?;
        let (score, map) = self
            .vae
            .score_image(&chw)
            .map_err(|e| InspectError::Model(e.to_string()))?;
        let heat_map_png = gemba_nn::images::heat_map_png(&map, height, width, &img)
            .map_err(|e| InspectError::Model(e.to_string()))?;
        Ok(ImageScore {
            score,
            heat_map_png,
            heat_max: f64::from(map.iter().copied().fold(0f32, f32::max)),
        })
    }
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Folder with the images (.png, .jpg, .jpeg), inspected in name order.
    pub dir: PathBuf,
    /// Registered model: NAME (its latest version) or NAME@VERSION.
    #[arg(long)]
    pub model: String,
    /// Lot the parts belong to.
    #[arg(long)]
    pub lot: Option<String>,
    /// Asset path of the machine (camera station) the images were taken at.
    #[arg(long)]
    pub machine: Option<String>,
    /// Use each file's name without extension as the part id.
    #[arg(long)]
    pub part_from_name: bool,
    /// Save each heat map as DIR/<file name>.heatmap.png.
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[arg(long, default_value = "http://127.0.0.1:8080", env = "GEMBA_SERVER")]
    pub server: String,
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|x| x.to_str()) {
        Some(x) if x.eq_ignore_ascii_case("png") => "image/png",
        _ => "image/jpeg",
    }
}

/// Posts one image; returns the server's answer.
fn inspect_one(
    agent: &ureq::Agent,
    args: &InspectArgs,
    url: &str,
    file: &Path,
) -> anyhow::Result<Value> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let mut req = agent
        .post(url)
        .query("model", &args.model)
        .header("content-type", content_type(file));
    if let Some(l) = &args.lot {
        req = req.query("lot", l);
    }
    if let Some(m) = &args.machine {
        req = req.query("machine", m);
    }
    if args.part_from_name
        && let Some(stem) = file.file_stem().and_then(|s| s.to_str())
    {
        req = req.query("part", stem);
    }
    let resp = req
        .send(&bytes[..])
        .with_context(|| format!("cannot reach {url}; is `gemba serve` running? (--server)"))?;
    let text = gemba_lab::client::reply(resp)?;
    serde_json::from_str(&text)
        .with_context(|| format!("{url} answered with something other than JSON"))
}

/// Fetches a heat map into `out`.
fn save_heat_map(
    agent: &ureq::Agent,
    base: &str,
    v: &Value,
    out: &Path,
    file: &Path,
) -> anyhow::Result<()> {
    let url = format!("{base}{}", v["heat_map_url"].as_str().unwrap_or_default());
    let mut resp = agent
        .get(&url)
        .call()
        .with_context(|| format!("cannot reach {url}"))?;
    if !resp.status().is_success() {
        bail!("{url} answered {}", resp.status());
    }
    let png = resp
        .body_mut()
        .with_config()
        .limit(64 << 20)
        .read_to_vec()
        .context("cannot read the heat map")?;
    let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("image");
    let path = out.join(format!("{name}.heatmap.png"));
    std::fs::write(&path, png).with_context(|| format!("cannot write {}", path.display()))
}

pub fn run(args: InspectArgs) -> anyhow::Result<()> {
    let files = gemba_nn::images::list_images(&args.dir)?;
    if let Some(out) = &args.out {
        std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    }
    let base = args.server.trim_end_matches('/').to_owned();
    let url = format!("{base}/api/v1/inspect");
    let agent = gemba_lab::client::agent();
    let bar = ProgressBar::new(files.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut rows = Vec::new();
    let mut failed: Vec<(String, String)> = Vec::new();
    let (mut fails, mut model) = (0usize, String::new());
    for file in &files {
        let name = file.file_name().map_or_else(
            || file.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        bar.set_message(name.clone());
        match inspect_one(&agent, &args, &url, file) {
            Ok(v) => {
                let verdict = v["verdict"].as_str().unwrap_or("?").to_owned();
                if verdict == "fail" {
                    fails += 1;
                }
                if let Some(m) = v["model"].as_str() {
                    m.clone_into(&mut model);
                }
                if let Some(out) = &args.out
                    && let Err(e) = save_heat_map(&agent, &base, &v, out, file)
                {
                    failed.push((name.clone(), format!("heat map: {e:#}")));
                }
                rows.push(vec![
                    name,
                    format!("{:.4}", v["score"].as_f64().unwrap_or(f64::NAN)),
                    format!("{:.4}", v["threshold"].as_f64().unwrap_or(f64::NAN)),
                    verdict,
                    v["id"].to_string(),
                ]);
            }
            Err(e) => failed.push((name, format!("{e:#}"))),
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let n = rows.len();
    print!(
        "{}",
        crate::query::table(&["file", "score", "threshold", "verdict", "id"], rows)
    );
    println!(
        "{n} inspected with {model}: {fails} failed, fail rate {:.1} %{}",
        if n == 0 {
            0.0
        } else {
            100.0 * fails as f64 / n as f64
        },
        if failed.is_empty() {
            String::new()
        } else {
            format!("; {} could not be inspected", failed.len())
        }
    );
    for (file, why) in &failed {
        eprintln!("{file}: {why}");
    }
    if !failed.is_empty() {
        bail!(
            "{} of {} files could not be inspected",
            failed.len(),
            files.len()
        );
    }
    Ok(())
}
