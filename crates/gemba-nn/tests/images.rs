//! Uploaded images (`images::decode_image`) and heat-map PNGs (`images::heat_map_png`): an upload is
//! converted exactly as the same file is read for training, JPEG is read, broken bytes are named,
//! and the heat map has the image's size with its hottest spot where the error is.

use gemba_nn::NnError;
use gemba_nn::images::{decode_image, heat_map_png, read_image};

fn encoded(img: &image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), format)
        .expect("encode");
    out
}

fn gradient() -> image::DynamicImage {
    image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(20, 12, |x, y| {
        image::Rgb([(x * 12) as u8, (y * 20) as u8, 128])
    }))
}

#[test]
fn uploads_are_converted_like_training_files() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("g.png");
    gradient().save(&path).expect("save");
    let png = std::fs::read(&path).expect("read");
    for channels in [1, 3] {
        let from_file = read_image(&path, channels, 8, 12).expect("file");
        let (from_bytes, img) = decode_image(&png, channels, 8, 12).expect("bytes");
        assert_eq!(from_file, from_bytes, "channels {channels}");
        assert_eq!((img.width(), img.height()), (20, 12));
    }
    let jpeg = encoded(&gradient(), image::ImageFormat::Jpeg);
    let (v, _) = decode_image(&jpeg, 1, 4, 4).expect("jpeg");
    assert_eq!(v.len(), 16);
    assert!(v.iter().all(|x| (0.0..=1.0).contains(x)));
}

#[test]
fn broken_uploads_name_the_problem() {
    let png = encoded(&gradient(), image::ImageFormat::Png);
    let msg = |bytes: &[u8]| match decode_image(bytes, 1, 4, 4) {
        Err(NnError::Decode(m)) => m,
        other => panic!("expected a decode error, got {other:?}"),
    };
    assert!(msg(&png[..png.len() / 2]).starts_with("Png: "));
    assert!(msg(b"GIF89a....").contains("Gif"));
    assert!(msg(b"plain text").contains("neither PNG nor JPEG"));
    assert!(msg(b"").contains("empty"));
    assert!(msg(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 16]).starts_with("Jpeg: "));
    // Decompression bombs: a few KiB that declare more pixels than the decoder may hold.
    let wide = image::DynamicImage::ImageLuma8(image::GrayImage::new(9000, 2));
    let bomb = encoded(&wide, image::ImageFormat::Png);
    assert!(bomb.len() < 4096, "{} bytes", bomb.len());
    assert!(msg(&bomb).contains("larger than 8192"), "{}", msg(&bomb));
    let big = image::DynamicImage::ImageRgba8(image::RgbaImage::new(6000, 6000));
    let bomb = encoded(&big, image::ImageFormat::Png);
    assert!(msg(&bomb).contains("MiB decoded"), "{}", msg(&bomb));
}

#[test]
fn the_heat_map_has_the_image_size_and_its_hottest_spot_where_the_error_is() {
    let big =
        image::DynamicImage::ImageLuma8(image::GrayImage::from_pixel(64, 32, image::Luma([90])));
    let (h, w) = (4, 8);
    let mut map = vec![0.01f32; h * w];
    map[2 * w + 6] = 0.9; // row 2, column 6
    let png = heat_map_png(&map, h, w, &big).expect("png");
    let out = image::load_from_memory(&png).expect("decodes").to_rgb8();
    assert_eq!(out.dimensions(), (64, 32));
    let (x, y, _) = out
        .enumerate_pixels()
        .max_by_key(|(_, _, p)| i32::from(p.0[0]) - i32::from(p.0[2]))
        .expect("pixels");
    assert_eq!((x / 8, y / 8), (6, 2), "hottest pixel at ({x}, {y})");
    // Larger images are drawn at most 512 pixels a side; a wrong map size is refused.
    let huge = image::DynamicImage::new_luma8(2048, 1024);
    let out = image::load_from_memory(&heat_map_png(&map, h, w, &huge).expect("png")).expect("png");
    assert_eq!((out.width(), out.height()), (512, 256));
    assert!(matches!(
        heat_map_png(&map[1..], h, w, &big),
        Err(NnError::Shape { .. })
    ));
}

/// A JPEG the `image_decode` fuzz target made, on which zune-jpeg 0.5.15 panics in its AVX2
/// inverse DCT (etemesi254/zune-image#409): the upload is an error naming the problem, not a
/// panic (on a CPU without AVX2 the scalar path may read or refuse it; either way no panic).
#[test]
fn a_jpeg_that_panics_the_decoder_is_a_decode_error() {
    let bytes = include_bytes!("fixtures/zune-jpeg-0.5.15-avx2-panic.jpg");
    match decode_image(bytes, 3, 12, 16) {
        Err(NnError::Decode(m)) => assert!(m.starts_with("Jpeg: "), "{m}"),
        Err(e) => panic!("expected a decode error, got {e}"),
        Ok((chw, _)) => assert_eq!(chw.len(), 3 * 12 * 16),
    }
}

/// Generated images written as PNG read back to the same values (to 1/255), grey and RGB.
#[test]
fn generated_images_round_trip_through_png() {
    for channels in [1usize, 3] {
        let (h, w) = (5usize, 7usize);
        let data: Vec<f32> = (0..2 * channels * h * w)
            .map(|i| ((i * 37) % 256) as f32 / 255.0)
            .collect();
        let set = gemba_nn::ImageSet::new(channels, h, w, data.clone()).expect("set");
        for i in 0..2 {
            let png = gemba_nn::images::to_png(&set, i).expect("png");
            let (chw, _) = decode_image(&png, channels, h, w).expect("decode");
            let want = set.image(i);
            assert!(
                chw.iter()
                    .zip(want)
                    .all(|(a, b)| (a - b).abs() < 0.5 / 255.0 + 1e-6),
                "{channels} channels, image {i}"
            );
        }
        assert!(gemba_nn::images::to_png(&set, 2).is_err());
    }
    let two = gemba_nn::ImageSet::new(2, 2, 2, vec![0.5; 8]).expect("set");
    assert!(gemba_nn::images::to_png(&two, 0).is_err());
}
