//! The pure hot paths of every page: planning-free merge of per-source
//! pages, cursor encoding/decoding, the collector's ordering work, and the
//! residual filter. Run with `cargo bench`.

#![allow(clippy::expect_used)]

use std::collections::BTreeSet;
use std::hint::black_box;

use chrono::{Duration, TimeZone, Utc};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use ledger_gateway::ledger::{merge, Collector, Cursor, SourceFilter, SourcePage, Watermark};
use ledger_gateway::model::{EventType, LedgerEntry, SourceKind, SourceName};
use rust_decimal::Decimal;

fn entry(source: &SourceName, n: i64) -> LedgerEntry {
    let base = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let native_id = format!("led_{:012x}", n.wrapping_mul(2_654_435_761) & 0xffff_ffff_ffff);
    let at = base - Duration::seconds(n * 37 % 8_640_000);
    LedgerEntry {
        raw_event_type: Some("inbound_receipt".into()),
        quantity: Some(Decimal::new(n % 500 - 250, 0)),
        sku: Some(format!("SKU-{:04}", n % 300)),
        item_ref: Some(format!("inv_{}", n % 300)),
        warehouse_id: Some(format!("wh_{}", n % 12)),
        ..LedgerEntry::new(source.clone(), SourceKind::Trackstar, native_id, Some(at), EventType::Receipt)
    }
}

/// Four sources, `per_source` entries each, each page sorted as the driver delivers it.
fn pages(per_source: i64) -> Vec<SourcePage> {
    ["bigledger", "business-central", "pennylane", "trackstar"]
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let source = SourceName::new(name);
            let mut entries: Vec<LedgerEntry> = (0..per_source).map(|n| entry(&source, n * 4 + i as i64)).collect();
            entries.sort_by_cached_key(LedgerEntry::sort_key);
            SourcePage { source: (*name).to_owned(), entries, has_more: true, hint: None }
        })
        .collect()
}

fn bench_merge(c: &mut Criterion) {
    c.bench_function("merge 4 sources x 100 entries into a page of 100", |b| {
        b.iter_batched(|| pages(100), |pages| merge(pages, 100, "digest", None, &[]), BatchSize::SmallInput)
    });
}

fn bench_cursor(c: &mut Criterion) {
    let merged = merge(pages(1), 1, "0123456789abcdef", None, &[]);
    let text = merged.edges[0].1.clone();
    c.bench_function("cursor decode", |b| b.iter(|| Cursor::decode(black_box(&text), "0123456789abcdef")));
    let cursor = Cursor::decode(&text, "0123456789abcdef").expect("a cursor the merge just made decodes");
    c.bench_function("cursor encode", |b| b.iter(|| black_box(&cursor).encode()));
}

fn bench_collector(c: &mut Criterion) {
    let source = SourceName::new("trackstar");
    // One upstream page of 1000 unordered entries, as a Trackstar window delivers it.
    let batch: Vec<LedgerEntry> = (0..1000).map(|n| entry(&source, n)).collect();
    let residual = SourceFilter {
        skus: Some(BTreeSet::from(["SKU-0001".to_owned(), "SKU-0002".to_owned()])),
        ..Default::default()
    };
    c.bench_function("collect 1000 unordered entries into a page of 100", |b| {
        b.iter_batched(
            || batch.clone(),
            |batch| {
                let mut collector = Collector::new(None, SourceFilter::default(), 100);
                collector.push(batch, Watermark::Exhausted);
                collector.finish(true)
            },
            BatchSize::SmallInput,
        )
    });
    c.bench_function("residual filter over 1000 entries", |b| {
        b.iter(|| batch.iter().filter(|e| residual.matches(black_box(e))).count())
    });
}

criterion_group!(benches, bench_merge, bench_cursor, bench_collector);
criterion_main!(benches);
