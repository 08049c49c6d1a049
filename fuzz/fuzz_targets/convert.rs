//! libFuzzer entry for `tandem::fuzzing::convert` (see docs/FUZZING.md).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tandem::fuzzing::convert(data));
