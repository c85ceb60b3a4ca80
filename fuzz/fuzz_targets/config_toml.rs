//! The configuration file (`gemba serve --config`, `gemba config check`): TOML over the defaults,
//! then validation.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(cfg) = gemba_engine::Config::from_toml_str(text) {
        // a valid configuration stays valid
        assert!(cfg.validate().is_ok());
    }
});
