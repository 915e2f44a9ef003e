#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| pairdb_storage::fuzzing::sst_index(data));
