//! The manifest checks on arbitrary file sets (files split at 0xFF bytes).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| agentmesh_fuzz::manifests(data));
