//! Reading image folders (PNG) into an [`ImageSet`]: decoded, converted to 1 (luma) or 3 (RGB)
//! channels, resized (triangle filter) to H × W, scaled to [0, 1]. The only file IO of the crate
//! besides checkpoints.

use std::path::{Path, PathBuf};

use image::imageops::FilterType;

use crate::data::ImageSet;
use crate::error::{NnError, Result, bad_param};

/// The `.png` files of a folder, sorted by name.
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
                .is_some_and(|x| x.eq_ignore_ascii_case("png"))
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

/// One image as C·H·W values in [0, 1] (channel-first).
pub fn read_image(path: &Path, channels: usize, height: usize, width: usize) -> Result<Vec<f32>> {
    if channels != 1 && channels != 3 {
        return Err(bad_param("channels", format!("{channels}: use 1 or 3")));
    }
    if height == 0 || width == 0 {
        return Err(bad_param("size", "height and width must be at least 1"));
    }
    let img = image::open(path).map_err(|e| NnError::Image {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    let img = if img.width() as usize != width || img.height() as usize != height {
        img.resize_exact(width as u32, height as u32, FilterType::Triangle)
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
    Ok(out)
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

/// Every `.png` of a folder (sorted by name), with the file list.
pub fn read_folder(
    dir: &Path,
    channels: usize,
    height: usize,
    width: usize,
) -> Result<(ImageSet, Vec<PathBuf>)> {
    let files = list_images(dir)?;
    Ok((read_images(&files, channels, height, width)?, files))
}
