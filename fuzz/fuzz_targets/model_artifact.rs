//! Model artefacts as `POST /api/v1/models` and `gemba predict --model` receive them: parsing, and
//! for an artefact that parses, a prediction and an explanation on one row of the right width.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(artifact) = gemba_ml::ModelArtifact::from_json(text) else {
        return;
    };
    let n = artifact.feature_names.len();
    if n == 0 || n > 1024 {
        return;
    }
    let Ok(row) = gemba_ml::Matrix::new(1, n, vec![0.5; n]) else {
        return;
    };
    let _ = artifact.predict(&row);
    let _ = artifact.predict_proba(&row);
    let _ = artifact.explain(row.row(0), 3);
});
