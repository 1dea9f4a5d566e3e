use super::*;

fn cfg(dir: &Path, max_size: u64) -> SpoolConfig {
    SpoolConfig {
        dir: dir.to_path_buf(),
        max_size,
        flush_timeout: Duration::from_secs(1),
    }
}

fn open(cfg: &SpoolConfig, sinks: &[String]) -> Result<Arc<Spool>, SpoolError> {
    Spool::open(cfg, sinks, &Telemetry::new(), &mut NoKeys)
}

/// [`open`], with the replay keys the spool found.
fn open_keys(
    cfg: &SpoolConfig,
    sinks: &[String],
) -> Result<(Arc<Spool>, Vec<frame::KeyEntry>), SpoolError> {
    let mut keys = Vec::new();
    let spool = Spool::open(cfg, sinks, &Telemetry::new(), &mut keys)?;
    Ok((spool, keys))
}

fn sinks(ids: &[&str]) -> Vec<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

fn ev(sinks: &[&str], n: usize, size: usize) -> NewEvent {
    NewEvent {
        sinks: sinks.iter().map(|s| s.to_string()).collect(),
        received_ms: 1_700_000_000_000,
        head: head(n),
        event: format!("{{\"n\":{n},\"pad\":\"{}\"}}", "x".repeat(size)).into_bytes(),
    }
}

/// A head that says which event it is (its uid) and uses every field.
fn head(n: usize) -> crate::event::Head {
    crate::event::Head {
        uid: format!("uid-{n}"),
        time_ms: 1_700_000_000_000 + n as i64,
        severity_id: (n % 7) as u8,
        class_uid: 2004,
        class_name: "Detection Finding".into(),
        source: "src".into(),
        vendor: "github".into(),
        message: format!("event {n} ✓"),
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// What sink "a" reads (up to 100 events) of the spool in `config`, opened again.
fn a_reads_after_restart(config: &SpoolConfig) -> Vec<u64> {
    let spool = open(config, &sinks(&["a"])).unwrap();
    let read = spool.reader("a").read(100, u64::MAX).unwrap();
    ns(&read)
}

fn ns(recs: &[Record]) -> Vec<u64> {
    recs.iter()
        .map(|r| {
            let v: serde_json::Value = serde_json::from_slice(&r.event).unwrap();
            v["n"].as_u64().unwrap()
        })
        .collect()
}

/// A spool in `dir` with 64 KiB segments holding 30 events of 8 KiB for sink "a".
fn thirty_events_in_small_segments(dir: &Path) -> Arc<Spool> {
    let spool = open(&cfg(dir, 1 << 20), &sinks(&["a"])).unwrap();
    rt().block_on(async {
        for n in 0..30 {
            spool.append(vec![ev(&["a"], n, 8 << 10)]).await.unwrap();
        }
    });
    spool
}

/// The segments and their summaries (not a segment written ahead and not used yet, nor a
/// delivered one kept to be written over next).
fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<_> = all_files(&dir.join("segments"))
        .into_iter()
        .filter(|p| !p.to_string_lossy().contains(spare::NAME))
        .filter(|p| p.extension().is_none_or(|e| e != "del"))
        .collect();
    v.sort();
    v
}

/// Every file in `dir`, sorted.
fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

/// The delivered segments kept to be written over (renamed `.del`).
fn kept_files(dir: &Path) -> Vec<PathBuf> {
    with_extension(all_files(&dir.join("segments")), "del")
}

/// The segments themselves (not their summaries).
fn seg_files(dir: &Path) -> Vec<PathBuf> {
    with_extension(segment_files(dir), "seg")
}

fn with_extension(files: Vec<PathBuf>, ext: &str) -> Vec<PathBuf> {
    files
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect()
}

#[test]
fn each_sink_reads_its_own_events_at_its_own_pace_and_cursors_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    {
        let spool = open(&cfg(dir.path(), 64 << 20), &sinks(&["a", "b"])).unwrap();
        rt.block_on(async {
            for n in 0..10 {
                let to: &[&str] = if n % 2 == 0 { &["a", "b"] } else { &["a"] };
                spool.append(vec![ev(to, n, 10)]).await.unwrap();
            }
        });
        assert_eq!((spool.pending("a"), spool.pending("b")), (10, 5));
        let mut a = spool.reader("a");
        let batch = a.read(4, u64::MAX).unwrap();
        assert_eq!(ns(&batch), [0, 1, 2, 3]);
        spool.ack("a", batch.last().unwrap().seq, 4).unwrap();
        let mut b = spool.reader("b");
        assert_eq!(ns(&b.read(100, u64::MAX).unwrap()), [0, 2, 4, 6, 8]);
        assert!(b.read(100, u64::MAX).unwrap().is_empty());
        assert_eq!((spool.pending("a"), spool.pending("b")), (6, 5));
        spool.close();
    }
    // Reopened: "a" resumes after its cursor; "b" acknowledged nothing, so gets all again.
    let spool = open(&cfg(dir.path(), 64 << 20), &sinks(&["a", "b"])).unwrap();
    assert_eq!((spool.pending("a"), spool.pending("b")), (6, 5));
    assert_eq!(
        ns(&spool.reader("a").read(100, u64::MAX).unwrap()),
        [4, 5, 6, 7, 8, 9]
    );
    assert_eq!(
        ns(&spool.reader("b").read(100, u64::MAX).unwrap()),
        [0, 2, 4, 6, 8]
    );
    // New events continue the sequence after the old ones.
    rt.block_on(spool.append(vec![ev(&["a"], 10, 1)])).unwrap();
    let all = spool.reader("a").read(100, u64::MAX).unwrap();
    assert!(all.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(ns(&all).last(), Some(&10));
}

#[test]
fn batches_respect_max_bytes_but_always_take_one_event() {
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let spool = open(&cfg(dir.path(), 64 << 20), &sinks(&["a"])).unwrap();
    rt.block_on(async {
        for n in 0..5 {
            spool.append(vec![ev(&["a"], n, 1000)]).await.unwrap();
        }
    });
    let mut r = spool.reader("a");
    assert_eq!(ns(&r.read(100, 2500).unwrap()), [0, 1]);
    assert_eq!(ns(&r.read(100, 10).unwrap()), [2]);
    assert_eq!(ns(&r.read(100, u64::MAX).unwrap()), [3, 4]);
}

#[test]
fn delivered_segments_are_deleted_and_a_full_spool_refuses_appends() {
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let max = 1 << 20;
    let spool = open(&cfg(dir.path(), max), &sinks(&["a"])).unwrap();
    let mut n = 0;
    let full = rt.block_on(async {
        loop {
            match spool.append(vec![ev(&["a"], n, 8 << 10)]).await {
                Ok(()) => n += 1,
                Err(e) => return e,
            }
        }
    });
    assert!(matches!(full, AppendError::Full { .. }), "{full}");
    assert!(spool.bytes() <= max);
    assert!(segment_files(dir.path()).len() > 2, "segments roll");
    let mut r = spool.reader("a");
    let mut seen = 0;
    loop {
        let b = r.read(50, u64::MAX).unwrap();
        if b.is_empty() {
            break;
        }
        seen += b.len();
        spool
            .ack("a", b.last().unwrap().seq, b.len() as u64)
            .unwrap();
    }
    assert_eq!(seen, n, "every accepted event is read once");
    assert_eq!(spool.pending("a"), 0);
    assert_eq!(
        segment_files(dir.path()).len(),
        1,
        "only the active segment is left"
    );
    // One delivered segment is kept to be written over as the next one ahead, no more.
    assert_eq!(kept_files(dir.path()).len(), 1);
    assert!(spool.bytes() < 100 << 10);
    rt.block_on(spool.append(vec![ev(&["a"], 0, 8 << 10)]))
        .expect("room again");
}

#[test]
fn a_torn_tail_is_cut_off_and_quarantined_and_earlier_events_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    {
        let spool = open(&cfg(dir.path(), 64 << 20), &sinks(&["a"])).unwrap();
        rt.block_on(async {
            for n in 0..3 {
                spool.append(vec![ev(&["a"], n, 100)]).await.unwrap();
            }
        });
        spool.close();
    }
    // A crash in the middle of writing the next group: half a frame at the end.
    let seg = segment_files(dir.path()).pop().unwrap();
    let mut half = Vec::new();
    frame::encode_record(&mut half, 4, 0, &sinks(&["a"]), &head(3), b"{\"n\":3}");
    half.truncate(half.len() / 2);
    let len = std::fs::metadata(&seg).unwrap().len();
    append_to(&seg, &half);
    let spool = open(&cfg(dir.path(), 64 << 20), &sinks(&["a"])).unwrap();
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), len);
    assert_eq!(
        ns(&spool.reader("a").read(100, u64::MAX).unwrap()),
        [0, 1, 2]
    );
    let q: Vec<_> = std::fs::read_dir(dir.path().join("quarantine"))
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    assert_eq!(q, [half], "the cut bytes are kept for inspection");
    // The spool goes on writing after the cut.
    rt.block_on(spool.append(vec![ev(&["a"], 3, 1)])).unwrap();
    assert_eq!(
        ns(&spool.reader("a").read(100, u64::MAX).unwrap()),
        [0, 1, 2, 3]
    );
}

#[test]
fn damage_in_acknowledged_data_refuses_to_start_and_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    // Small segments, so the damage lands in a sealed one.
    thirty_events_in_small_segments(dir.path()).close();
    let segs = segment_files(dir.path());
    let segs: Vec<PathBuf> = segs
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    assert!(segs.len() >= 2);
    let mut bytes = std::fs::read(&segs[0]).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&segs[0], &bytes).unwrap();
    // With its summary, the sealed segment is not read at start: the damage is found when the
    // sink reads it, and the error names it.
    {
        let spool = open(&cfg(dir.path(), 1 << 20), &sinks(&["a"])).unwrap();
        let err = spool.reader("a").read(100, u64::MAX).unwrap_err();
        assert!(
            err.to_string().contains("spool segment 1 at byte 0"),
            "{err}"
        );
        spool.close();
    }
    // Without it, the start reads the segment and refuses.
    std::fs::remove_file(segs[0].with_extension("sum")).unwrap();
    let err = match open(&cfg(dir.path(), 1 << 20), &sinks(&["a"])) {
        Ok(_) => panic!("a damaged sealed segment was accepted"),
        Err(e) => e,
    };
    let msg = err.to_string();
    assert!(matches!(err, SpoolError::Corrupt { .. }), "{msg}");
    assert!(msg.contains(&segs[0].display().to_string()), "{msg}");
    assert!(msg.contains("at byte 0"), "{msg}");
    // Nothing was deleted or cut.
    assert_eq!(std::fs::read(&segs[0]).unwrap(), bytes);
}

#[test]
fn a_spool_dir_that_is_a_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let err = match open(&cfg(&file, 1 << 20), &sinks(&["a"])) {
        Ok(_) => panic!("opened a file as a spool"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("spool directory") && err.contains("not-a-dir"),
        "{err}"
    );
}

#[test]
fn dead_letters_survive_a_restart_and_are_removed_whole() {
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let letter = |seq| DeadLetter {
        seq,
        received_ms: 1,
        dead_lettered_ms: 2,
        attempts: 3,
        error: "HTTP 400".into(),
        event: b"{}".to_vec(),
    };
    {
        let spool = open(&cfg(dir.path(), 64 << 20), &sinks(&["a"])).unwrap();
        spool
            .dead_letter("a", &[letter(1), letter(2), letter(3)])
            .unwrap();
        spool.close();
    }
    let spool = open(&cfg(dir.path(), 64 << 20), &sinks(&["a"])).unwrap();
    assert_eq!(spool.dead_letter_counts()["a"], 3);
    assert_eq!(
        spool.dead_letters(Some("a"), Some(2), 10).unwrap()[0].1.seq,
        2
    );
    assert_eq!(
        rt.block_on(spool.drop_dead_letters(Some("a"), Some(2)))
            .unwrap(),
        1
    );
    assert_eq!(
        rt.block_on(spool.replay_dead_letters(Some("a"), None, 5))
            .unwrap(),
        2
    );
    assert_eq!(spool.dead_letter_counts()["a"], 0);
    assert_eq!(spool.pending("a"), 2);
    assert_eq!(spool.reader("a").read(10, u64::MAX).unwrap().len(), 2);
}

/// Sinks added and removed while the spool runs: a removed sink's queued events, and those
/// appended for it afterwards, are orphans whose segments stay; added back, it takes them up
/// from its persisted cursor; a sink never seen starts at the end of the log; a restart in
/// between counts the same.
#[test]
fn sinks_added_and_removed_at_run_time_keep_every_queued_event() {
    let dir = tempfile::tempdir().unwrap();
    // Small segments, so garbage collection has sealed segments to consider.
    let spool = open(&cfg(dir.path(), 1 << 20), &sinks(&["a", "b"])).unwrap();
    let rt = rt();
    let idle = || *spool.shared.idle.borrow();
    rt.block_on(async {
        for n in 0..6 {
            spool
                .append(vec![ev(&["a", "b"], n, 20_000)])
                .await
                .unwrap();
        }
    });
    // "b" delivers two, then is removed with four queued.
    let first = spool.reader("b").read(2, u64::MAX).unwrap();
    spool.ack("b", first.last().unwrap().seq, 2).unwrap();
    assert_eq!(idle(), 10);
    assert_eq!(spool.remove_sink("b"), 4);
    assert_eq!(spool.orphans(), BTreeMap::from([("b".to_string(), 4)]));
    assert_eq!(
        (spool.pending("b"), idle()),
        (0, 6),
        "orphans are not waited for"
    );
    // A request already under way appends for "b" after its removal: an orphan too.
    rt.block_on(spool.append(vec![ev(&["a", "b"], 6, 20_000)]))
        .unwrap();
    assert_eq!(spool.orphans()["b"], 5);
    // "a" delivers everything; the segments holding b's events stay.
    let all = spool.reader("a").read(100, u64::MAX).unwrap();
    spool.ack("a", all.last().unwrap().seq, 7).unwrap();
    assert_eq!(idle(), 0);
    // A sink never seen starts at the end: nothing old is pending for it.
    spool.add_sink("c").unwrap();
    assert_eq!(spool.pending("c"), 0);
    assert!(spool.reader("c").read(100, u64::MAX).unwrap().is_empty());
    // "b" added back delivers the five it had not, from its cursor.
    spool.add_sink("b").unwrap();
    assert!(spool.orphans().is_empty());
    assert_eq!((spool.pending("b"), idle()), (5, 5));
    assert_eq!(
        ns(&spool.reader("b").read(100, u64::MAX).unwrap()),
        [2, 3, 4, 5, 6]
    );
    // Adding a configured sink again changes nothing.
    spool.add_sink("b").unwrap();
    assert_eq!(spool.pending("b"), 5);
    // Removed again and the spool restarted without it: the same five are orphans.
    spool.remove_sink("b");
    spool.close();
    drop(spool);
    let spool = open(&cfg(dir.path(), 1 << 20), &sinks(&["a", "c"])).unwrap();
    assert_eq!(spool.orphans(), BTreeMap::from([("b".to_string(), 5)]));
    // Dropped, then added back: nothing is pending, and the segments are gone.
    rt.block_on(spool.drop_orphan("b")).unwrap();
    spool.add_sink("b").unwrap();
    assert_eq!(spool.pending("b"), 0);
    assert!(spool.reader("b").read(100, u64::MAX).unwrap().is_empty());
    assert_eq!(
        segment_files(dir.path()).len(),
        1,
        "only the active segment is left"
    );
}

/// A sink removed with nothing queued leaves no orphan.
#[test]
fn a_sink_removed_with_nothing_queued_leaves_no_orphan() {
    let dir = tempfile::tempdir().unwrap();
    let spool = open(&cfg(dir.path(), 1 << 20), &sinks(&["a"])).unwrap();
    assert_eq!(spool.remove_sink("a"), 0);
    assert!(spool.orphans().is_empty());
    assert_eq!(spool.remove_sink("never-configured"), 0);
}

/// Records carry their head: what was spooled is what a reader gets, after a restart too.
/// Records of version 1 (spooled before heads) are still read, their head taken from the JSON.
#[test]
fn records_keep_their_head_and_version_1_records_are_still_read() {
    let dir = tempfile::tempdir().unwrap();
    {
        let spool = open(&cfg(dir.path(), 64 << 20), &sinks(&["a"])).unwrap();
        rt().block_on(spool.append(vec![ev(&["a"], 5, 10)]))
            .unwrap();
        spool.close();
    }
    // An older version's record, appended to the segment by hand: the v1 layout is the v2
    // layout without the head.
    let old_event = br#"{"class_uid":2004,"class_name":"Detection Finding","time":1700000000123,"severity_id":4,"message":"old","metadata":{"uid":"old-1","logged_time":1,"product":{"vendor_name":"github"}},"unmapped":{"siemgate":{"source":"src"}}}"#;
    let mut v1 = Vec::new();
    frame::encode_with(&mut v1, |p| {
        p.push(1);
        p.extend_from_slice(&2u64.to_le_bytes());
        p.extend_from_slice(&7i64.to_le_bytes());
        p.push(1);
        p.push(1);
        p.extend_from_slice(b"a");
        p.extend_from_slice(old_event);
    });
    {
        use std::io::Write;
        let seg = segment_files(dir.path()).pop().unwrap();
        let mut f = std::fs::OpenOptions::new().append(true).open(seg).unwrap();
        f.write_all(&v1).unwrap();
    }
    let spool = open(&cfg(dir.path(), 64 << 20), &sinks(&["a"])).unwrap();
    let recs = spool.reader("a").read(10, u64::MAX).unwrap();
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0].head, head(5));
    assert_eq!(
        recs[1].head,
        crate::event::Head {
            uid: "old-1".into(),
            time_ms: 1_700_000_000_123,
            severity_id: 4,
            class_uid: 2004,
            class_name: "Detection Finding".into(),
            source: "src".into(),
            vendor: "github".into(),
            message: "old".into(),
        }
    );
    assert_eq!(&recs[1].event[..], old_event);
}

/// The local replay store's keys are durable with their events and outlive their segments: a
/// restart finds every key of every appended request, after the segments were delivered and
/// deleted too, and a torn key log tail loses nothing the segments still hold.
#[test]
fn replay_keys_are_durable_with_their_events_and_outlive_their_segments() {
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let hour = 3600;
    let expiry = 1_700_000_000 + 86_400;
    {
        let (spool, found) = open_keys(&cfg(dir.path(), 1 << 20), &sinks(&["a"])).unwrap();
        assert!(found.is_empty());
        rt.block_on(async {
            for n in 0..20u64 {
                let keys = vec![
                    (u128::from(n) << 64 | 1, expiry),
                    (u128::from(n), expiry + 2 * hour),
                ];
                spool
                    .append_with_keys(vec![ev(&["a"], n as usize, 20_000)], keys)
                    .await
                    .unwrap();
            }
            // Keys without an event are not written: nothing was spooled for that request.
            spool
                .append_with_keys(Vec::new(), vec![(999, expiry)])
                .await
                .unwrap();
        });
        // Every event delivered: the sealed segments go, their keys stay in the key log.
        let all = spool.reader("a").read(100, u64::MAX).unwrap();
        spool.ack("a", all.last().unwrap().seq, 20).unwrap();
        assert_eq!(
            segment_files(dir.path()).len(),
            1,
            "sealed segments deleted"
        );
        spool.close();
    }
    let expected: std::collections::BTreeSet<(u128, u64)> = (0..20u64)
        .flat_map(|n| {
            [
                (u128::from(n) << 64 | 1, expiry),
                (u128::from(n), expiry + 2 * hour),
            ]
        })
        .collect();
    let got = || -> (Arc<Spool>, BTreeSet<(u128, u64)>) {
        let (spool, found) = open_keys(&cfg(dir.path(), 1 << 20), &sinks(&["a"])).unwrap();
        (spool, found.into_iter().collect())
    };
    {
        let (spool, found) = got();
        assert_eq!(found, expected);
        assert!(spool.key_bytes() >= 40 * 24);
        spool.close();
    }
    // A torn tail in the key log (a write the crash caught before its sync).
    let log = dir
        .path()
        .join("replay")
        .join(format!("{}.keys", expiry / hour));
    let mut bytes = std::fs::read(&log).unwrap();
    bytes.extend_from_slice(&[9, 0, 0]);
    std::fs::write(&log, bytes).unwrap();
    {
        let (spool, found) = got();
        assert_eq!(found, expected);
        // Expiry is by hour of expiry, whole files at a time.
        assert_eq!(spool.expire_keys(expiry), 0);
        assert_eq!(spool.expire_keys((expiry / hour + 1) * hour), 1);
        spool.close();
    }
    let (_spool, left) = got();
    assert!(left.iter().all(|(_, e)| *e == expiry + 2 * hour) && left.len() == 20);
}

/// A start writes again only the keys the key log lost: restarts with nothing new leave the
/// log as it was (a crash loop never grows it), each key is found once, and keys the log lost
/// (a crash before its write) are written again from the segment that holds them, once.
#[test]
fn restarts_write_again_only_the_keys_the_key_log_lost() {
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let expiry = 1_700_000_000 + 86_400;
    let log_bytes = || -> u64 {
        std::fs::read_dir(dir.path().join("replay"))
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum()
    };
    let keys_of = |n: u64| {
        vec![
            (u128::from(n) << 64 | 1 << 40, expiry),
            (u128::from(n), expiry),
        ]
    };
    let expected: BTreeSet<(u128, u64)> = (0..30).flat_map(keys_of).collect();
    // 4 MiB segments: every event in the newest segment, which a start reads whole.
    let config = cfg(dir.path(), 64 << 20);
    {
        let spool = open(&config, &sinks(&["a"])).unwrap();
        rt.block_on(async {
            for n in 0..30u64 {
                spool
                    .append_with_keys(vec![ev(&["a"], n as usize, 20_000)], keys_of(n))
                    .await
                    .unwrap();
            }
        });
        spool.close();
    }
    assert_eq!(segment_files(dir.path()).len(), 1);
    let start = || -> Vec<(u128, u64)> {
        let (spool, found) = open_keys(&config, &sinks(&["a"])).unwrap();
        spool.close();
        found
    };
    let found = start();
    assert_eq!(found.len(), 60, "each key found once");
    assert_eq!(found.into_iter().collect::<BTreeSet<_>>(), expected);
    let logged = log_bytes();
    assert!(logged >= 60 * 24, "every key in the log: {logged} bytes");
    for _ in 0..3 {
        let found = start();
        assert_eq!(found.len(), 60, "each key found once");
        assert_eq!(found.into_iter().collect::<BTreeSet<_>>(), expected);
        assert_eq!(log_bytes(), logged, "a restart added to the key log");
    }
    // The key log lost (a crash before its writes reached the disk): the keys are written
    // again from the segment, in one frame, and only once.
    for e in std::fs::read_dir(dir.path().join("replay")).unwrap() {
        std::fs::write(e.unwrap().path(), b"").unwrap();
    }
    let mut one_frame = Vec::new();
    frame::encode_keys(
        &mut one_frame,
        &expected.iter().copied().collect::<Vec<_>>(),
    );
    for _ in 0..2 {
        let found = start();
        assert_eq!(found.len(), 60, "each key found once");
        assert_eq!(found.into_iter().collect::<BTreeSet<_>>(), expected);
        assert_eq!(log_bytes(), one_frame.len() as u64);
    }
}

/// What a start finds: pending and orphaned events, every sink's events, the replay keys.
type Found = (
    u64,
    u64,
    BTreeMap<String, u64>,
    Vec<u64>,
    Vec<u64>,
    std::collections::BTreeSet<(u128, u64)>,
);

fn found(dir: &Path) -> Found {
    let (spool, keys) = open_keys(&cfg(dir, 1 << 20), &sinks(&["a", "b"])).unwrap();
    let f = (
        spool.pending("a"),
        spool.pending("b"),
        spool.orphans(),
        ns(&spool.reader("a").read(1000, u64::MAX).unwrap()),
        ns(&spool.reader("b").read(1000, u64::MAX).unwrap()),
        keys.into_iter().collect(),
    );
    spool.close();
    f
}

/// Sealed segments are taken from their summaries at start, and a start that reads every
/// record (summaries gone, torn, or not matching their segment) finds the same.
#[test]
fn a_start_takes_sealed_segments_from_their_summaries_and_agrees_with_a_full_read() {
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let expiry = 1_700_000_000 + 86_400;
    {
        // 64 KiB segments, about 8 events each.
        let spool = open(&cfg(dir.path(), 1 << 20), &sinks(&["a", "b", "gone"])).unwrap();
        rt.block_on(async {
            for n in 0..60u64 {
                let to: &[&str] = match n % 3 {
                    0 => &["a", "b"],
                    1 => &["a"],
                    _ => &["b", "gone"],
                };
                let keys = vec![(u128::from(n) + 1, expiry)];
                spool
                    .append_with_keys(vec![ev(to, n as usize, 8 << 10)], keys)
                    .await
                    .unwrap();
            }
        });
        // "a" is done with part of the log: its cursor is inside a sealed segment.
        let done = spool.reader("a").read(17, u64::MAX).unwrap();
        spool.ack("a", done.last().unwrap().seq, 17).unwrap();
        spool.close();
    }
    let files = segment_files(dir.path());
    let of = |ext: &str| -> Vec<PathBuf> {
        files
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == ext))
            .cloned()
            .collect()
    };
    let (segs, sums) = (of("seg"), of("sum"));
    assert!(segs.len() >= 5, "{segs:?}");
    assert_eq!(
        sums.len(),
        segs.len() - 1,
        "every sealed segment summarized"
    );

    // "gone" is no longer configured: its events are orphans.
    let from_summaries = found(dir.path());
    let (pa, pb, orphans, a, b, keys) = &from_summaries;
    assert_eq!((*pa, *pb), (40 - 17, 40));
    assert_eq!(orphans.get("gone"), Some(&20));
    assert_eq!(a.len(), 23);
    assert_eq!(b.len(), 40);
    assert_eq!(
        keys.len(),
        60,
        "the summarized segments' keys come from the key log"
    );

    // A torn summary, and one that does not match its segment, are read past.
    std::fs::write(&sums[0], b"{\"first_seq\":1,\"la").unwrap();
    let text = std::fs::read_to_string(&sums[1]).unwrap();
    let size = std::fs::metadata(&segs[1]).unwrap().len();
    std::fs::write(
        &sums[1],
        text.replace(
            &format!("\"size\":{size}"),
            &format!("\"size\":{}", size + 1),
        ),
    )
    .unwrap();
    assert_eq!(found(dir.path()), from_summaries);
    // No summary at all: every segment read whole.
    for s in &sums {
        let _ = std::fs::remove_file(s);
    }
    assert_eq!(found(dir.path()), from_summaries);
}

/// A delivered segment is deleted a cut at a time after it is renamed `.del`: a crash in the
/// middle leaves a part of it that the next start deletes, whatever bytes it ends on.
#[test]
fn a_delivered_segment_caught_half_deleted_is_removed_at_start() {
    let dir = tempfile::tempdir().unwrap();
    {
        let spool = thirty_events_in_small_segments(dir.path());
        let all = spool.reader("a").read(10, u64::MAX).unwrap();
        spool.ack("a", all.last().unwrap().seq, 10).unwrap();
        spool.close();
    }
    // Deletions finish, and the delivered segment kept to be written over goes at close.
    let files = all_files(&dir.path().join("segments"));
    assert!(kept_files(dir.path()).is_empty(), "{files:?}");
    // As a crash would leave one: renamed, cut to a few bytes in the middle of a frame.
    let doomed = dir.path().join("segments").join("00000000000000000007.del");
    std::fs::write(&doomed, [7u8; 13]).unwrap();
    let spool = open(&cfg(dir.path(), 1 << 20), &sinks(&["a"])).unwrap();
    assert!(!doomed.exists());
    assert_eq!(spool.pending("a"), 20);
    assert_eq!(
        ns(&spool.reader("a").read(100, u64::MAX).unwrap()),
        (10..30).collect::<Vec<u64>>()
    );
}

/// A measurement's size: the environment variable `var`, or `default`.
fn size_from_env(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The key log's size on disk and how long a start takes to read it back. Not a check (no
/// timed assertion): run with `cargo nextest run --release --lib key_log_size_and_load_time
/// --run-ignored only --no-capture` and read the figures.
#[test]
#[ignore]
fn key_log_size_and_load_time() {
    let n = size_from_env("SIEMGATE_KEY_LOG_KEYS", 10_000_000) as u64;
    let dir = tempfile::tempdir().unwrap();
    let log_dir = dir.path().join("replay");
    let log = super::keylog::KeyLog::open(&log_dir, &mut super::NoKeys).unwrap();
    // Groups of 32 requests with 2 keys each, spread over a day of expiries.
    let mut seq = 0;
    for chunk in (0..n).collect::<Vec<_>>().chunks(64) {
        let keys: Vec<(u128, u64)> = chunk
            .iter()
            .map(|i| {
                // Uniform, like the SHA-256 prefixes replay keys are.
                let d = crate::verify::mac::sha256(&[&i.to_le_bytes()]);
                (
                    u128::from_le_bytes(d[..16].try_into().unwrap()),
                    1_700_000_000 + i % 86_400,
                )
            })
            .collect();
        seq += 32;
        log.append(&keys, seq);
    }
    log.sync_upto(seq).unwrap();
    let bytes = log.bytes();
    drop(log);
    let started = std::time::Instant::now();
    let mut keys = Vec::new();
    super::keylog::KeyLog::open(&log_dir, &mut keys).unwrap();
    let took = started.elapsed();
    assert_eq!(keys.len() as u64, n);
    eprintln!(
        "key log: {n} keys, {bytes} bytes ({:.1} bytes a key), read back into a list in {took:?} ({:.1} M keys/s)",
        bytes as f64 / n as f64,
        n as f64 / took.as_secs_f64() / 1e6
    );
    let middle = keys[n as usize / 2].0;
    drop(keys);
    // As a start does: read straight into the local replay store's loader, then the index
    // built in its lists (every key inside the retention).
    let started = std::time::Instant::now();
    let mut set = super::keys::KeySet::new(86_400);
    let now = 1_700_000_000 - 1;
    let mut load = set.loader(now);
    super::keylog::KeyLog::open(&log_dir, &mut load).unwrap();
    let read = started.elapsed();
    assert_eq!(set.load_from(load, now + 86_400), n as usize);
    let took = started.elapsed();
    assert!(set.contains(middle, now));
    eprintln!(
        "key set: {n} keys read into the loader in {read:?}, index built {:?} later: {took:?} ({:.1} M keys/s), {:.1} bytes a key",
        took - read,
        n as f64 / took.as_secs_f64() / 1e6,
        set.bytes() as f64 / n as f64
    );
}

/// How long a start takes on a large spool, from the segments' summaries and, for comparison,
/// reading every record. Not a check (no timed assertion): run with `SIEMGATE_SPOOL_EVENTS=
/// 10000000 cargo nextest run --release --lib spool_start_time --run-ignored only --no-capture`
/// (about 1.1 KiB a event on disk in the test's temporary directory) and read the figures.
#[test]
#[ignore]
fn spool_start_time() {
    let n = size_from_env("SIEMGATE_SPOOL_EVENTS", 1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let config = cfg(dir.path(), 64 << 30);
    let rt = rt();
    let started = std::time::Instant::now();
    {
        let spool = open(&config, &sinks(&["a"])).unwrap();
        rt.block_on(async {
            let mut next = 0;
            while next < n {
                let batch = (next..(next + 2000).min(n))
                    .map(|i| {
                        let mut e = ev(&["a"], i, 900);
                        e.head = Default::default();
                        e
                    })
                    .collect::<Vec<_>>();
                let keys = (next..next + batch.len())
                    .map(|i| (i as u128 + 1, 1_700_000_000 + 86_400))
                    .collect();
                next += batch.len();
                spool.append_with_keys(batch, keys).await.unwrap();
            }
        });
        spool.close();
    }
    let bytes: u64 = segment_files(dir.path())
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    eprintln!(
        "spool: {n} events, {bytes} bytes on disk, written in {:?}",
        started.elapsed()
    );
    let time_open = |what: &str| {
        let started = std::time::Instant::now();
        let (spool, keys) = open_keys(&config, &sinks(&["a"])).unwrap();
        let took = started.elapsed();
        assert_eq!(spool.pending("a"), n as u64);
        assert!(keys.len() >= n);
        spool.close();
        eprintln!("start {what}: {took:?}");
    };
    time_open("from the summaries");
    for p in segment_files(dir.path()) {
        if p.extension().is_some_and(|e| e == "sum") {
            std::fs::remove_file(p).unwrap();
        }
    }
    time_open("reading every record (no summaries)");
}

/// A commit counts its events and bytes for the sinks it holds records for, once they are
/// readable: a sink added back (a new worker) is counted from then on; a removed one not at all.
#[tokio::test]
async fn commits_count_arrivals_for_their_live_sinks() {
    let dir = tempfile::tempdir().unwrap();
    let spool = open(&cfg(dir.path(), 1 << 30), &sinks(&["a", "b"])).unwrap();
    let (a, b) = (spool.arrivals("a"), spool.arrivals("b"));
    let e = ev(&["a"], 0, 10);
    let len = e.event.len() as u64;
    spool.append(vec![e]).await.unwrap();
    assert_eq!(
        a.now(),
        Arrived {
            events: 1,
            bytes: len
        }
    );
    assert_eq!(b.now(), Arrived::default(), "nothing for b");

    spool.remove_sink("b");
    spool.append(vec![ev(&["b"], 1, 10)]).await.unwrap();
    assert_eq!(b.now(), Arrived::default(), "b is not live: an orphan");
    spool.add_sink("b").unwrap();
    let b = spool.arrivals("b");
    spool.append(vec![ev(&["a", "b"], 2, 10)]).await.unwrap();
    assert_eq!(b.now().events, 1, "b's new worker counts from its return");
    assert_eq!(a.now().events, 2);
    spool.close();
}

/// Appends `bytes` to the file at `path`.
fn append_to(path: &Path, bytes: &[u8]) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(bytes).unwrap();
}

/// Appends `n` zero bytes to `path` (as the spare thread writes them: real zeros, not a hole).
fn add_zeros(path: &Path, n: usize) {
    append_to(path, &vec![0u8; n]);
}

/// A closed spool of one segment holding events 0..`n` for sink "a"; that segment's path.
fn closed_spool_with(config: &SpoolConfig, n: usize) -> PathBuf {
    let spool = open(config, &sinks(&["a"])).unwrap();
    rt().block_on(async {
        for i in 0..n {
            spool.append(vec![ev(&["a"], i, 100)]).await.unwrap();
        }
    });
    spool.close();
    segment_files(&config.dir).pop().unwrap()
}

/// A segment written ahead (records, then zeros to its end) is the active one at start: the
/// zeros are no tail to cut, the writer goes on writing in them, the reader never takes them for
/// records (even with part of a batch buffered while the writer writes on), and a restart finds
/// every record.
#[test]
fn the_writer_writes_on_in_a_segment_written_ahead() {
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let config = cfg(dir.path(), 64 << 20);
    let seg = closed_spool_with(&config, 3);
    let data = std::fs::metadata(&seg).unwrap().len();
    add_zeros(&seg, (1 << 20) - data as usize);
    let tel = Telemetry::new();
    let spool = Spool::open(&config, &sinks(&["a"]), &tel, &mut NoKeys).unwrap();
    assert_eq!(spool.pending("a"), 3);
    assert!(
        !tel.render().contains(names::SPOOL_RECOVERED_TAILS),
        "no tail cut"
    );
    assert_eq!(
        std::fs::read_dir(dir.path().join("quarantine"))
            .unwrap()
            .count(),
        0
    );
    let mut r = spool.reader("a");
    let mut got = Vec::new();
    for n in 3..40 {
        // One record a read: the reader stops inside what it has buffered, then the writer
        // writes the next group into the zeros just after it.
        got.extend(ns(&r.read(1, u64::MAX).unwrap()));
        rt.block_on(spool.append(vec![ev(&["a"], n, 100)])).unwrap();
    }
    got.extend(ns(&r.read(100, u64::MAX).unwrap()));
    assert_eq!(got, (0..40).collect::<Vec<u64>>());
    assert_eq!(
        std::fs::metadata(&seg).unwrap().len(),
        1 << 20,
        "written in place, not appended"
    );
    spool.close();
    assert_eq!(
        a_reads_after_restart(&config),
        (0..40).collect::<Vec<u64>>()
    );
}

/// Bytes behind the zeros of the active segment are a group a crash tore (its first page never
/// reached the disk): cut off and quarantined like any torn tail, zeros and all.
#[test]
fn bytes_after_zeros_in_the_last_segment_are_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let config = cfg(dir.path(), 64 << 20);
    let seg = closed_spool_with(&config, 1);
    let data = std::fs::metadata(&seg).unwrap().len();
    let mut torn = vec![0u8; 4096];
    frame::encode_record(&mut torn, 2, 0, &sinks(&["a"]), &head(1), b"{\"n\":1}");
    append_to(&seg, &torn);
    add_zeros(&seg, 8192);
    let tel = Telemetry::new();
    let spool = Spool::open(&config, &sinks(&["a"]), &tel, &mut NoKeys).unwrap();
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), data);
    assert!(tel
        .render()
        .contains(&format!("{} 1", names::SPOOL_RECOVERED_TAILS)));
    let q: Vec<Vec<u8>> = std::fs::read_dir(dir.path().join("quarantine"))
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].len(), torn.len() + 8192);
    assert_eq!(q[0][..torn.len()], torn[..]);
    assert_eq!(ns(&spool.reader("a").read(100, u64::MAX).unwrap()), [0]);
}

/// A sealed segment whose data ends in zeros (written ahead longer than it grew, the cut at its
/// seal lost): a reader stops at them, a start cuts them; zeros followed by anything else in
/// acknowledged data refuse the start.
#[test]
fn zeros_after_a_sealed_segment_end_it_and_anything_after_them_is_damage() {
    let dir = tempfile::tempdir().unwrap();
    let all: Vec<u64> = (0..30).collect();
    let spool = thirty_events_in_small_segments(dir.path());
    let sealed = segment_files(dir.path())
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "seg"))
        .unwrap();
    let data = std::fs::metadata(&sealed).unwrap().len();
    add_zeros(&sealed, 64 << 10);
    assert_eq!(ns(&spool.reader("a").read(100, u64::MAX).unwrap()), all);
    spool.close();
    // The summary no longer matches the file: the start reads it whole and cuts the zeros.
    let spool = open(&cfg(dir.path(), 1 << 20), &sinks(&["a"])).unwrap();
    assert_eq!(std::fs::metadata(&sealed).unwrap().len(), data);
    assert_eq!(ns(&spool.reader("a").read(100, u64::MAX).unwrap()), all);
    spool.close();
    add_zeros(&sealed, 100);
    append_to(&sealed, b"not zero");
    let err = match open(&cfg(dir.path(), 1 << 20), &sinks(&["a"])) {
        Ok(_) => panic!("bytes after zeros in a sealed segment were accepted"),
        Err(e) => e,
    };
    assert!(
        matches!(err, SpoolError::Corrupt { offset, .. } if offset == data),
        "{err}"
    );
}

/// With each segment written ahead in time (the test hook waits for it), every segment after a
/// run's first starts from one: counted as such, written in place, and every event is there
/// after a restart that takes the sealed segments from their summaries.
#[test]
fn segments_after_a_runs_first_start_from_ones_written_ahead() {
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let tel = Telemetry::new();
    // 64 KiB segments.
    let config = cfg(dir.path(), 1 << 20);
    let spool = Spool::open(&config, &sinks(&["a"]), &tel, &mut NoKeys).unwrap();
    spool.shared.wait_for_spare.store(true, Ordering::SeqCst);
    rt.block_on(async {
        for n in 0..30 {
            spool.append(vec![ev(&["a"], n, 8 << 10)]).await.unwrap();
        }
    });
    let segs = seg_files(dir.path());
    assert!(segs.len() >= 3, "{segs:?}");
    let m = tel.render();
    let started = |ahead: &str, n: usize| {
        format!(
            "{}{{ahead=\"{ahead}\"}} {n}\n",
            names::SPOOL_SEGMENTS_STARTED
        )
    };
    assert!(m.contains(&started("false", 1)), "{m}");
    assert!(m.contains(&started("true", segs.len() - 1)), "{m}");
    // The active segment is as long as a segment: its records, then zeros.
    let active = std::fs::read(segs.last().unwrap()).unwrap();
    assert_eq!(active.len() as u64, spool.shared.segment_target);
    assert_eq!(active.last(), Some(&0));
    spool.close();
    assert_eq!(
        a_reads_after_restart(&config),
        (0..30).collect::<Vec<u64>>()
    );
}

fn inode(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).unwrap().ino()
}

/// A delivered segment is kept (renamed `.del`) and written over as a later segment: the same
/// file holds the new records, and every event is read back whole, before and after a restart.
#[test]
fn a_delivered_segment_is_written_over_as_a_later_one() {
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    // 64 KiB segments: 8 events of 8 KiB each.
    let config = cfg(dir.path(), 1 << 20);
    let spool = open(&config, &sinks(&["a"])).unwrap();
    spool.shared.wait_for_spare.store(true, Ordering::SeqCst);
    let append = |range: std::ops::Range<usize>| {
        rt.block_on(async {
            for n in range {
                spool.append(vec![ev(&["a"], n, 8 << 10)]).await.unwrap();
            }
        })
    };
    append(0..10);
    let first = seg_files(dir.path())[0].clone();
    let ino = inode(&first);
    let mut r = spool.reader("a");
    let batch = r.read(100, u64::MAX).unwrap();
    assert_eq!(ns(&batch), (0..10).collect::<Vec<u64>>());
    spool.ack("a", batch.last().unwrap().seq, 10).unwrap();
    let kept = kept_files(dir.path());
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(inode(&kept[0]), ino);
    assert!(!first.exists());

    append(10..40);
    assert!(kept_files(dir.path()).is_empty());
    let now: Vec<u64> = seg_files(dir.path()).iter().map(|p| inode(p)).collect();
    assert!(
        now.contains(&ino),
        "the delivered segment's file holds later records"
    );
    assert_eq!(
        ns(&r.read(100, u64::MAX).unwrap()),
        (10..40).collect::<Vec<u64>>()
    );
    spool.close();
    assert_eq!(
        a_reads_after_restart(&config),
        (10..40).collect::<Vec<u64>>()
    );
}

/// A delivered segment that a sink's reader still has open (it read through it for another
/// sink's records and waits for its own) is deleted, never written over: the reader reads on
/// from the bytes it has, and then its own new event, whole. With no reader holding it, the
/// same segment is kept.
#[test]
fn a_delivered_segment_a_reader_still_holds_is_deleted_not_written_over() {
    for held in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let rt = rt();
        let spool = open(&cfg(dir.path(), 1 << 20), &sinks(&["a", "b"])).unwrap();
        let append = |to: &[&str], range: std::ops::Range<usize>| {
            rt.block_on(async {
                for n in range {
                    spool.append(vec![ev(to, n, 8 << 10)]).await.unwrap();
                }
            })
        };
        append(&["a"], 0..3);
        // "b" reads through the first segment: nothing for it, but the segment is open.
        let mut b = spool.reader("b");
        assert!(b.read(100, u64::MAX).unwrap().is_empty());
        if !held {
            drop(b);
            b = spool.reader("b");
        }
        append(&["a"], 3..10);
        assert_eq!(
            seg_files(dir.path()).len(),
            2,
            "the first segment is sealed"
        );
        let batch = spool.reader("a").read(100, u64::MAX).unwrap();
        spool.ack("a", batch.last().unwrap().seq, 10).unwrap();
        assert_eq!(
            seg_files(dir.path()).len(),
            1,
            "the first segment is retired"
        );
        assert_eq!(
            kept_files(dir.path()).len(),
            usize::from(!held),
            "held: {held}"
        );
        append(&["b"], 10..11);
        assert_eq!(ns(&b.read(100, u64::MAX).unwrap()), [10], "held: {held}");
    }
}

/// A failed write (a full disk, say) gives back the room of the delivered segment kept for the
/// next spare, and none is kept while the spool takes no writes; once writes work again,
/// delivered segments are kept as before, and no event is lost or doubled.
#[test]
fn a_failed_write_gives_back_the_kept_segment_and_none_is_kept_until_writes_work() {
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    // 64 KiB segments: 8 events of 8 KiB each.
    let spool = open(&cfg(dir.path(), 1 << 20), &sinks(&["a"])).unwrap();
    // No probe: the spool stays not writable after the failure until a write works, however
    // slowly this test runs.
    if let Some((stop, probe)) = spool.probe.lock().unwrap().take() {
        drop(stop);
        probe.join().unwrap();
    }
    let append = |n: usize| rt.block_on(spool.append(vec![ev(&["a"], n, 8 << 10)]));
    for n in 0..18 {
        append(n).unwrap();
    }
    let mut r = spool.reader("a");
    let all = r.read(100, u64::MAX).unwrap();
    assert_eq!(ns(&all), (0..18).collect::<Vec<u64>>());
    assert!(seg_files(dir.path()).len() >= 3);
    // The first segment delivered: kept.
    spool.ack("a", all[7].seq, 8).unwrap();
    assert_eq!(kept_files(dir.path()).len(), 1);

    spool.fail_next_write();
    assert!(matches!(append(100), Err(AppendError::Io(_))));
    assert!(!spool.writable());
    assert!(kept_files(dir.path()).is_empty(), "its room is given back");
    // Delivered while the spool takes no writes: deleted, not kept.
    let segs = seg_files(dir.path()).len();
    spool.ack("a", all[15].seq, 8).unwrap();
    assert_eq!(seg_files(dir.path()).len(), segs - 1);
    assert!(kept_files(dir.path()).is_empty());

    // Writes work again: the next delivered segment is kept.
    for n in 18..30 {
        append(n).unwrap();
    }
    assert!(spool.writable());
    let rest = r.read(100, u64::MAX).unwrap();
    assert_eq!(ns(&rest), (18..30).collect::<Vec<u64>>());
    spool.ack("a", rest.last().unwrap().seq, 14).unwrap();
    assert_eq!(kept_files(dir.path()).len(), 1);
}
