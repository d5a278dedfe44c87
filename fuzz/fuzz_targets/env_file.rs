//! The `.env` reader and the identity check on arbitrary text.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| agentmesh_fuzz::env_file(data));
