//! The WAL writer of one shard: group commit on direct I/O.
//!
//! Owns the open segment and the committer task. Writers call [`WalWriter::submit`]
//! synchronously right after applying their version to the memtable, so the
//! log order is the apply order; they then await the returned ticket, which
//! resolves once the record's batch is durable (sync mode `always`/`batch`) or
//! at once (`periodic`). The committer takes every record queued so far,
//! frames them as one batch encoded straight into the DMA buffer, writes it
//! from the next 4096-byte boundary in one aligned DMA write (zeros up to
//! the following boundary), and fdatasyncs once: records that arrive
//! meanwhile form the next batch.
//!
//! Invariants:
//! - segments are written in format version 2: each batch starts on a block
//!   boundary and no written block is ever written again, so a power cut
//!   during a commit can damage only that commit's unacknowledged batch;
//! - the queue is bounded by `wal_pending_bytes_max`; past it `submit` refuses
//!   and the caller answers MEMORY_PRESSURE before changing anything;
//! - after a failed write or sync the writer is poisoned: every later submit
//!   fails, because what reached the disk is unknown until restart replays it.

use super::format::{self, Record};
use crate::config::{StorageConfig, WalSync};
use crate::storage::disk::{self, DiskFile, Mode};
use crate::storage::error::StorageError;
use futures_channel::oneshot;
use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Write unit: multiple of every logical block size in use (512 or 4096).
pub(crate) const ALIGN: u64 = 4096;

/// Zero-fill write size when preparing a spare segment.
const PREWRITE_CHUNK_BYTES: usize = 1 << 20;

/// The file name of segment `no`.
pub(crate) fn segment_file_name(no: u64) -> String {
    format!("wal-{no:016}.log")
}

/// Parses a segment file name back to its number.
pub(crate) fn parse_segment_file_name(name: &str) -> Option<u64> {
    name.strip_prefix("wal-")?
        .strip_suffix(".log")?
        .parse()
        .ok()
}

/// Counters for health metrics.
#[derive(Debug, Default)]
pub(crate) struct WalStats {
    pub bytes_written: Cell<u64>,
    pub fsyncs: Cell<u64>,
    pub fsync_micros_total: Cell<u64>,
    pub fsync_micros_max: Cell<u64>,
    pub records: Cell<u64>,
    pub batches: Cell<u64>,
}

fn add(c: &Cell<u64>, v: u64) {
    c.set(c.get().wrapping_add(v));
}

struct Queue {
    records: Vec<Record>,
    bytes: usize,
    waiters: Vec<oneshot::Sender<Result<(), StorageError>>>,
    poisoned: Option<StorageError>,
    closed: bool,
    /// A batch is being written or synced.
    in_flight: bool,
    /// Segment switches requested: after `records[..pos]`, start a new
    /// segment and report its number.
    rotations: Vec<(usize, oneshot::Sender<u64>)>,
}

struct Shared {
    queue: RefCell<Queue>,
    wake: glommio::channels::local_channel::LocalSender<()>,
    pending_bytes_max: usize,
    /// Record bytes ever submitted (for flush-by-WAL-size decisions).
    submitted_bytes: Cell<u64>,
    sync: WalSync,
    pub stats: WalStats,
}

/// Handle to a shard's WAL; cheap to clone within its core.
#[derive(Clone)]
pub(crate) struct WalWriter {
    shared: Rc<Shared>,
}

/// Resolves when a submitted record is durable (or at once in periodic mode).
pub(crate) struct Ticket(Option<oneshot::Receiver<Result<(), StorageError>>>);

impl Ticket {
    fn failed(e: StorageError) -> Self {
        let (tx, rx) = oneshot::channel();
        let _ = tx.send(Err(e));
        Ticket(Some(rx))
    }

    pub(crate) async fn wait(self) -> Result<(), StorageError> {
        match self.0 {
            None => Ok(()),
            Some(rx) => rx.await.unwrap_or(Err(StorageError::WalStopped)),
        }
    }
}

/// The open segment, owned by the committer task.
struct Segment {
    file: DiskFile,
    path: PathBuf,
    no: u64,
    /// Where the next batch goes: the block boundary after the last one.
    pos: u64,
}

impl Segment {
    /// Creates segment `no`. With `prewrite`, the whole body is written with
    /// zeros first: later group commits then overwrite written blocks, and
    /// their fdatasync needs no ext4 journal commit for extent conversion.
    async fn create(
        dir: &Path,
        shard_id: u32,
        no: u64,
        bytes_max: u64,
        prewrite: bool,
    ) -> Result<Self, StorageError> {
        let path = dir.join(segment_file_name(no));
        let file = DiskFile::open(&path, Mode::Create).await?;
        file.pre_allocate(bytes_max).await?;
        if prewrite {
            let mut pos = format::SEGMENT_HEADER_LEN as u64;
            while pos < bytes_max {
                let len = PREWRITE_CHUNK_BYTES.min((bytes_max - pos) as usize);
                let zeros = file.alloc(len);
                file.write_at(zeros, pos).await?;
                pos += len as u64;
                glommio::yield_if_needed().await;
            }
        }
        let header = format::encode_segment_header(format::SegmentId {
            shard_id,
            segment_no: no,
        });
        let mut buf = file.alloc(format::SEGMENT_HEADER_LEN);
        buf.as_bytes_mut().copy_from_slice(&header);
        file.write_at(buf, 0).await?;
        file.fdatasync().await?;
        disk::sync_dir(dir).await?;
        let start = format::SEGMENT_HEADER_LEN as u64;
        Ok(Self {
            file,
            path,
            no,
            pos: start,
        })
    }

    /// Writes the batch of `records` (`batch.len` bytes, as
    /// [`format::checked_batch_len`] said) at the next block boundary: one
    /// aligned write of the batch and zeros up to the following boundary,
    /// the batch encoded in place in the buffer. No block written before is
    /// written again.
    async fn append(
        &mut self,
        batch: BatchToWrite<'_>,
        stats: &WalStats,
    ) -> Result<(), StorageError> {
        let padded = (batch.len as u64).div_ceil(ALIGN) * ALIGN;
        let mut buf = self.file.alloc(padded as usize);
        let bytes = buf.as_bytes_mut();
        let have = bytes.len();
        let dst = bytes.get_mut(..batch.len).ok_or(StorageError::Framing(
            format::WalFormatError::BufferTooSmall {
                need: batch.len,
                have,
            },
        ))?;
        let encoded = format::encode_batch_into(dst, batch.segment, batch.first_seq, batch.records)
            .map_err(StorageError::Framing)?;
        debug_assert_eq!(encoded, batch.len);
        let written = self.file.write_at(buf, self.pos).await?;
        if written as u64 != padded {
            return Err(StorageError::ShortWrite {
                path: self.path.clone(),
                written,
                wanted: padded,
            });
        }
        add(&stats.bytes_written, padded);
        self.pos += padded;
        Ok(())
    }

    async fn sync(&self, stats: &WalStats) -> Result<(), StorageError> {
        let started = Instant::now();
        self.file.fdatasync().await?;
        let micros = started.elapsed().as_micros() as u64;
        add(&stats.fsyncs, 1);
        add(&stats.fsync_micros_total, micros);
        if micros > stats.fsync_micros_max.get() {
            stats.fsync_micros_max.set(micros);
        }
        Ok(())
    }
}

/// A checked batch, encoded by [`Segment::append`] straight into its write
/// buffer.
struct BatchToWrite<'a> {
    segment: format::SegmentId,
    first_seq: u64,
    records: &'a [Record],
    /// Header plus payload bytes.
    len: usize,
}

/// Where the writer starts after recovery.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WalStart {
    pub next_segment_no: u64,
    pub next_seq: u64,
}

impl WalWriter {
    /// Creates the next segment and starts the committer task.
    pub(crate) async fn start(
        dir: PathBuf,
        shard_id: u32,
        config: &StorageConfig,
        start: WalStart,
    ) -> Result<Self, StorageError> {
        // The first segment is not zero-filled (start-up stays fast); every
        // later one is prepared in the background while this one fills.
        let segment = Segment::create(
            &dir,
            shard_id,
            start.next_segment_no,
            config.wal_segment_bytes_max,
            false,
        )
        .await?;
        let (wake, woken) = glommio::channels::local_channel::new_bounded(1);
        let shared = Rc::new(Shared {
            queue: RefCell::new(Queue {
                records: Vec::new(),
                bytes: 0,
                waiters: Vec::new(),
                poisoned: None,
                closed: false,
                in_flight: false,
                rotations: Vec::new(),
            }),
            wake,
            pending_bytes_max: config.wal_pending_bytes_max,
            submitted_bytes: Cell::new(0),
            sync: config.wal_sync,
            stats: WalStats::default(),
        });
        let committer = Committer {
            shared: Rc::clone(&shared),
            dir,
            shard_id,
            segment,
            next_seq: start.next_seq,
            segment_bytes_max: config.wal_segment_bytes_max,
            batch_window: Duration::from_micros(config.wal_batch_window_us),
            periodic: Duration::from_millis(config.wal_periodic_interval_ms),
            spare: None,
        };
        glommio::spawn_local(committer.run(woken)).detach();
        Ok(Self { shared })
    }

    /// Record bytes submitted since start.
    pub(crate) fn submitted_bytes(&self) -> u64 {
        self.shared.submitted_bytes.get()
    }

    pub(crate) fn stats(&self) -> &WalStats {
        &self.shared.stats
    }

    /// Fails when a record of `bytes` would not be accepted now.
    pub(crate) fn check_room(&self, bytes: usize) -> Result<(), StorageError> {
        let q = self.shared.queue.borrow();
        if let Some(e) = &q.poisoned {
            return Err(e.clone());
        }
        if q.closed {
            return Err(StorageError::WalClosed);
        }
        if q.bytes > 0 && q.bytes + bytes > self.shared.pending_bytes_max {
            return Err(StorageError::WalBacklog {
                pending: q.bytes,
                limit: self.shared.pending_bytes_max,
            });
        }
        Ok(())
    }

    /// Queues `record` (synchronously: log order is call order) and returns
    /// the ticket to await. Call [`WalWriter::check_room`] first. A record
    /// the format cannot encode is refused here (INVALID_REQUEST) with
    /// nothing queued, so it never poisons the writer.
    pub(crate) fn submit(&self, record: Record) -> Result<Ticket, StorageError> {
        format::check_record(&record).map_err(StorageError::InvalidRecord)?;
        let mut q = self.shared.queue.borrow_mut();
        if let Some(e) = &q.poisoned {
            return Err(e.clone());
        }
        if q.closed {
            return Err(StorageError::WalClosed);
        }
        let len = record.encoded_len();
        q.bytes += len;
        add(&self.shared.submitted_bytes, len as u64);
        q.records.push(record);
        let ticket = if self.shared.sync == WalSync::Periodic {
            Ticket(None)
        } else {
            let (tx, rx) = oneshot::channel();
            q.waiters.push(tx);
            Ticket(Some(rx))
        };
        drop(q);
        // A full wake channel means a wake-up is already pending.
        let _ = self.shared.wake.try_send(());
        Ok(ticket)
    }

    /// Ends the current segment after every record submitted so far: later
    /// records go to a new segment, whose number the receiver yields. Every
    /// record submitted before this call is in a segment numbered below it.
    pub(crate) fn rotate(&self) -> oneshot::Receiver<u64> {
        let (tx, rx) = oneshot::channel();
        let mut q = self.shared.queue.borrow_mut();
        let pos = q.records.len();
        q.rotations.push((pos, tx));
        drop(q);
        let _ = self.shared.wake.try_send(());
        rx
    }

    /// A ticket that resolves once everything submitted so far is durable
    /// (used to answer a repeated write only when its original is durable).
    pub(crate) fn barrier(&self) -> Ticket {
        let mut q = self.shared.queue.borrow_mut();
        if let Some(e) = &q.poisoned {
            return Ticket::failed(e.clone());
        }
        if q.closed {
            return Ticket::failed(StorageError::WalClosed);
        }
        if self.shared.sync == WalSync::Periodic || (q.records.is_empty() && !q.in_flight) {
            return Ticket(None);
        }
        let (tx, rx) = oneshot::channel();
        q.waiters.push(tx);
        drop(q);
        let _ = self.shared.wake.try_send(());
        Ticket(Some(rx))
    }

    /// Commits what is queued and stops the committer (clean shutdown).
    pub(crate) async fn close(&self) -> Result<(), StorageError> {
        let rx = {
            let mut q = self.shared.queue.borrow_mut();
            q.closed = true;
            let (tx, rx) = oneshot::channel();
            q.waiters.push(tx);
            rx
        };
        let _ = self.shared.wake.try_send(());
        rx.await.unwrap_or(Ok(()))
    }
}

struct Committer {
    shared: Rc<Shared>,
    dir: PathBuf,
    shard_id: u32,
    segment: Segment,
    next_seq: u64,
    segment_bytes_max: u64,
    batch_window: Duration,
    periodic: Duration,
    /// The next segment, being created and zero-filled in the background.
    spare: Option<glommio::Task<Result<Segment, StorageError>>>,
}

impl Committer {
    fn prepare_spare(&mut self) {
        let (dir, shard_id, no, max) = (
            self.dir.clone(),
            self.shard_id,
            self.segment.no + 1,
            self.segment_bytes_max,
        );
        self.spare = Some(glommio::spawn_local(async move {
            Segment::create(&dir, shard_id, no, max, true).await
        }));
    }

    /// Switches to the next segment: the spare when ready, else a new one.
    async fn next_segment(&mut self) -> Result<(), StorageError> {
        let no = self.segment.no + 1;
        let spare = match self.spare.take() {
            Some(task) => task.await.ok().filter(|s| s.no == no),
            None => None,
        };
        self.segment = match spare {
            Some(s) => s,
            None => {
                Segment::create(&self.dir, self.shard_id, no, self.segment_bytes_max, false).await?
            }
        };
        self.prepare_spare();
        Ok(())
    }

    async fn run(mut self, woken: glommio::channels::local_channel::LocalReceiver<()>) {
        self.prepare_spare();
        loop {
            let closed = self.shared.queue.borrow().closed;
            let empty = {
                let q = self.shared.queue.borrow();
                q.records.is_empty() && q.rotations.is_empty()
            };
            match self.shared.sync {
                WalSync::Periodic if !closed => glommio::timer::sleep(self.periodic).await,
                WalSync::Periodic => {}
                WalSync::Always | WalSync::Batch if empty && !closed => {
                    if woken.recv().await.is_none() {
                        return;
                    }
                    if self.shared.sync == WalSync::Batch {
                        glommio::timer::sleep(self.batch_window).await;
                    }
                }
                WalSync::Always | WalSync::Batch => {}
            }
            let (records, waiters, rotations, closing) = {
                let mut q = self.shared.queue.borrow_mut();
                q.bytes = 0;
                q.in_flight = !q.records.is_empty() || !q.rotations.is_empty();
                (
                    std::mem::take(&mut q.records),
                    std::mem::take(&mut q.waiters),
                    std::mem::take(&mut q.rotations),
                    q.closed,
                )
            };
            // Once poisoned, nothing more is written: what reached the disk
            // is unknown, and a later batch could be dropped by replay.
            let poisoned = self.shared.queue.borrow().poisoned.clone();
            let result = match poisoned {
                Some(e) => Err(e),
                None => self.commit_with_rotations(&records, rotations).await,
            };
            self.shared.queue.borrow_mut().in_flight = false;
            if let Err(e) = &result {
                tracing::error!(shard = self.shard_id, error = %e, "WAL write failed; writes are refused until restart");
                self.shared.queue.borrow_mut().poisoned = Some(e.clone());
            }
            for w in waiters {
                let _ = w.send(result.clone());
            }
            if closing && self.shared.queue.borrow().records.is_empty() {
                return;
            }
        }
    }

    fn segment_id(&self) -> format::SegmentId {
        format::SegmentId {
            shard_id: self.shard_id,
            segment_no: self.segment.no,
        }
    }

    /// Commits `records`, switching segments where rotations were asked.
    async fn commit_with_rotations(
        &mut self,
        records: &[Record],
        rotations: Vec<(usize, oneshot::Sender<u64>)>,
    ) -> Result<(), StorageError> {
        // `rest` is `records` from index `start` on.
        let (mut rest, mut start) = (records, 0);
        for (pos, tx) in rotations {
            // `pos` is the queue's length when the rotation was asked (so
            // never below an earlier one): the records before it go first.
            let (before, after) = rest
                .split_at_checked(pos.saturating_sub(start))
                .unwrap_or((rest, &[]));
            if !before.is_empty() {
                self.commit(before).await?;
            }
            (rest, start) = (after, start + before.len());
            self.next_segment().await?;
            let _ = tx.send(self.segment.no);
        }
        if !rest.is_empty() {
            self.commit(rest).await?;
        }
        Ok(())
    }

    async fn commit(&mut self, records: &[Record]) -> Result<(), StorageError> {
        let shared = Rc::clone(&self.shared);
        let stats = &shared.stats;
        let len =
            format::checked_batch_len(self.next_seq, records).map_err(StorageError::Framing)?;
        if self.segment.pos + len as u64 > self.segment_bytes_max {
            self.next_segment().await?;
        }
        let batch = BatchToWrite {
            segment: self.segment_id(),
            first_seq: self.next_seq,
            records,
            len,
        };
        self.segment.append(batch, stats).await?;
        self.segment.sync(stats).await?;
        self.next_seq += records.len() as u64;
        add(&stats.records, records.len() as u64);
        add(&stats.batches, 1);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_round_trip() {
        assert_eq!(segment_file_name(42), "wal-0000000000000042.log");
        assert_eq!(parse_segment_file_name(&segment_file_name(42)), Some(42));
        assert_eq!(parse_segment_file_name("wal-x.log"), None);
        assert_eq!(parse_segment_file_name("sst-0001.sst"), None);
    }
}
