//! `POST /api/v1/inspect` and `gemba inspect`: an uploaded PNG or JPEG decoded into the C·H·W
//! values of a model's input, and the heat map drawn over it. The first byte chooses the model
//! input (1 or 3 channels, 4 to 32 pixels a side), the rest is the upload. The decoder runs within
//! small limits (1024 pixels a side, 16 MiB): the same parsers as the server's 8192 px / 128 MiB,
//! without spending the run on zero-filling buffers for images the input only declares.
#![no_main]

use gemba_nn::images::{DecodeLimits, decode_image_within, decode_within, heat_map_png};
use libfuzzer_sys::fuzz_target;

/// libfuzzer-sys aborts on every panic before it unwinds. `images::decode` catches the panics of
/// the third-party JPEG decoder (zune-jpeg) and answers them as decode errors, so those may
/// unwind; a panic anywhere else is still a crash.
fn let_decoder_panics_unwind() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            if !info.location().is_some_and(|l| l.file().contains("/zune-jpeg-")) {
                eprintln!("{info}");
                std::process::abort();
            }
        }));
    });
}

fuzz_target!(|data: &[u8]| {
    let_decoder_panics_unwind();
    let Some((&shape, upload)) = data.split_first() else {
        return;
    };
    let channels = if shape & 1 == 0 { 1 } else { 3 };
    let height = 4 * (1 + usize::from((shape >> 1) & 7));
    let width = 4 * (1 + usize::from((shape >> 4) & 7));
    let limits = DecodeLimits {
        max_side: 1024,
        max_bytes: 16 << 20,
    };
    let Ok((chw, img)) = decode_image_within(upload, channels, height, width, limits) else {
        return;
    };
    assert_eq!(chw.len(), channels * height * width);
    assert!(chw.iter().all(|v| (0.0..=1.0).contains(v)), "pixel outside [0, 1]");
    // The heat map of that input over the decoded image: a valid PNG.
    let map: Vec<f32> = chw[..height * width].to_vec();
    let png = heat_map_png(&map, height, width, &img).expect("heat map of a decoded image");
    assert!(decode_within(&png, limits).is_ok(), "the heat map PNG does not decode");
});
