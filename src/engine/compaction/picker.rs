//! Compaction picking: which compaction a shard runs next, as a pure function
//! of its table list, its per-level round-robin cursors and the configuration.
//!
//! Owns the level-shape model of the LSM tree:
//! - Levels are L0..L(levels-1). L0 tables may overlap each other; in L1 and
//!   below the tables of one level have disjoint key ranges.
//! - L0 is scored by table count (`count / l0_trigger_tables`); L1..L(last-1)
//!   by bytes against a target that grows by `level_size_multiplier` per
//!   level; the last level has no target and is never an input.
//! - A plan takes its inputs from one level and writes into the next one; the
//!   `overlaps` of a plan are exactly the output-level tables whose key ranges
//!   intersect the inputs' combined range `[min smallest, max largest]`.
//!
//! Robustness rules (no function here panics, whatever it is given): keys are
//! compared bytewise and taken as given (a table whose smallest key exceeds its
//! largest is not repaired); a table whose `level` is at or past the last level
//! belongs to the last level; `levels` is clamped to `2..=256` (level numbers
//! are `u8`); a zero `l0_trigger_tables` or zero level target counts as one;
//! byte sums saturate.

use bytes::Bytes;

/// Level numbers are `u8`, so no configuration has more than this many levels.
const LEVELS_MAX: usize = u8::MAX as usize + 1;

/// What the picker knows about one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TableInfo {
    pub file_no: u64,
    pub level: u8,
    pub file_bytes: u64,
    /// Smallest key in the table (inclusive).
    pub smallest: Bytes,
    /// Largest key in the table (inclusive).
    pub largest: Bytes,
}

/// The level-shape configuration the picker works against.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PickerConfig {
    /// Number of levels, L0 included; at least 2.
    pub levels: usize,
    /// L0 table count at which L0 is compacted into L1.
    pub l0_trigger_tables: usize,
    /// Target size of L1.
    pub level1_target_bytes: u64,
    /// Each level's target is this many times the previous one's; at least 2.
    pub level_size_multiplier: u64,
}

/// What to compact. `inputs` come from `input_level`; `overlaps` are the
/// tables of `output_level` whose ranges intersect the inputs' combined range.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CompactionPlan {
    pub input_level: u8,
    /// Always `input_level + 1`.
    pub output_level: u8,
    /// L0: every L0 table, by `file_no` ascending (oldest first).
    /// L1 and below: exactly one table.
    pub inputs: Vec<TableInfo>,
    /// Output-level tables intersecting the inputs, sorted by smallest key.
    pub overlaps: Vec<TableInfo>,
    /// Score of `input_level` when the plan was made (>= 1.0).
    pub score: f64,
    /// Key after which the next compaction of `input_level` should start
    /// (round-robin cursor); `None` for L0, which has no cursor.
    pub next_cursor: Option<Bytes>,
}

impl CompactionPlan {
    /// True when the single input can change level in the manifest without
    /// being rewritten: nothing in the output level overlaps it. For L0 this
    /// also means it is the only L0 table (an L0 plan takes all of them), so
    /// no older overlapping L0 table is left behind.
    pub(crate) fn is_trivial_move(&self) -> bool {
        self.overlaps.is_empty() && self.inputs.len() == 1
    }

    #[cfg(test)]
    /// Bytes the compaction reads: inputs plus overlaps (saturating).
    pub(crate) fn input_bytes(&self) -> u64 {
        self.inputs
            .iter()
            .chain(self.overlaps.iter())
            .fold(0u64, |sum, t| sum.saturating_add(t.file_bytes))
    }
}

/// `cfg.levels` clamped to `2..=LEVELS_MAX`.
fn level_count(cfg: &PickerConfig) -> usize {
    cfg.levels.clamp(2, LEVELS_MAX)
}

/// The level a table is treated as belonging to: its own, or the last level
/// when its number is at or past it.
fn effective_level(table: &TableInfo, levels: usize) -> usize {
    usize::from(table.level).min(levels - 1)
}

/// True when `[t.smallest, t.largest]` intersects `[smallest, largest]`
/// (touching boundaries count).
fn intersects(table: &TableInfo, smallest: &[u8], largest: &[u8]) -> bool {
    table.smallest.as_ref() <= largest && table.largest.as_ref() >= smallest
}

/// Deterministic table order within a level: smallest key, then largest key,
/// then file number.
fn by_key_range(a: &TableInfo, b: &TableInfo) -> std::cmp::Ordering {
    a.smallest
        .cmp(&b.smallest)
        .then_with(|| a.largest.cmp(&b.largest))
        .then_with(|| a.file_no.cmp(&b.file_no))
}

/// Target size of `level`: `None` for L0 (scored by table count) and for the
/// last level and beyond (no target: never compacted further). L1 is
/// `level1_target_bytes`, Ln is `L1 * level_size_multiplier^(n-1)`, saturating
/// at `u64::MAX`.
pub(crate) fn level_target_bytes(level: usize, cfg: &PickerConfig) -> Option<u64> {
    if level == 0 || level >= level_count(cfg) - 1 {
        return None;
    }
    let mut target = cfg.level1_target_bytes;
    for _ in 1..level {
        target = target.saturating_mul(cfg.level_size_multiplier);
    }
    Some(target)
}

/// Table count and byte total per level (index = effective level).
fn level_totals(tables: &[TableInfo], levels: usize) -> (Vec<usize>, Vec<u64>) {
    let mut counts = vec![0usize; levels];
    let mut bytes = vec![0u64; levels];
    for t in tables {
        let level = effective_level(t, levels);
        counts[level] += 1;
        bytes[level] = bytes[level].saturating_add(t.file_bytes);
    }
    (counts, bytes)
}

/// Compaction score of every level, indexed by level (length = levels):
/// L0 = table count / `l0_trigger_tables`; L1..L(last-1) = bytes / target;
/// the last level = 0.0. A level needs compaction when its score is >= 1.0.
pub(crate) fn level_scores(tables: &[TableInfo], cfg: &PickerConfig) -> Vec<f64> {
    let levels = level_count(cfg);
    let (counts, bytes) = level_totals(tables, levels);
    (0..levels)
        .map(|level| {
            if level == 0 {
                counts[0] as f64 / cfg.l0_trigger_tables.max(1) as f64
            } else {
                match level_target_bytes(level, cfg) {
                    Some(target) => bytes[level] as f64 / target.max(1) as f64,
                    None => 0.0,
                }
            }
        })
        .collect()
}

/// The tables among `tables` whose `[smallest, largest]` intersects
/// `[smallest, largest]` (bytewise, boundaries inclusive, so touching ranges
/// overlap), sorted by smallest key.
pub(crate) fn overlapping<'a>(
    tables: impl Iterator<Item = &'a TableInfo>,
    smallest: &[u8],
    largest: &[u8],
) -> Vec<TableInfo> {
    let mut out: Vec<TableInfo> = tables
        .filter(|t| intersects(t, smallest, largest))
        .cloned()
        .collect();
    out.sort_by(by_key_range);
    out
}

/// True when some table of a level deeper than `level` covers `key`
/// (`smallest <= key <= largest`). A merge writing into `level` may drop a
/// tombstone for `key` only when this is false: otherwise an older version
/// below could reappear.
pub(crate) fn key_may_exist_below(tables: &[TableInfo], level: u8, key: &[u8]) -> bool {
    tables
        .iter()
        .any(|t| t.level > level && t.smallest.as_ref() <= key && t.largest.as_ref() >= key)
}

/// The compaction to run next, or `None` when every level scores below 1.0.
///
/// The level with the highest score >= 1.0 is chosen (ties: the lower level).
/// L0 takes every L0 table; a level Ln below it takes one table, the first
/// whose smallest key is greater than `cursors[n]` (wrapping to the level's
/// first table when there is none or the cursor is `None`). Output is always
/// the next level; the last level is never an input. `cursors[level]` is the
/// round-robin cursor of that level; a short slice means `None` for the rest.
pub(crate) fn pick(
    tables: &[TableInfo],
    cursors: &[Option<Bytes>],
    cfg: &PickerConfig,
) -> Option<CompactionPlan> {
    let levels = level_count(cfg);
    let scores = level_scores(tables, cfg);
    let mut chosen: Option<(usize, f64)> = None;
    for (level, &score) in scores.iter().enumerate().take(levels - 1) {
        if score >= 1.0 && chosen.is_none_or(|(_, best)| score > best) {
            chosen = Some((level, score));
        }
    }
    let (input_level, score) = chosen?;
    let cursor = cursors.get(input_level).and_then(Option::as_ref);
    plan_for(tables, levels, input_level, score, cursor, true)
}

/// A plan for `level` whatever its score (a compaction an operator asks
/// for): L0 takes every L0 table; a level below it takes its first table
/// whose smallest key is greater than `after` (the level's first table when
/// `after` is `None`), without wrapping, so walking a level with each
/// plan's `next_cursor` ends once every table of it has been taken. `None`
/// for the last level or past it, and for a level with nothing to take.
pub(crate) fn plan_level(
    tables: &[TableInfo],
    cfg: &PickerConfig,
    level: usize,
    after: Option<&Bytes>,
) -> Option<CompactionPlan> {
    let levels = level_count(cfg);
    if level + 1 >= levels {
        return None;
    }
    let score = level_scores(tables, cfg).get(level).copied().unwrap_or(0.0);
    plan_for(tables, levels, level, score, after, false)
}

/// The plan taking its inputs from `input_level` (see [`pick`] and
/// [`plan_level`]); `wrap`: past the last table of the level, start again
/// at its first.
fn plan_for(
    tables: &[TableInfo],
    levels: usize,
    input_level: usize,
    score: f64,
    cursor: Option<&Bytes>,
    wrap: bool,
) -> Option<CompactionPlan> {
    let output_level = input_level + 1;

    let mut level_tables: Vec<&TableInfo> = tables
        .iter()
        .filter(|t| effective_level(t, levels) == input_level)
        .collect();
    let (inputs, next_cursor) = if input_level == 0 {
        level_tables.sort_by(|a, b| a.file_no.cmp(&b.file_no).then_with(|| by_key_range(a, b)));
        let inputs: Vec<TableInfo> = level_tables.into_iter().cloned().collect();
        (inputs, None)
    } else {
        level_tables.sort_by(|a, b| by_key_range(a, b));
        let next = match cursor {
            Some(c) => level_tables
                .iter()
                .find(|t| t.smallest > *c)
                .or_else(|| level_tables.first().filter(|_| wrap)),
            None => level_tables.first(),
        }?;
        (vec![(*next).clone()], Some(next.largest.clone()))
    };

    let smallest = inputs.iter().map(|t| &t.smallest).min()?;
    let largest = inputs.iter().map(|t| &t.largest).max()?;
    let overlaps = overlapping(
        tables
            .iter()
            .filter(|t| effective_level(t, levels) == output_level),
        smallest,
        largest,
    );

    Some(CompactionPlan {
        input_level: u8::try_from(input_level).ok()?,
        output_level: u8::try_from(output_level).ok()?,
        inputs,
        overlaps,
        score,
        next_cursor,
    })
}

/// Estimate of the bytes compaction still has to rewrite to bring every level
/// to a score below 1.0 (for backpressure and metrics, not for picking).
///
/// Walks the levels top-down, carrying what each one pushes out into the next:
/// - L0, when its score is >= 1.0: all its bytes are rewritten and all of them
///   arrive in L1.
/// - L1..L(last-1): with `size` = own bytes + bytes arriving from above, the
///   excess `size - target` (if positive) is pushed to the next level; moving
///   it rewrites itself plus about `level_size_multiplier` times as much of the
///   next level (whose target is that much larger over the same key space), so
///   it counts `excess * (1 + level_size_multiplier)`.
/// - The last level contributes nothing.
///
/// Every term grows with the bytes of any level, so adding data never lowers
/// the estimate. All arithmetic saturates.
pub(crate) fn pending_compaction_bytes(tables: &[TableInfo], cfg: &PickerConfig) -> u64 {
    let levels = level_count(cfg);
    let (counts, bytes) = level_totals(tables, levels);
    let mut pending = 0u64;
    let mut incoming = 0u64;
    if counts[0] >= cfg.l0_trigger_tables.max(1) {
        pending = bytes[0];
        incoming = bytes[0];
    }
    for (level, &level_bytes) in bytes.iter().enumerate().take(levels - 1).skip(1) {
        let Some(target) = level_target_bytes(level, cfg) else {
            break;
        };
        let size = level_bytes.saturating_add(incoming);
        let excess = size.saturating_sub(target);
        pending = pending
            .saturating_add(excess.saturating_mul(cfg.level_size_multiplier.saturating_add(1)));
        incoming = excess;
    }
    pending
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cfg() -> PickerConfig {
        PickerConfig {
            levels: 5,
            l0_trigger_tables: 4,
            level1_target_bytes: 1000,
            level_size_multiplier: 10,
        }
    }

    fn table(file_no: u64, level: u8, file_bytes: u64, smallest: &str, largest: &str) -> TableInfo {
        TableInfo {
            file_no,
            level,
            file_bytes,
            smallest: Bytes::copy_from_slice(smallest.as_bytes()),
            largest: Bytes::copy_from_slice(largest.as_bytes()),
        }
    }

    fn file_nos(tables: &[TableInfo]) -> Vec<u64> {
        tables.iter().map(|t| t.file_no).collect()
    }

    #[test]
    fn nothing_to_do_on_empty_or_small_state() {
        let cfg = cfg();
        assert_eq!(pick(&[], &[], &cfg), None);
        assert_eq!(pending_compaction_bytes(&[], &cfg), 0);
        let tables = vec![
            table(1, 0, 100, "a", "z"),
            table(2, 0, 100, "a", "z"),
            table(3, 1, 500, "a", "m"),
            table(4, 2, 5000, "a", "z"),
            table(5, 4, 1 << 40, "a", "z"),
        ];
        assert_eq!(pick(&tables, &[], &cfg), None);
        assert_eq!(pending_compaction_bytes(&tables, &cfg), 0);
        assert_eq!(level_scores(&[], &cfg), vec![0.0; 5]);
    }

    #[test]
    fn l0_trigger_fires_at_exactly_the_trigger_count() {
        let cfg = cfg();
        let mut tables: Vec<TableInfo> = (1..4).map(|n| table(n, 0, 10, "a", "b")).collect();
        assert_eq!(pick(&tables, &[], &cfg), None);
        tables.push(table(4, 0, 10, "a", "b"));
        let plan = pick(&tables, &[], &cfg).expect("L0 at trigger");
        assert_eq!((plan.input_level, plan.output_level), (0, 1));
        assert_eq!(plan.score, 1.0);
        assert_eq!(plan.next_cursor, None);
    }

    #[test]
    fn l0_plan_takes_all_l0_tables_by_file_no_and_exactly_the_overlapping_l1_tables() {
        let cfg = cfg();
        let tables = vec![
            table(9, 0, 10, "f", "h"),
            table(7, 0, 10, "c", "e"),
            table(8, 0, 10, "d", "g"),
            table(6, 0, 10, "e", "f"),
            table(1, 1, 10, "a", "b"),
            table(2, 1, 10, "b", "c"), // touches the inputs' smallest key
            table(3, 1, 10, "ca", "ga"),
            table(4, 1, 10, "h", "i"), // touches the inputs' largest key
            table(5, 1, 10, "ha", "k"),
            table(10, 2, 10, "a", "z"),
        ];
        let plan = pick(&tables, &[], &cfg).expect("L0 over trigger");
        assert_eq!(file_nos(&plan.inputs), vec![6, 7, 8, 9]);
        assert_eq!(file_nos(&plan.overlaps), vec![2, 3, 4]);
        assert_eq!(plan.input_bytes(), 70);
        assert!(!plan.is_trivial_move());
    }

    #[test]
    fn level_over_target_is_picked() {
        let cfg = cfg();
        let tables = vec![
            table(1, 1, 600, "a", "c"),
            table(2, 1, 600, "d", "f"),
            table(3, 2, 100, "b", "b"),
            table(4, 2, 100, "g", "h"),
        ];
        let plan = pick(&tables, &[], &cfg).expect("L1 over target");
        assert_eq!((plan.input_level, plan.output_level), (1, 2));
        assert_eq!(file_nos(&plan.inputs), vec![1]);
        assert_eq!(file_nos(&plan.overlaps), vec![3]);
        assert_eq!(plan.score, 1.2);
        assert_eq!(plan.next_cursor, Some(Bytes::from_static(b"c")));
    }

    #[test]
    fn highest_score_wins_and_ties_go_to_the_lower_level() {
        let cfg = cfg();
        // L0 score 1.0, L1 score 1.5, L2 score 2.0.
        let mut tables: Vec<TableInfo> = (1..=4).map(|n| table(n, 0, 1, "a", "b")).collect();
        tables.push(table(10, 1, 1500, "a", "z"));
        tables.push(table(20, 2, 20_000, "a", "z"));
        assert_eq!(level_scores(&tables, &cfg), vec![1.0, 1.5, 2.0, 0.0, 0.0]);
        assert_eq!(pick(&tables, &[], &cfg).map(|p| p.input_level), Some(2));
        // L1 and L2 both at 2.0: L1 first.
        tables[4].file_bytes = 2000;
        assert_eq!(pick(&tables, &[], &cfg).map(|p| p.input_level), Some(1));
    }

    #[test]
    fn round_robin_cursor_walks_the_level_and_wraps() {
        let cfg = cfg();
        let tables = vec![
            table(3, 1, 1000, "m", "p"),
            table(1, 1, 1000, "a", "c"),
            table(2, 1, 1000, "d", "f"),
        ];
        let mut cursors: Vec<Option<Bytes>> = vec![None, None];
        let mut seen = Vec::new();
        for _ in 0..4 {
            let plan = pick(&tables, &cursors, &cfg).expect("L1 over target");
            seen.push(plan.inputs[0].file_no);
            cursors[1] = plan.next_cursor;
        }
        assert_eq!(seen, vec![1, 2, 3, 1]);
        // A cursor between tables starts at the next one; past the end wraps.
        let at = |c: &'static str| {
            pick(
                &tables,
                &[None, Some(Bytes::from_static(c.as_bytes()))],
                &cfg,
            )
            .map(|p| p.inputs[0].file_no)
        };
        assert_eq!(at("c"), Some(2));
        assert_eq!(at("g"), Some(3));
        assert_eq!(at("d"), Some(3));
        assert_eq!(at("zz"), Some(1));
        assert_eq!(at(""), Some(1));
    }

    #[test]
    fn plan_level_takes_a_level_under_target_and_walks_it_once() {
        let cfg = cfg();
        // Far under every trigger and target: pick finds nothing to do.
        let tables = vec![
            table(1, 0, 10, "a", "z"),
            table(3, 1, 10, "m", "p"),
            table(2, 1, 10, "a", "c"),
            table(4, 2, 10, "b", "n"),
        ];
        assert_eq!(pick(&tables, &[], &cfg), None);
        let l0 = plan_level(&tables, &cfg, 0, None).expect("L0 has a table");
        assert_eq!((l0.input_level, l0.output_level), (0, 1));
        assert_eq!(file_nos(&l0.inputs), vec![1]);
        assert_eq!(file_nos(&l0.overlaps), vec![2, 3]);
        let mut seen = Vec::new();
        let mut after: Option<Bytes> = None;
        while let Some(plan) = plan_level(&tables, &cfg, 1, after.as_ref()) {
            seen.push(plan.inputs[0].file_no);
            assert_eq!(file_nos(&plan.overlaps), vec![4]);
            after = plan.next_cursor;
        }
        assert_eq!(seen, vec![2, 3], "no wrap");
        assert_eq!(plan_level(&tables, &cfg, 3, None), None, "L3 is empty");
        assert_eq!(plan_level(&tables, &cfg, 4, None), None, "the last level");
        assert_eq!(plan_level(&tables, &cfg, 9, None), None, "past the last");
    }

    #[test]
    fn last_level_is_never_picked() {
        let cfg = cfg();
        let tables = vec![
            table(1, 4, u64::MAX, "a", "z"),
            table(2, 9, 1 << 50, "a", "z"),
        ];
        assert_eq!(pick(&tables, &[], &cfg), None);
        assert_eq!(level_scores(&tables, &cfg)[4], 0.0);
        let two = PickerConfig { levels: 2, ..cfg };
        let tables = vec![table(1, 1, u64::MAX, "a", "z")];
        assert_eq!(pick(&tables, &[], &two), None);
    }

    #[test]
    fn tables_past_the_last_level_count_as_last_level() {
        let cfg = PickerConfig { levels: 3, ..cfg() };
        let tables = vec![table(1, 1, 5000, "a", "c"), table(2, 7, 10, "b", "b")];
        let plan = pick(&tables, &[], &cfg).expect("L1 over target");
        assert_eq!(plan.output_level, 2);
        assert_eq!(file_nos(&plan.overlaps), vec![2]);
    }

    #[test]
    fn trivial_move_detection() {
        let cfg = cfg();
        let tables = vec![table(1, 1, 2000, "a", "c"), table(2, 2, 10, "d", "e")];
        let plan = pick(&tables, &[], &cfg).expect("L1 over target");
        assert!(plan.is_trivial_move());
        // A single L0 table with no L1 overlap moves.
        let l0 = PickerConfig {
            l0_trigger_tables: 1,
            ..cfg.clone()
        };
        let plan = pick(&[table(5, 0, 10, "a", "b")], &[], &l0).expect("L0 at trigger");
        assert!(plan.is_trivial_move());
        // Two L0 tables are both inputs: a rewrite, never a move.
        let tables = vec![table(5, 0, 10, "a", "b"), table(6, 0, 10, "x", "y")];
        assert!(!pick(&tables, &[], &l0).expect("L0").is_trivial_move());
        // Touching the output level's table is an overlap.
        let tables = vec![table(1, 1, 2000, "a", "c"), table(2, 2, 10, "c", "e")];
        assert!(!pick(&tables, &[], &cfg).expect("L1").is_trivial_move());
    }

    #[test]
    fn level_target_bytes_grows_and_saturates() {
        let cfg = cfg();
        assert_eq!(level_target_bytes(0, &cfg), None);
        assert_eq!(level_target_bytes(1, &cfg), Some(1000));
        assert_eq!(level_target_bytes(2, &cfg), Some(10_000));
        assert_eq!(level_target_bytes(3, &cfg), Some(100_000));
        assert_eq!(level_target_bytes(4, &cfg), None);
        assert_eq!(level_target_bytes(usize::MAX, &cfg), None);
        let deep = PickerConfig {
            levels: 256,
            level1_target_bytes: u64::MAX / 2,
            ..cfg
        };
        assert_eq!(level_target_bytes(3, &deep), Some(u64::MAX));
        assert_eq!(level_target_bytes(254, &deep), Some(u64::MAX));
        assert_eq!(level_target_bytes(255, &deep), None);
    }

    #[test]
    fn pending_bytes_follow_the_documented_estimate() {
        let cfg = cfg();
        // L0 at trigger: 4 * 100 bytes, all of which land in L1 (500 own):
        // L1 size 900 stays under 1000.
        let mut tables: Vec<TableInfo> = (1..=4).map(|n| table(n, 0, 100, "a", "b")).collect();
        tables.push(table(10, 1, 500, "a", "z"));
        assert_eq!(pending_compaction_bytes(&tables, &cfg), 400);
        // L1 at 1000 own + 400 from L0: excess 400, counted 1 + 10 times; it
        // lands in L2 (target 10_000), which stays under.
        tables[4].file_bytes = 1000;
        assert_eq!(pending_compaction_bytes(&tables, &cfg), 400 + 400 * 11);
    }

    #[test]
    fn pending_bytes_grow_with_data_over_target() {
        let cfg = cfg();
        let mut tables = vec![table(1, 1, 1000, "a", "z")];
        let mut last = pending_compaction_bytes(&tables, &cfg);
        for step in 1..=20u64 {
            tables[0].file_bytes += 500;
            tables.push(table(100 + step, 2, 1000 * step, "a", "z"));
            let now = pending_compaction_bytes(&tables, &cfg);
            assert!(now > last, "step {step}: {now} <= {last}");
            last = now;
        }
        tables[0].file_bytes = u64::MAX;
        assert!(pending_compaction_bytes(&tables, &cfg) >= last);
    }

    #[test]
    fn overlapping_edges() {
        let tables = [
            table(1, 1, 1, "c", "e"),
            table(2, 1, 1, "a", "b"),
            table(3, 1, 1, "f", "g"),
            table(4, 1, 1, "", ""),
        ];
        let nos =
            |s: &str, l: &str| file_nos(&overlapping(tables.iter(), s.as_bytes(), l.as_bytes()));
        assert_eq!(nos("b", "c"), vec![2, 1]); // both boundaries touch
        assert_eq!(nos("e", "f"), vec![1, 3]);
        assert_eq!(nos("ba", "bz"), Vec::<u64>::new());
        assert_eq!(nos("d", "d"), vec![1]);
        assert_eq!(nos("", ""), vec![4]);
        assert_eq!(nos("", "zz"), vec![4, 2, 1, 3]);
        // An inverted range is taken as given: nothing is both <= "a" and >= "z".
        assert_eq!(nos("z", "a"), Vec::<u64>::new());
    }

    #[test]
    fn key_may_exist_below_edges() {
        let tables = vec![
            table(1, 1, 1, "c", "e"),
            table(2, 3, 1, "m", "p"),
            table(3, 0, 1, "a", "z"),
        ];
        assert!(key_may_exist_below(&tables, 0, b"c"));
        assert!(key_may_exist_below(&tables, 0, b"e"));
        assert!(!key_may_exist_below(&tables, 0, b"f"));
        assert!(key_may_exist_below(&tables, 1, b"m"));
        assert!(key_may_exist_below(&tables, 2, b"p"));
        assert!(!key_may_exist_below(&tables, 1, b"d")); // only at L1 itself
        assert!(!key_may_exist_below(&tables, 3, b"n"));
        assert!(!key_may_exist_below(&tables, 0, b""));
        assert!(!key_may_exist_below(&[], 0, b"a"));
    }

    #[test]
    fn degenerate_configs_do_not_panic() {
        let tables = vec![table(1, 0, 10, "a", "b"), table(2, 1, 10, "b", "a")];
        for levels in [0, 1, 2, 300, usize::MAX] {
            for trigger in [0, 1] {
                for mult in [0, 1, u64::MAX] {
                    let cfg = PickerConfig {
                        levels,
                        l0_trigger_tables: trigger,
                        level1_target_bytes: 0,
                        level_size_multiplier: mult,
                    };
                    let scores = level_scores(&tables, &cfg);
                    assert!(scores.iter().all(|s| s.is_finite()));
                    if let Some(plan) = pick(&tables, &[], &cfg) {
                        assert!(usize::from(plan.output_level) < scores.len());
                    }
                    pending_compaction_bytes(&tables, &cfg);
                }
            }
        }
    }

    fn arb_key() -> impl Strategy<Value = Bytes> {
        proptest::collection::vec(
            prop_oneof![Just(0u8), Just(b'a'), Just(b'b'), Just(0xff)],
            0..3,
        )
        .prop_map(Bytes::from)
    }

    fn arb_table() -> impl Strategy<Value = TableInfo> {
        (
            0u64..50,
            0u8..8,
            0u64..3000,
            arb_key(),
            arb_key(),
            any::<bool>(),
        )
            .prop_map(|(file_no, level, file_bytes, a, b, ordered)| {
                // Mostly well-formed ranges, sometimes inverted garbage.
                let (smallest, largest) = if ordered && a > b { (b, a) } else { (a, b) };
                TableInfo {
                    file_no,
                    level,
                    file_bytes,
                    smallest,
                    largest,
                }
            })
    }

    fn arb_cfg() -> impl Strategy<Value = PickerConfig> {
        (2usize..7, 0usize..5, 0u64..2000, 2u64..5).prop_map(|(levels, trigger, l1, mult)| {
            PickerConfig {
                levels,
                l0_trigger_tables: trigger,
                level1_target_bytes: l1,
                level_size_multiplier: mult,
            }
        })
    }

    proptest! {
        /// `pick` never panics; a plan reads one level, writes the next one
        /// (never past the last), has exactly the intersecting output-level
        /// tables as overlaps, and comes from the highest-scoring level.
        #[test]
        fn pick_plans_are_well_formed(
            tables in proptest::collection::vec(arb_table(), 0..16),
            cursors in proptest::collection::vec(proptest::option::of(arb_key()), 0..8),
            cfg in arb_cfg(),
        ) {
            let scores = level_scores(&tables, &cfg);
            prop_assert_eq!(scores.len(), cfg.levels);
            let best = scores[..cfg.levels - 1].iter().copied().fold(0.0f64, f64::max);
            let Some(plan) = pick(&tables, &cursors, &cfg) else {
                prop_assert!(best < 1.0);
                return Ok(());
            };
            let input = usize::from(plan.input_level);
            let output = usize::from(plan.output_level);
            prop_assert_eq!(output, input + 1);
            prop_assert!(output < cfg.levels);
            prop_assert!(plan.score >= 1.0);
            prop_assert_eq!(plan.score, best);
            prop_assert_eq!(scores.iter().position(|&s| s == best), Some(input));
            prop_assert!(!plan.inputs.is_empty());
            prop_assert!(plan.inputs.iter().all(|t| usize::from(t.level) == input));
            let effective = |t: &TableInfo| usize::from(t.level).min(cfg.levels - 1);
            if input == 0 {
                let l0 = tables.iter().filter(|t| t.level == 0).count();
                prop_assert_eq!(plan.inputs.len(), l0);
                prop_assert!(plan.inputs.windows(2).all(|w| w[0].file_no <= w[1].file_no));
                prop_assert_eq!(plan.next_cursor.clone(), None);
            } else {
                prop_assert_eq!(plan.inputs.len(), 1);
                prop_assert_eq!(plan.next_cursor.clone(), Some(plan.inputs[0].largest.clone()));
            }
            let smallest = plan.inputs.iter().map(|t| t.smallest.clone()).min().unwrap();
            let largest = plan.inputs.iter().map(|t| t.largest.clone()).max().unwrap();
            let mut expected: Vec<TableInfo> = tables
                .iter()
                .filter(|t| effective(t) == output)
                .filter(|t| t.smallest <= largest && t.largest >= smallest)
                .cloned()
                .collect();
            expected.sort_by(by_key_range);
            prop_assert_eq!(&plan.overlaps, &expected);
            prop_assert!(plan.overlaps.windows(2).all(|w| w[0].smallest <= w[1].smallest));
        }

        /// Adding a table never lowers the pending-bytes estimate.
        #[test]
        fn pending_bytes_never_drop_when_a_table_is_added(
            tables in proptest::collection::vec(arb_table(), 0..16),
            extra in arb_table(),
            cfg in arb_cfg(),
        ) {
            let before = pending_compaction_bytes(&tables, &cfg);
            let mut more = tables.clone();
            more.push(extra);
            prop_assert!(pending_compaction_bytes(&more, &cfg) >= before);
        }
    }
}
