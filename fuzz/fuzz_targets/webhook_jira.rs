//! libFuzzer entry for `tandem::fuzzing::webhook_jira` (see docs/FUZZING.md).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tandem::fuzzing::webhook_jira(data));
