//! Every input a fuzz target ever crashed (`fuzz/regressions/<target>/`), replayed through the
//! same harness the target runs (`siemgate::fuzzing`): each once panicked, and must not again.

use std::path::Path;

fn replay(target: &str, harness: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/regressions")
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        let input = std::fs::read(&path).unwrap();
        if std::panic::catch_unwind(|| harness(&input)).is_err() {
            panic!("{} fails again", path.display());
        }
    }
}

/// `msgraph-signed-body-with-another-client-state`: the harness took Graph's empty header
/// signature for a proof, and a body carrying another subscription's clientState for a
/// signature that failed to verify (Graph's proof lives in the body, which only its sender
/// writes).
#[test]
fn verify_inputs() {
    replay("verify", siemgate::fuzzing::verify);
}

#[test]
fn normalize_inputs() {
    replay("normalize", siemgate::fuzzing::normalize);
}

#[test]
fn spool_frame_inputs() {
    replay("spool_frame", siemgate::fuzzing::spool_frame);
}

/// `seq-u64-max-overflow`: a whole, checksummed record with sequence number u64::MAX made
/// recovery compute the next sequence number with an overflowing add.
/// `record-names-a-sink-twice`: a record listing sink `a` twice was counted as two pending
/// events for it, one of which no reader would ever deliver.
#[test]
fn spool_recover_inputs() {
    replay("spool_recover", siemgate::fuzzing::spool_recover);
}

#[test]
fn config_inputs() {
    replay("config", siemgate::fuzzing::config);
}
