//! Reading image folders (PNG, JPEG) into an [`ImageSet`]: decoded, converted to 1 (luma) or 3
//! (RGB) channels, resized (triangle filter) to H × W, scaled to [0, 1]. The only file IO of the
//! crate besides checkpoints. The same conversion decodes uploaded bytes ([`decode_image`]), so a
//! model scores an upload exactly as it saw its training images; [`heat_map_png`] draws a conv
//! VAE's per-pixel error over the image.

use std::path::{Path, PathBuf};

use image::imageops::FilterType;
use image::{DynamicImage, GrayImage, ImageFormat, RgbImage};

use crate::data::ImageSet;
use crate::error::{NnError, Result, bad_param};

/// File extensions read as images (case-insensitive).
pub const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg"];

/// The `.png`, `.jpg` and `.jpeg` files of a folder, sorted by name.
pub fn list_images(dir: &Path) -> Result<Vec<PathBuf>> {
    let rd = std::fs::read_dir(dir).map_err(|source| NnError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let mut files = Vec::new();
    for e in rd {
        let e = e.map_err(|source| NnError::Io {
            path: dir.to_owned(),
            source,
        })?;
        let p = e.path();
        if p.is_file()
            && p.extension()
                .and_then(|x| x.to_str())
                .is_some_and(|x| IMAGE_EXTENSIONS.iter().any(|e| x.eq_ignore_ascii_case(e)))
        {
            files.push(p);
        }
    }
    if files.is_empty() {
        return Err(NnError::EmptyFolder {
            path: dir.to_owned(),
        });
    }
    files.sort();
    Ok(files)
}

fn check_chw(channels: usize, height: usize, width: usize) -> Result<()> {
    if channels != 1 && channels != 3 {
        return Err(bad_param("channels", format!("{channels}: use 1 or 3")));
    }
    if height == 0 || width == 0 {
        return Err(bad_param("size", "height and width must be at least 1"));
    }
    Ok(())
}

/// A decoded image as C·H·W values in [0, 1] (channel-first): resized (triangle filter) to H × W
/// when its size differs, converted to luma (C = 1) or RGB (C = 3).
fn to_chw(img: &DynamicImage, channels: usize, height: usize, width: usize) -> Vec<f32> {
    let resized;
    let img = if img.width() as usize != width || img.height() as usize != height {
        resized = img.resize_exact(width as u32, height as u32, FilterType::Triangle);
        &resized
    } else {
        img
    };
    let hw = height * width;
    let mut out = vec![0f32; channels * hw];
    if channels == 1 {
        for (o, p) in out.iter_mut().zip(img.to_luma8().pixels()) {
            *o = f32::from(p.0[0]) / 255.0;
        }
    } else {
        for (i, p) in img.to_rgb8().pixels().enumerate() {
            for c in 0..3 {
                out[c * hw + i] = f32::from(p.0[c]) / 255.0;
            }
        }
    }
    out
}

/// One image file as C·H·W values in [0, 1] (channel-first).
pub fn read_image(path: &Path, channels: usize, height: usize, width: usize) -> Result<Vec<f32>> {
    check_chw(channels, height, width)?;
    let img = image::open(path).map_err(|e| NnError::Image {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    Ok(to_chw(&img, channels, height, width))
}

/// An image in memory (PNG or JPEG, recognised by its first bytes), decoded.
pub fn decode(bytes: &[u8]) -> Result<DynamicImage> {
    decode_within(bytes, DecodeLimits::default())
}

/// How large an image the decoder may produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// The largest width or height.
    pub max_side: u32,
    /// The most memory the decoder may allocate.
    pub max_bytes: u64,
}

impl Default for DecodeLimits {
    /// 8192 pixels a side and 128 MiB: a 12-megapixel RGB photo needs 36 MiB.
    fn default() -> Self {
        DecodeLimits {
            max_side: 8192,
            max_bytes: 128 << 20,
        }
    }
}

/// [`decode`] within other limits (the fuzz target uses small ones: the same parsers, smaller
/// buffers).
pub fn decode_within(bytes: &[u8], bounds: DecodeLimits) -> Result<DynamicImage> {
    if bytes.is_empty() {
        return Err(NnError::Decode("no bytes (an empty body)".into()));
    }
    let format = image::guess_format(bytes)
        .map_err(|_| NnError::Decode("neither PNG nor JPEG (unrecognised first bytes)".into()))?;
    if !matches!(format, ImageFormat::Png | ImageFormat::Jpeg) {
        return Err(NnError::Decode(format!(
            "{format:?} images are not read; send PNG or JPEG"
        )));
    }
    // A few compressed bytes can declare a huge image (a decompression bomb): bound the sides
    // and the decoder's allocations before anything is decoded.
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(bounds.max_side);
    limits.max_image_height = Some(bounds.max_side);
    limits.max_alloc = Some(bounds.max_bytes);
    let mut reader = image::ImageReader::with_format(std::io::Cursor::new(bytes), format);
    reader.limits(limits);
    // zune-jpeg 0.5.15, the JPEG decoder of `image`, panics on some malformed files (found by the
    // `image_decode` fuzz target; etemesi254/zune-image#409, fixed upstream but not released).
    // Decoding touches nothing but these bytes, so a panic is caught and answered as what it
    // is: a file the decoder cannot read.
    let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| reader.decode()))
        .map_err(|_| {
            NnError::Decode(format!(
                "{format:?}: malformed data (the decoder gave up on this file)"
            ))
        })?;
    decoded.map_err(|e| match e {
        image::ImageError::Limits(_) => NnError::Decode(format!(
            "{format:?}: larger than {side} × {side} pixels or {} MiB decoded",
            bounds.max_bytes >> 20,
            side = bounds.max_side
        )),
        e => NnError::Decode(format!("{format:?}: {e}")),
    })
}

/// Uploaded bytes as the C·H·W values a model of that input reads, converted exactly as
/// [`read_image`] converts a training file; also the decoded image (for [`heat_map_png`]).
pub fn decode_image(
    bytes: &[u8],
    channels: usize,
    height: usize,
    width: usize,
) -> Result<(Vec<f32>, DynamicImage)> {
    decode_image_within(bytes, channels, height, width, DecodeLimits::default())
}

/// [`decode_image`] within other [`DecodeLimits`].
pub fn decode_image_within(
    bytes: &[u8],
    channels: usize,
    height: usize,
    width: usize,
    bounds: DecodeLimits,
) -> Result<(Vec<f32>, DynamicImage)> {
    check_chw(channels, height, width)?;
    let img = decode_within(bytes, bounds)?;
    let chw = to_chw(&img, channels, height, width);
    Ok((chw, img))
}

/// The largest side of a heat map PNG; larger images are drawn scaled down to it.
pub const HEAT_MAP_MAX_SIDE: u32 = 512;

/// The colour of a relative error `v` in [0, 1]: blue → cyan → green → yellow → red.
fn heat_colour(v: f32) -> [f32; 3] {
    let v = v.clamp(0.0, 1.0) * 4.0;
    let (r, g, b) = match v {
        v if v < 1.0 => (0.0, v, 1.0),
        v if v < 2.0 => (0.0, 1.0, 2.0 - v),
        v if v < 3.0 => (v - 2.0, 1.0, 0.0),
        v => (1.0, 4.0 - v, 0.0),
    };
    [r * 255.0, g * 255.0, b * 255.0]
}

/// A PNG of a conv VAE's per-pixel heat map (`map`: H × W, e.g. [`crate::Vae::heat_map`]) laid
/// over the image it was computed for: the map is scaled (bilinear) to the image's own size
/// (at most [`HEAT_MAP_MAX_SIDE`] per side, keeping the aspect ratio), each pixel's error divided
/// by the largest one of the map, coloured blue → red and blended over the image with an opacity
/// that grows with the error (0.15 at none, 0.75 at the largest). The hottest spot of every map
/// is red; compare scores, not colours, across images.
pub fn heat_map_png(
    map: &[f32],
    height: usize,
    width: usize,
    image: &DynamicImage,
) -> Result<Vec<u8>> {
    if map.len() != height * width || map.is_empty() {
        return Err(NnError::Shape {
            expected: format!("a heat map of {height}×{width} values"),
            got: format!("{} values", map.len()),
        });
    }
    if let Some(i) = map.iter().position(|v| !v.is_finite()) {
        return Err(NnError::NonFinite {
            row: 0,
            feature: format!("y{}_x{}", i / width, i % width),
            value: f64::from(map[i]),
        });
    }
    let (iw, ih) = (image.width().max(1), image.height().max(1));
    let scale = (f64::from(HEAT_MAP_MAX_SIDE) / f64::from(iw.max(ih))).min(1.0);
    let ow = ((f64::from(iw) * scale).round() as u32).max(width as u32);
    let oh = ((f64::from(ih) * scale).round() as u32).max(height as u32);
    let base = image.resize_exact(ow, oh, FilterType::Triangle).to_rgb8();
    let max = map.iter().copied().fold(0f32, f32::max);
    let norm: Vec<f32> = map
        .iter()
        .map(|v| if max > 0.0 { v / max } else { 0.0 })
        .collect();
    let sample = |x: u32, y: u32| -> f32 {
        // Bilinear, pixel centres aligned.
        let fx = ((f64::from(x) + 0.5) * width as f64 / f64::from(ow) - 0.5).max(0.0);
        let fy = ((f64::from(y) + 0.5) * height as f64 / f64::from(oh) - 0.5).max(0.0);
        let (x0, y0) = (
            (fx.floor() as usize).min(width - 1),
            (fy.floor() as usize).min(height - 1),
        );
        let (x1, y1) = ((x0 + 1).min(width - 1), (y0 + 1).min(height - 1));
        let (tx, ty) = ((fx - x0 as f64) as f32, (fy - y0 as f64) as f32);
        let at = |xx: usize, yy: usize| norm[yy * width + xx];
        let top = at(x0, y0) * (1.0 - tx) + at(x1, y0) * tx;
        let bottom = at(x0, y1) * (1.0 - tx) + at(x1, y1) * tx;
        top * (1.0 - ty) + bottom * ty
    };
    let out = RgbImage::from_fn(ow, oh, |x, y| {
        let v = sample(x, y);
        let c = heat_colour(v);
        let a = 0.15 + 0.6 * v;
        let p = base.get_pixel(x, y).0;
        image::Rgb(std::array::from_fn(|k| {
            (f32::from(p[k]) * (1.0 - a) + c[k] * a)
                .round()
                .clamp(0.0, 255.0) as u8
        }))
    });
    let mut png = Vec::new();
    out.write_to(&mut std::io::Cursor::new(&mut png), ImageFormat::Png)
        .map_err(|e| NnError::Backend(format!("cannot encode the heat map PNG: {e}")))?;
    Ok(png)
}

/// Reads the given files into one set.
pub fn read_images(
    files: &[PathBuf],
    channels: usize,
    height: usize,
    width: usize,
) -> Result<ImageSet> {
    let mut data = Vec::with_capacity(files.len() * channels * height * width);
    for f in files {
        data.extend(read_image(f, channels, height, width)?);
    }
    ImageSet::new(channels, height, width, data)
}

/// Every image of a folder (sorted by name), with the file list.
pub fn read_folder(
    dir: &Path,
    channels: usize,
    height: usize,
    width: usize,
) -> Result<(ImageSet, Vec<PathBuf>)> {
    let files = list_images(dir)?;
    Ok((read_images(&files, channels, height, width)?, files))
}

/// Image `i` of `set` (values in [0, 1], channel-major) as a PNG: grey for one channel, RGB for
/// three (what `gemba generate` writes for a DCGAN or an image VAE).
pub fn to_png(set: &ImageSet, i: usize) -> Result<Vec<u8>> {
    if i >= set.n {
        return Err(NnError::Shape {
            expected: format!("an image index below {}", set.n),
            got: i.to_string(),
        });
    }
    let (h, w) = (set.height, set.width);
    let px = set.image(i);
    let byte = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
    let img = match set.channels {
        1 => DynamicImage::ImageLuma8(GrayImage::from_fn(w as u32, h as u32, |x, y| {
            image::Luma([byte(px[y as usize * w + x as usize])])
        })),
        3 => DynamicImage::ImageRgb8(RgbImage::from_fn(w as u32, h as u32, |x, y| {
            let at = y as usize * w + x as usize;
            image::Rgb(std::array::from_fn(|c| byte(px[c * h * w + at])))
        })),
        c => {
            return Err(bad_param(
                "channels",
                format!("{c}: PNGs are written for 1 or 3 channels"),
            ));
        }
    };
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), ImageFormat::Png)
        .map_err(|e| NnError::Backend(format!("PNG encoding: {e}")))?;
    Ok(png)
}
