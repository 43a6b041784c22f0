use super::*;
use std::os::unix::process::ExitStatusExt;
use std::process::Command;

/// Runs this test binary again as a child running only `test`, with `KUBEBOOT_MAPPED`
/// naming `path`: what a child does to its mapping may kill it.
fn child(test: &str, path: &std::path::Path) -> std::process::Output {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env("KUBEBOOT_MAPPED", path)
        .output()
        .unwrap()
}

fn file_of(len: usize) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("snap.db");
    std::fs::write(&path, (0..len).map(|i| (i % 251) as u8).collect::<Vec<_>>()).unwrap();
    (dir, path)
}

/// Cuts the file to nothing under the mapping, then reads every page of it.
fn truncate_and_touch(path: &std::path::Path, pages: &[u8]) -> u64 {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(0)
        .unwrap();
    pages.iter().step_by(4096).map(|&b| u64::from(b)).sum()
}

#[test]
fn a_mapping_reads_the_file_and_an_empty_file_is_not_mapped() {
    let (_d, path) = file_of(3 * 4096 + 17);
    let m = Mapped::map(&File::open(&path).unwrap(), "f", 3)
        .unwrap()
        .unwrap();
    assert_eq!(m.as_ref(), std::fs::read(&path).unwrap().as_slice());
    let empty = path.with_extension("empty");
    std::fs::write(&empty, b"").unwrap();
    assert!(
        Mapped::map(&File::open(&empty).unwrap(), "e", 3)
            .unwrap()
            .is_none()
    );
    // Slots are given back: more mappings over time than there are slots.
    drop(m);
    for _ in 0..(2 * SLOTS) {
        let m = Mapped::map(&File::open(&path).unwrap(), "f", 3).unwrap();
        assert!(m.is_some());
    }
}

#[test]
fn a_page_lost_under_the_mapping_is_a_one_line_error_and_the_callers_exit_code() {
    if let Some(path) = std::env::var_os("KUBEBOOT_MAPPED") {
        let path = std::path::PathBuf::from(path);
        let m = Mapped::map(&File::open(&path).unwrap(), "/backups/snap.db", 3)
            .unwrap()
            .unwrap();
        println!("survived {}", truncate_and_touch(&path, m.as_ref()));
        return;
    }
    let (_d, path) = file_of(16 * 4096);
    let out = child(
        "fsutil::mapped::tests::a_page_lost_under_the_mapping_is_a_one_line_error_and_the_callers_exit_code",
        &path,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("kubeboot: error: /backups/snap.db: the file was truncated, or could not be read (an I/O error), while it was mapped; nothing was written\n"),
        "{stderr}"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("survived"));
}

#[test]
fn a_sigbus_outside_every_guarded_mapping_still_kills() {
    if let Some(path) = std::env::var_os("KUBEBOOT_MAPPED") {
        let path = std::path::PathBuf::from(path);
        let guarded = file_of(4096);
        let _g = Mapped::map(&File::open(&guarded.1).unwrap(), "g", 3)
            .unwrap()
            .unwrap();
        // SAFETY: a test of exactly what happens when such a mapping loses its file.
        let bare = unsafe { memmap2::Mmap::map(&File::open(&path).unwrap()) }.unwrap();
        println!("survived {}", truncate_and_touch(&path, &bare));
        return;
    }
    let (_d, path) = file_of(16 * 4096);
    let out = child(
        "fsutil::mapped::tests::a_sigbus_outside_every_guarded_mapping_still_kills",
        &path,
    );
    assert_eq!(out.status.signal(), Some(libc::SIGBUS), "{out:?}");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("kubeboot: error"));
}

/// The `Rss:` of the mapping starting at `start`, from /proc/self/smaps, in bytes.
fn resident(start: usize) -> usize {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let mut lines = smaps
        .lines()
        .skip_while(|l| !l.starts_with(&format!("{start:x}-")));
    lines.next().expect("the mapping is listed");
    let rss = lines.find(|l| l.starts_with("Rss:")).unwrap();
    let kib: usize = rss.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

#[test]
fn pages_read_through_are_given_back_every_window_and_read_again_unchanged() {
    let len = 4 * WINDOW + 4096 * 3;
    let (_d, path) = file_of(len);
    let m = Mapped::map(&File::open(&path).unwrap(), "f", 3)
        .unwrap()
        .unwrap();
    let start = m.as_ref().as_ptr() as usize;
    let mut sum = 0u64;
    let mut most = 0;
    for chunk in m.as_ref().chunks(1 << 20) {
        sum += chunk
            .iter()
            .step_by(4096)
            .map(|&b| u64::from(b))
            .sum::<u64>();
        m.read_through(chunk.len());
        most = most.max(resident(start));
    }
    // Without giving back, every page read stays: the whole file.
    assert!(most <= WINDOW + (1 << 20), "{most} bytes held of {len}");
    m.give_back();
    assert_eq!(resident(start), 0);
    // What comes back is the file, whatever was given back before.
    assert_eq!(m.as_ref(), std::fs::read(&path).unwrap().as_slice());
    let again: u64 = m.as_ref().iter().step_by(4096).map(|&b| u64::from(b)).sum();
    assert_eq!(sum, again);
}
