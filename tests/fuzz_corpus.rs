//! Replays every file of fuzz/corpus/TARGET through that fuzz target's
//! properties (fuzz/props.rs): the inputs the fuzzers found interesting,
//! and any crash they found once fixed, stay checked by the normal test
//! command. Fuzzing itself: fuzz/Cargo.toml.

#[path = "../fuzz/props.rs"]
mod props;

#[test]
fn every_corpus_file_keeps_its_properties() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let mut total = 0;
    for (name, check) in props::TARGETS {
        let dir = root.join(name);
        let mut n = 0;
        for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let p = e.unwrap().path();
            let data = std::fs::read(&p).unwrap();
            if let Err(e) = std::panic::catch_unwind(|| check(&data)) {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                panic!("{name}: {}: {msg}", p.display());
            }
            n += 1;
        }
        assert!(n > 0, "no corpus for {name}");
        total += n;
    }
    eprintln!("{total} corpus files replayed");
}
