//! The plant file (ISA-95 asset model): parsing, validation, the asset model built from it, its
//! machines (templates applied) and shifts.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(plant) = gemba_engine::parse_plant(text, "fuzz") else {
        return;
    };
    // parse_plant already built the model once; a valid plant must build again and list its tree
    let model = gemba_core::AssetModel::from_plant(&plant).expect("a validated plant builds");
    let _ = model.tree();
    let _ = plant.machines();
    for shift in &plant.shifts {
        if let Ok((start, _end)) = shift.minutes() {
            let _ = shift.contains_minute(start);
        }
    }
});
