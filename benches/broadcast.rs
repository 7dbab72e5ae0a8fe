//! Where parallel fan-out pays: one frame pushed into N outboxes, inline on
//! the calling thread versus split over the rayon pool (as many threads as
//! cores). The crossing point sets `Config::broadcast_parallel_threshold`.
//!
//! `cargo bench --bench broadcast`; each figure is the time of one broadcast
//! to all N recipients (throughput: recipients per second).

#![allow(missing_docs)] // criterion_group! defines an undocumented public function.

use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tavern::broadcast::{Broadcaster, Recipient};
use tavern::outbox::{Outbox, OutboxReceiver, outbox};

/// Broadcasts timed per batch; the queues are rebuilt between batches.
const BATCH: u64 = 32;

struct Member(Outbox);

impl Recipient for Member {
    fn outbox(&self) -> Option<&Outbox> {
        Some(&self.0)
    }
}

fn members(n: usize) -> (Vec<Member>, Vec<OutboxReceiver>) {
    (0..n)
        .map(|_| {
            let (tx, rx) = outbox(64, 1 << 20);
            (Member(tx), rx)
        })
        .unzip()
}

fn fan_out(c: &mut Criterion) {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let frame = Bytes::from(vec![7_u8; 100]);
    let mut group = c.benchmark_group("broadcast");
    group
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(20);
    for n in [100, 1_000, 2_000, 4_000, 16_000, 64_000] {
        group.throughput(Throughput::Elements(u64::try_from(n).unwrap_or(u64::MAX)));
        for (mode, threshold) in [("inline", usize::MAX), ("rayon", 0)] {
            let broadcaster = Broadcaster::new(cores, threshold, tavern::sched::SchedPolicy::Other)
                .unwrap_or_else(|e| panic!("pool: {e}"));
            group.bench_with_input(BenchmarkId::new(mode, n), &n, |b, &n| {
                b.iter_custom(|iters| {
                    let mut spent = Duration::ZERO;
                    let mut done = 0;
                    while done < iters {
                        let (recipients, receivers) = members(n);
                        let batch = BATCH.min(iters - done);
                        let start = Instant::now();
                        for _ in 0..batch {
                            let refused = broadcaster.send(&frame, &recipients, None);
                            assert!(refused.is_empty());
                        }
                        spent += start.elapsed();
                        done += batch;
                        drop((recipients, receivers));
                    }
                    spent
                });
            });
        }
    }
    group.finish();
}

criterion_group!(benches, fan_out);
criterion_main!(benches);
