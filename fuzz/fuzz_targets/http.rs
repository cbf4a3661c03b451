#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ledger_gateway::fuzzing::http(data));
