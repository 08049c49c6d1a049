//! libFuzzer entry for `tandem::fuzzing::mapping_csv` (see docs/FUZZING.md).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tandem::fuzzing::mapping_csv(data));
