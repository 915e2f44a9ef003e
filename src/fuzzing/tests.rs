//! The stable fuzz test: every target over its committed corpus
//! (`fuzz/corpus/<target>/`), its seeds from the real encoders, and a
//! bounded number of seeded pseudo-random and mutated inputs.
//!
//! A failing input is reported with its target and origin (corpus file or
//! seed number), and a random case reruns alone with
//! `PAIRDB_FUZZ_SEED=<seed> cargo test --lib fuzzing`.

use super::seeds::{self, Seed};
use super::{Target, TARGETS};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

/// Random inputs per target.
const RANDOM_CASES: u64 = 150;
/// Mutated inputs per target.
const MUTATED_CASES: u64 = 350;
/// Longest random input.
const RANDOM_LEN_MAX: usize = 600;

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join("corpus")
        .join(target)
}

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let Ok(dir) = std::fs::read_dir(corpus_dir(target)) else {
        return Vec::new();
    };
    let mut files: Vec<_> = dir
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).expect("read a corpus file");
            (p, bytes)
        })
        .collect()
}

/// Runs `target` on `input`; the failure names the target, the origin and
/// the input.
fn run(name: &str, target: Target, input: &[u8], origin: &str) -> Result<(), String> {
    catch_unwind(AssertUnwindSafe(|| target(input))).map_err(|panic| {
        let why = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        let shown: String = input.iter().take(64).map(|b| format!("{b:02x}")).collect();
        format!(
            "target {name} failed on {origin} ({} bytes, starts {shown}): {why}",
            input.len()
        )
    })
}

fn check(failures: Vec<String>) {
    assert!(
        failures.is_empty(),
        "{} failing inputs:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_target_has_a_committed_corpus() {
    for (name, _) in TARGETS {
        assert!(
            !corpus(name).is_empty(),
            "no corpus in {}",
            corpus_dir(name).display()
        );
    }
}

#[test]
fn corpus_and_seeds_replay() {
    let mut failures = Vec::new();
    for (name, target) in TARGETS {
        for (path, bytes) in corpus(name) {
            failures.extend(run(name, *target, &bytes, &path.display().to_string()).err());
        }
    }
    for seed in seeds::all() {
        let target = lookup(seed.target);
        let origin = format!("seed {}", seed.name);
        failures.extend(run(seed.target, target, &seed.bytes, &origin).err());
    }
    check(failures);
}

fn lookup(name: &str) -> Target {
    match TARGETS.iter().find(|(n, _)| *n == name) {
        Some((_, t)) => *t,
        None => panic!("no target {name}"),
    }
}

/// A stable per-target base, so adding a target changes no other's cases.
fn base_seed(name: &str) -> u64 {
    crate::storage::sstable::filter::key_hash(name.as_bytes())
}

/// One random or mutated input, from its seed alone.
fn case(seed: u64, pool: &[Vec<u8>]) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    if pool.is_empty() || rng.u8(..) < 80 {
        let len = rng.usize(..=RANDOM_LEN_MAX);
        return (0..len).map(|_| rng.u8(..)).collect();
    }
    let mut data = pool[rng.usize(..pool.len())].clone();
    for _ in 0..rng.usize(1..=4) {
        mutate(&mut rng, &mut data, pool);
    }
    data
}

fn mutate(rng: &mut fastrand::Rng, data: &mut Vec<u8>, pool: &[Vec<u8>]) {
    let at = |rng: &mut fastrand::Rng, len: usize| rng.usize(..len.max(1));
    match rng.u8(..8) {
        0 if !data.is_empty() => {
            let i = at(rng, data.len());
            data[i] ^= 1 << rng.u8(..8);
        }
        1 if !data.is_empty() => {
            let i = at(rng, data.len());
            data[i] = [0, 1, 0x7f, 0x80, 0xff][rng.usize(..5)];
        }
        2 if data.len() >= 4 => {
            // An interesting 32-bit value over a length or count field.
            let i = at(rng, data.len() - 3);
            let v: u32 = [0, 1, 0xff, 0x1000, 0x7fff_ffff, u32::MAX][rng.usize(..6)];
            data[i..i + 4].copy_from_slice(&v.to_be_bytes());
        }
        3 => data.truncate(at(rng, data.len() + 1)),
        4 => {
            let i = at(rng, data.len() + 1).min(data.len());
            let n = rng.usize(1..=16);
            data.splice(i..i, (0..n).map(|_| rng.u8(..)));
        }
        5 if !data.is_empty() => {
            let i = at(rng, data.len());
            let n = rng.usize(1..=16).min(data.len() - i);
            data.drain(i..i + n);
        }
        6 => {
            // Splice the tail of another input.
            let other = &pool[rng.usize(..pool.len())];
            let i = at(rng, data.len() + 1).min(data.len());
            let j = at(rng, other.len() + 1).min(other.len());
            data.truncate(i);
            data.extend_from_slice(&other[j..]);
        }
        _ => {
            if !data.is_empty() {
                let i = at(rng, data.len());
                data[i] = data[i].wrapping_add(rng.u8(1..=8));
            }
        }
    }
}

#[test]
fn random_and_mutated_inputs() {
    let only: Option<u64> = std::env::var("PAIRDB_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok());
    let all_seeds = seeds::all();
    let mut failures = Vec::new();
    for (name, target) in TARGETS {
        let mut pool: Vec<Vec<u8>> = corpus(name).into_iter().map(|(_, b)| b).collect();
        pool.extend(
            all_seeds
                .iter()
                .filter(|s| s.target == *name)
                .map(|s: &Seed| s.bytes.clone()),
        );
        let base = base_seed(name);
        let cases = (0..RANDOM_CASES + MUTATED_CASES).map(|i| base.wrapping_add(i));
        for seed in cases.filter(|s| only.is_none_or(|o| o == *s)) {
            let input = case(seed, &pool);
            let origin = format!("seed {seed} (PAIRDB_FUZZ_SEED={seed})");
            failures.extend(run(name, *target, &input, &origin).err());
        }
    }
    check(failures);
}

/// Every seed is an input its decoder accepts: the corpus starts deep.
#[test]
fn seeds_are_valid_encodings() {
    use crate::storage;
    use bytes::Bytes;
    for seed in seeds::all() {
        let b = &seed.bytes[..];
        let ok = match seed.target {
            "codec_entry" => storage::codec::decode_entry(&mut Bytes::copy_from_slice(b)).is_ok(),
            "wal_batch" => storage::wal::format::parse_batch_header(b)
                .is_ok_and(|h| storage::wal::format::decode_payload(&h, &b[40..]).is_ok()),
            "wal_scan" => {
                storage::wal::scan::scan_file(b, 0).is_ok_and(|(_, out)| !out.is_corrupt())
            }
            "sst_footer" => storage::sstable::Footer::parse(b).is_ok(),
            "sst_index" => storage::sstable::Index::parse(b).is_ok(),
            "sst_block" => storage::sstable::reader::decode_block(b).is_ok(),
            "sst_filter" => storage::sstable::Filter::parse(b).is_ok(),
            "sst_table" => storage::sstable::SstImage::open(b.to_vec()).is_ok(),
            "manifest" => storage::manifest::Manifest::decode(b).is_ok(),
            "meta" => storage::datadir::decode_meta(b).is_ok(),
            "streams_file" => storage::streams_file::decode(b).is_ok(),
            "grpc_request" => {
                let path = super::grpc::method_path(b[0]);
                let body = crate::proto::grpc::decode_unary(&b[1..], 1 << 20).expect("a frame");
                crate::server::handlers::checks::check_request(
                    &path,
                    Bytes::copy_from_slice(body),
                    super::grpc::config(),
                )
                .is_ok()
            }
            "h2_server" => super::h2::serve_input(b) == 3,
            other => panic!("seed of unknown target {other}"),
        };
        assert!(ok, "seed {} of {} is not accepted", seed.name, seed.target);
    }
}

/// Writes the seeds to `fuzz/corpus/<target>/seed-<name>` (run after a
/// format change: `cargo test --lib write_seed_corpus -- --ignored`).
#[test]
#[ignore]
fn write_seed_corpus() {
    for seed in seeds::all() {
        let dir = corpus_dir(seed.target);
        std::fs::create_dir_all(&dir).expect("create the corpus folder");
        std::fs::write(dir.join(format!("seed-{}", seed.name)), &seed.bytes).expect("write a seed");
    }
}
